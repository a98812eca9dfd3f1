package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/presence-engine/presence/engine"
)

// appends measures sets through the service as fast as the writers go, and the
// fold and feed lag meanwhile.
func (r *runner) appends(ctx context.Context) error {
	cfg := r.cfg
	r.step("engine: %s through the service, %d writers x %d in flight", r.setsText(cfg.AppendSets), cfg.Writers, cfg.InFlight)
	base, err := r.lastLogSeq(ctx)
	if err != nil {
		return err
	}
	before, err := r.eng.metrics(r.nc)
	if err != nil {
		return err
	}
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				if m, err := r.eng.metrics(r.nc); err == nil {
					r.res.FoldMaxLag = max(r.res.FoldMaxLag, m.FoldLag)
					r.res.FeedMaxLag = max(r.res.FeedMaxLag, m.Feed.Lag)
				}
			}
		}
	}()
	r.seed++
	wr, err := write(ctx, r.eng.url, cfg, cfg.AppendSets, 0, newAckTimes(base+1, 0), r.seed)
	close(stopSampling)
	<-sampled
	if err != nil {
		return err
	}
	after, err := r.eng.metrics(r.nc)
	if err != nil {
		return err
	}
	r.res.Appends = compare(wr.appendRate(), r.res.Baselines.PublishAsyncExpect)
	r.res.AppendsCount = wr.appended
	visibleRate := float64(len(wr.visible)) / wr.elapsed.Seconds()
	feedRate := float64(after.Feed.Published-before.Feed.Published) / wr.elapsed.Seconds()
	r.res.Feed = compare(feedRate, visibleRate)
	return nil
}

// writerAppends measures the appends' sets made with an engine.Writer in the
// writers' process instead of through the service: what the service's request
// and reply cost. It runs after the fan-out runs, on contacts of its own and
// each writer on its own share of them, so that it leaves the engine's writer
// nothing stale to find (a contact set behind its back costs it a conflict
// and a read) and the writers none to conflict on. The writers first set each
// of their contacts once, untimed, as the engine's writer knows its contacts
// from its projection; the engine folds and derives the feed meanwhile, as in
// the appends through the service.
func (r *runner) writerAppends(ctx context.Context) error {
	cfg := r.cfg
	writers, closeWriters, err := directWriters(r.eng.url, cfg)
	if err != nil {
		return err
	}
	defer closeWriters()
	var sets []setFunc
	for _, w := range writers {
		sets = append(sets, w.Set)
	}
	spec := writeSpec{n: cfg.AppendSets, duration: cfg.Duration, acks: newAckTimes(0, 0), sets: sets, partition: true,
		id: func(i int) string { return fmt.Sprintf("sip:direct%06d@contoso.com", i) }}
	r.step("engine: %d sets with an engine.Writer in the writers' process, each contact once, untimed: the writers learn their contacts", cfg.Contacts)
	r.seed++
	learn := spec
	learn.n, learn.duration, learn.seed, learn.sequential = cfg.Contacts, 0, r.seed, true
	if _, err := writeContacts(ctx, r.eng.url, cfg, learn); err != nil {
		return err
	}
	before := conflicts(writers)
	r.step("engine: %s with an engine.Writer in the writers' process, %d writers x %d in flight", r.setsText(cfg.AppendSets), cfg.Writers, cfg.InFlight)
	r.seed++
	spec.seed = r.seed
	wr, err := writeContacts(ctx, r.eng.url, cfg, spec)
	if err != nil {
		return err
	}
	after := conflicts(writers)
	r.res.AppendsWriter = compare(wr.appendRate(), r.res.Baselines.PublishAsyncExpect)
	r.res.AppendsWriterCount = wr.appended
	r.res.AppendsWriterConflicts = after - before
	return nil
}

// conflicts sums the writers' conflicts.
func conflicts(writers []*engine.Writer) uint64 {
	var sum uint64
	for _, w := range writers {
		sum += w.Metrics().Conflicts
	}
	return sum
}
