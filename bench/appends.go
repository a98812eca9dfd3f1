package bench

import (
	"context"
	"time"
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
