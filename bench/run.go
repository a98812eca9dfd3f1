package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// Run measures the engine as cfg describes and returns the results.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "presence-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	r := &runner{cfg: cfg, dir: dir, res: &Results{Started: time.Now()}}
	defer r.close()
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	r.res.Elapsed = time.Since(r.res.Started)
	return r.res, nil
}

type runner struct {
	cfg  Config
	dir  string
	res  *Results
	eng  *engineUnderTest
	rep  *replica // for in-process subscribers, opened on first use
	nc   *nats.Conn
	js   jetstream.JetStream
	seed uint64
	// replicas is the log's: the raw streams have as many.
	replicas int
}

func (r *runner) step(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (r *runner) close() {
	if r.rep != nil {
		r.rep.close()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.eng != nil {
		_ = r.eng.stop()
	}
}

func (r *runner) run(ctx context.Context) error {
	cfg := r.cfg
	res := r.res
	res.Machine = Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Engine: "in process", Server: "embedded"}
	if len(cfg.EngineCommand) > 0 {
		res.Machine.Engine = "child process"
	}
	if cfg.NATSURL != "" {
		res.Machine.Server = cfg.NATSURL
	}
	res.Workload = Workload{Contacts: cfg.Contacts, Writers: cfg.Writers, InFlight: cfg.InFlight, Changes: cfg.Changes,
		AppendSets: cfg.AppendSets, Duration: cfg.Duration.Seconds(), Baseline: cfg.BaselineMessages,
		Subscribers: cfg.Subscribers, Modes: cfg.Modes}
	res.EventSize = eventSize(cfg.Contacts)

	r.step("starting the engine (%s, %s server)", res.Machine.Engine, res.Machine.Server)
	var err error
	if r.eng, err = startEngine(ctx, cfg, r.dir); err != nil {
		return err
	}
	if r.nc, err = nats.Connect(r.eng.url, nats.Name("bench")); err != nil {
		return err
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		return err
	}
	log, err := r.js.Stream(ctx, events.LogStream)
	if err != nil {
		return err
	}
	r.replicas = log.CachedInfo().Config.Replicas

	if err := r.baselines(ctx); err != nil {
		return fmt.Errorf("baselines: %w", err)
	}
	if err := r.appends(ctx); err != nil {
		return fmt.Errorf("appends: %w", err)
	}
	if err := r.fold(ctx); err != nil {
		return fmt.Errorf("fold: %w", err)
	}
	for _, mode := range cfg.Modes {
		for _, m := range cfg.Subscribers {
			if mode == Remote && m > cfg.MaxRemote {
				res.Notes = append(res.Notes, fmt.Sprintf("remote M=%d not run: above the remote limit of %d (a JetStream consumer per subscriber)", m, cfg.MaxRemote))
				continue
			}
			f, err := r.fanout(ctx, mode, m, 0)
			if err != nil {
				return fmt.Errorf("fan-out %s M=%d: %w", mode, m, err)
			}
			res.Fanout = append(res.Fanout, f)
		}
	}
	if err := r.halfRate(ctx); err != nil {
		return fmt.Errorf("half-rate latency: %w", err)
	}
	// The peak so far: what follows adds contacts of its own.
	res.EnginePeakRSS = r.eng.peakRSS()
	if err := r.writerAppends(ctx); err != nil {
		return fmt.Errorf("appends with a writer: %w", err)
	}
	if cfg.MemorySets > 0 {
		if err := r.memory(ctx); err != nil {
			return fmt.Errorf("memory run: %w", err)
		}
	}
	return nil
}

// eventSize is the mean size of the events the writers append.
func eventSize(contacts int) int {
	total, n := 0, 0
	for i := 0; i < contacts; i += max(1, contacts/100) {
		e := events.Event{Contact: contactID(i), Name: fmt.Sprintf("User %d", i), Status: events.Away,
			Previous: events.Online, At: time.Now(), Cause: events.CauseUser}
		total += len(e.Encode())
		n++
	}
	return total / max(n, 1)
}

func (r *runner) baselines(ctx context.Context) error {
	cfg, b := r.cfg, &r.res.Baselines
	n, size := cfg.BaselineMessages, r.res.EventSize
	var err error
	r.step("baseline: JetStream async publish of %d messages of %d bytes", n, size)
	if err := resetRawStream(ctx, r.js, r.replicas); err != nil {
		return err
	}
	if b.PublishAsync, err = publishAsync(ctx, r.nc, n, size, cfg.Contacts, false); err != nil {
		return err
	}
	r.step("baseline: the same with expected-last-subject-sequence")
	if err := resetRawStream(ctx, r.js, r.replicas); err != nil {
		return err
	}
	if b.PublishAsyncExpect, err = publishAsync(ctx, r.nc, n, size, cfg.Contacts, true); err != nil {
		return err
	}
	r.step("baseline: one ordered consumer reading %d messages", n)
	if b.OrderedRead, err = orderedRead(ctx, r.js, rawStream, n); err != nil {
		return err
	}
	r.step("baseline: the floor of an append: %d messages published with expected seq, read back, four in five derived to a second stream", n)
	if b.AppendFloor, err = appendFloor(ctx, r.nc, r.eng.url, r.replicas, n, size, cfg.Contacts); err != nil {
		return err
	}
	b.FanoutOrdered, b.FanoutReadFloor, b.FanoutCore = map[int]float64{}, map[int]float64{}, map[int]float64{}
	b.FanoutReadFloorCPU = map[int]CPU{}
	for _, m := range cfg.Subscribers {
		per := min(n, max(2*n/m, 1000))
		if m <= cfg.MaxRemote {
			// As many as the writers make sets in a fan-out run, whose
			// visible ones (~80%) each catching-up subscriber reads: about
			// the same work, ramp-up and all.
			per := min(n, cfg.Changes)
			r.step("baseline: %d ordered consumers reading %d messages each", m, per)
			if b.FanoutOrdered[m], err = fanoutOrdered(ctx, r.eng.url, m, per); err != nil {
				return err
			}
			r.step("baseline: the floor of a remote fan-out with reads: %d ordered consumers reading %d messages each, and their statuses in batches", m, per)
			var clock cpuClock
			if b.FanoutReadFloor[m], err = fanoutReadFloor(ctx, r.eng.url, m, per, cfg.Contacts, func() { clock = r.eng.cpuNow() }); err != nil {
				return err
			}
			b.FanoutReadFloorCPU[m] = r.eng.perDelivery(clock, int64(m*per))
		}
		r.step("baseline: core NATS to %d subscribers, %d messages", m, per)
		if b.FanoutCore[m], err = fanoutCore(ctx, r.eng.url, m, per, size); err != nil {
			return err
		}
	}
	return r.js.DeleteStream(ctx, rawStream)
}

// lastLogSeq is the log's last sequence.
func (r *runner) lastLogSeq(ctx context.Context) (uint64, error) {
	s, err := r.js.Stream(ctx, events.LogStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

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
	appendRate := float64(wr.appended) / wr.elapsed.Seconds()
	r.res.Appends = compare(appendRate, r.res.Baselines.PublishAsyncExpect)
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
	r.res.AppendsWriter = compare(float64(wr.appended)/wr.elapsed.Seconds(), r.res.Baselines.PublishAsyncExpect)
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

// fold folds the whole log into a fresh projection, and reads the same log with
// a raw ordered consumer, in the same run.
func (r *runner) fold(ctx context.Context) error {
	last, err := r.lastLogSeq(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	r.step("baseline: ordered read of the log's %d events", last)
	raw, err := orderedRead(ctx, r.js, events.LogStream, int(last))
	if err != nil {
		return err
	}
	r.step("baseline: the floor of a fold: an ordered read of the log's %d events, each written to a fresh Pebble store", last)
	if r.res.Baselines.FoldFloor, err = foldFloor(ctx, r.js, events.LogStream, int(last), filepath.Join(r.dir, "fold-floor"), r.cfg.Logger); err != nil {
		return err
	}
	r.step("engine: folding the log's %d events into a fresh projection", last)
	proj, err := projections.Open(filepath.Join(r.dir, "fold"), projections.Options{Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	defer proj.Close()
	f, err := projections.NewFollower(projections.FollowerConfig{Projection: proj, JetStream: r.js, Stream: events.LogStream, Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(fctx) }()
	werr := proj.WaitApplied(ctx, last)
	elapsed := time.Since(start)
	stop()
	if err := errors.Join(werr, <-done); err != nil {
		return err
	}
	r.res.Fold = compare(float64(last)/elapsed.Seconds(), raw)
	r.res.FoldCount = last
	return nil
}

// fanout runs M subscribers of one mode in two phases. Live: the writers make
// cfg.Changes sets (at limit sets per second, or as fast as they go) while the
// subscribers run; this times each change from the writer's acknowledgement to
// the handler's read. Catch-up: M new subscribers hand over the same window of
// changes from the feed at once, each reading the current status of every
// change, as the raw baseline's M ordered consumers read a pre-filled stream;
// this is the fan-out rate. Both check that every subscriber got every visible
// change once, in order, with a read no older than its change.
func (r *runner) fanout(ctx context.Context, mode Mode, m int, limit float64) (Fanout, error) {
	cfg := r.cfg
	f := Fanout{Mode: mode, M: m, TargetRate: limit}
	if mode == Remote && r.rep != nil {
		// The in-process rows' replica follows the log in this process: it
		// has no part in a remote run, and would take its CPU.
		r.rep.close()
		r.rep = nil
	}
	base, err := r.lastLogSeq(ctx)
	if err != nil {
		return f, err
	}
	win := window{base: base + 1, size: cfg.Changes + 1}
	acks := newAckTimes(win.base, win.size)

	r.step("fan-out: %d %s subscribers live, %s%s", m, mode, r.setsText(cfg.Changes), rateText(limit))
	live := newObserver(m, win, acks)
	runtime.GC()
	resetPeakRSS()
	rssBefore := procStatusKB(0, "VmRSS:") * 1024
	subs, err := r.startSubscribers(ctx, mode, m, live, client.StartNew())
	if err != nil {
		return f, err
	}
	r.seed++
	start := time.Now()
	wr, err := write(ctx, r.eng.url, cfg, cfg.Changes, limit, acks, r.seed)
	if err != nil {
		subs.close()
		return f, err
	}
	last, err := r.await(subs, live, wr.visible)
	if err != nil {
		return f, err
	}
	if peak := vmHWM(0); peak > rssBefore {
		f.RSSPerSub = (peak - rssBefore) / int64(m)
	}
	f.Appended, f.Visible = wr.appended, len(wr.visible)
	f.AppendRate = float64(wr.appended) / wr.elapsed.Seconds()
	if elapsed := last.Sub(start); elapsed > 0 {
		f.LiveRate = float64(live.deliveries()) / elapsed.Seconds()
	}
	f.Latency = live.latency()
	f.CatchUps = subs.catchUps()
	live.tally(&f)

	if limit > 0 {
		return f, nil // the half-rate run is about latency
	}
	r.step("fan-out: %d %s subscribers catching up on those %d changes", m, mode, len(wr.visible))
	catchUp := newObserver(m, win, nil)
	catchUp.gate = make(chan struct{})
	start = time.Now()
	if subs, err = r.startSubscribers(ctx, mode, m, catchUp, client.StartAtSeq(win.base)); err != nil {
		return f, err
	}
	f.CatchUpStart = time.Since(start).Seconds()
	start = time.Now()
	clock := r.eng.cpuNow()
	close(catchUp.gate)
	if last, err = r.await(subs, catchUp, wr.visible); err != nil {
		return f, err
	}
	f.CatchUpCPU = r.eng.perDelivery(clock, catchUp.deliveries())
	rate := 0.0
	if elapsed := last.Sub(start); elapsed > 0 {
		rate = float64(catchUp.deliveries()) / elapsed.Seconds()
	}
	baseline := r.res.Baselines.FanoutCore[m]
	if mode == Remote {
		baseline = r.res.Baselines.FanoutOrdered[m]
	}
	f.Rate = compare(rate, baseline)
	f.LookupRate = rate // every delivery reads the current status
	catchUp.tally(&f)
	return f, nil
}

func (r *runner) startSubscribers(ctx context.Context, mode Mode, m int, o *observer, start client.Start) (*subscribers, error) {
	if mode == Remote {
		return startRemote(ctx, r.eng.url, m, o, start)
	}
	if r.rep == nil {
		r.step("opening the in-process projection replica")
		rep, err := openReplica(ctx, r.eng.url, filepath.Join(r.dir, "replica"), r.cfg)
		if err != nil {
			return nil, err
		}
		r.rep = rep
	}
	// The replica follows the log live; let it catch up before timing.
	last, err := r.lastLogSeq(ctx)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if err := r.rep.proj.WaitApplied(wctx, last); err != nil {
		return nil, err
	}
	return startInProcess(ctx, r.rep, m, o, r.cfg, start)
}

// await waits until every subscriber has every visible change (or the timeout
// passes: what is missing counts as lost), stops them, and returns the time of
// the last delivery.
func (r *runner) await(subs *subscribers, o *observer, visible []uint64) (time.Time, error) {
	for _, seq := range visible {
		if idx, ok := o.win.index(seq); ok {
			o.expected[idx] = true
		}
	}
	deadline := time.Now().Add(r.cfg.Timeout)
	for !o.done(int64(len(visible))) && time.Now().Before(deadline) {
		if err := subs.err(); err != nil {
			subs.close()
			return time.Time{}, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	subs.close()
	if err := subs.err(); err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, st := range o.subs {
		if st.lastAt.After(last) {
			last = st.lastAt
		}
	}
	return last, nil
}

// setsText says how many sets a run makes: n, or as many as in the run's
// duration (at most n).
func (r *runner) setsText(n int) string {
	if r.cfg.Duration > 0 {
		return fmt.Sprintf("sets for %v (at most %d)", r.cfg.Duration, n)
	}
	return fmt.Sprintf("%d sets", n)
}

func rateText(limit float64) string {
	if limit <= 0 {
		return ", as fast as they go"
	}
	return fmt.Sprintf(", at %.0f/s", limit)
}

// halfRate measures latency at half the maximum sustained append rate seen with
// HalfRateM subscribers (remote if run, else in-process).
func (r *runner) halfRate(ctx context.Context) error {
	var best *Fanout
	for i := range r.res.Fanout {
		f := &r.res.Fanout[i]
		if f.M == r.cfg.HalfRateM && (best == nil || (best.Mode != Remote && f.Mode == Remote)) {
			best = f
		}
	}
	if best == nil {
		return nil
	}
	f, err := r.fanout(ctx, best.Mode, best.M, best.AppendRate/2)
	if err != nil {
		return err
	}
	r.res.HalfRate = &f
	if f.Mode != Remote {
		return nil
	}
	// The same load on the plain NATS path a remote subscriber's change takes.
	r.step("baseline: the floor of the latency run: the append floor at %.0f/s, each entry repeated to %d core subscribers", f.TargetRate, f.M)
	n := r.cfg.Changes
	if r.cfg.Duration > 0 {
		n = f.Appended // as many as the engine's run appended in its time
	}
	lat, err := latencyFloor(ctx, r.nc, r.eng.url, r.replicas, f.M, n, r.res.EventSize, r.cfg.Contacts, f.TargetRate)
	if err != nil {
		return err
	}
	r.res.HalfRateFloor = &lat
	return r.js.DeleteStream(ctx, rawStream)
}

// memory sets every one of MemoryContacts contacts once, then makes MemorySets
// random sets over them in ten steps, and samples the engine's resident memory
// after each step: past the first, only events are added, and memory should stay
// within the engine's caches and JetStream's per-subject index.
func (r *runner) memory(ctx context.Context) error {
	cfg := r.cfg
	cfg.Contacts = cfg.MemoryContacts
	steps := 10
	per := max(cfg.MemorySets/steps, 1)
	r.step("memory run: every one of %d contacts once, then %d sets over them, in %d steps", cfg.MemoryContacts, cfg.MemorySets, steps)
	sets := 0
	for i := range steps + 1 {
		r.seed++
		n := per
		if i == 0 {
			n = cfg.MemoryContacts // every contact once: what follows only adds events
		}
		wr, err := writeContacts(ctx, r.eng.url, cfg, writeSpec{n: n, acks: newAckTimes(0, 0), seed: r.seed, sequential: i == 0})
		if err != nil {
			return err
		}
		sets += wr.sets
		last, err := r.lastLogSeq(ctx)
		if err != nil {
			return err
		}
		runtime.GC()
		rss := r.eng.rss()
		r.res.Memory = append(r.res.Memory, MemorySample{Sets: sets, Events: last, RSS: rss,
			Rate: float64(wr.appended) / wr.elapsed.Seconds()})
		r.step("memory run: step %d: %d sets, %d events in the log, engine RSS %s", i, sets, last, bytesText(rss))
	}
	if cfg.HeapProfile != "" {
		f, err := os.Create(cfg.HeapProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.WriteHeapProfile(f)
	}
	return nil
}
