package bench

import (
	"context"
	"path/filepath"
	"runtime"
	"time"

	"github.com/presence-engine/presence/client"
)

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
	// Subscribers are handed feed positions: the run's changes start after
	// the feed's end once it has caught up with the log.
	feedBase, err := r.feedEnd(ctx, base)
	if err != nil {
		return f, err
	}
	win := window{base: feedBase + 1, size: cfg.Changes + 1}
	acks := newFeedAckTimes(base+1, win.base, win.size)

	r.step("fan-out: %d %s subscribers live, %s%s", m, mode, r.setsText(cfg.Changes), rateText(limit))
	live := newObserver(m, win, acks)
	runtime.GC()
	resetPeakRSS()
	rssBefore := vmRSS(0)
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
	last, err := r.await(subs, live, len(wr.visible))
	if err != nil {
		return f, err
	}
	if peak := vmHWM(0); peak > rssBefore {
		f.RSSPerSub = (peak - rssBefore) / int64(m)
	}
	f.Appended, f.Visible = wr.appended, len(wr.visible)
	f.AppendRate = wr.appendRate()
	f.LiveRate = live.rate(start, last)
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
	if last, err = r.await(subs, catchUp, len(wr.visible)); err != nil {
		return f, err
	}
	f.CatchUpCPU = r.eng.perDelivery(clock, catchUp.deliveries())
	rate := catchUp.rate(start, last)
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

// await waits until every subscriber has every visible change, the first
// visible of the window's positions (or the timeout passes: what is missing
// counts as lost), stops them, and returns the time of the last delivery.
func (r *runner) await(subs *subscribers, o *observer, visible int) (time.Time, error) {
	for i := range min(visible, len(o.expected)) {
		o.expected[i] = true
	}
	deadline := time.Now().Add(r.cfg.Timeout)
	for !o.done(int64(visible)) && time.Now().Before(deadline) {
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
