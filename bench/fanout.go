package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// window is the range of positions a fan-out run's changes are handed over
// at, [base, base+size): feed positions (or, in the floors, the raw stream's
// sequences).
type window struct {
	base uint64
	size int
}

func (w window) index(seq uint64) (int, bool) {
	if seq < w.base || seq-w.base >= uint64(w.size) {
		return 0, false
	}
	return int(seq - w.base), true
}

// indexSet is a set of window indexes, as long as the largest one added
// needs: a run for a duration sizes its window for the most sets it may
// make, and M subscribers would each hold that much.
type indexSet []uint64

func (s indexSet) has(i int) bool {
	w := i / 64
	return w < len(s) && s[w]&(1<<(i%64)) != 0
}

func (s *indexSet) add(i int) {
	if w := i / 64; w >= len(*s) {
		*s = append(*s, make([]uint64, w+1-len(*s))...)
	}
	(*s)[i/64] |= 1 << (i % 64)
}

// subStats is what one subscriber saw.
type subStats struct {
	got        indexSet // by window index: delivered
	last       uint64
	inWindow   atomic.Int64 // distinct changes of the window delivered
	deliveries int64
	duplicated int64
	outOfOrder int64
	stale      int64
	lastAt     time.Time
	pending    []delivery // deliveries whose ack time was not known yet
}

type delivery struct {
	seq uint64
	at  int64
}

// observer checks and times what subscribers are handed.
type observer struct {
	timing   bool // record latencies (live runs)
	win      window
	expected []bool // by window index: a visible change the writers appended; set once they are done
	acks     *ackTimes
	subs     []*subStats
	// gate, when not nil, holds every handler back until it is closed: the
	// catch-up is timed from when all M subscribers exist, as the raw
	// fan-out is timed from when its M consumers exist.
	gate chan struct{}

	histMu []sync.Mutex
	hists  []*hdrhistogram.Histogram // sharded by subscriber
}

const histShards = 16

// newHistogram holds latencies in microseconds, up to ten minutes, to three
// significant digits: the shards and their merge have the same shape.
func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

func newObserver(m int, win window, acks *ackTimes) *observer {
	o := &observer{timing: acks != nil, win: win, expected: make([]bool, win.size), acks: acks, subs: make([]*subStats, m),
		histMu: make([]sync.Mutex, histShards), hists: make([]*hdrhistogram.Histogram, histShards)}
	for i := range o.subs {
		o.subs[i] = &subStats{}
	}
	for i := range o.hists {
		o.hists[i] = newHistogram()
	}
	return o
}

// handler returns subscriber i's handler: it reads the current status, as every
// subscriber must, then records what it saw. A subscriber's handler runs on one
// goroutine at a time.
func (o *observer) handler(i int) client.Handler {
	st := o.subs[i]
	return func(ctx context.Context, ch client.Change) error {
		if o.gate != nil {
			select {
			case <-o.gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		cur, err := ch.Current(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		st.deliveries++
		st.lastAt = now
		if cur.Seq < ch.Seq {
			st.stale++
		}
		if ch.Seq <= st.last {
			if idx, ok := o.win.index(ch.Seq); ok && st.got.has(idx) {
				st.duplicated++
			} else {
				st.outOfOrder++
			}
		}
		st.last = max(st.last, ch.Seq)
		idx, ok := o.win.index(ch.Seq)
		if !ok {
			return nil
		}
		if !st.got.has(idx) {
			st.got.add(idx)
			st.inWindow.Add(1)
		}
		if !o.timing {
			return nil
		}
		o.time(i, ch.Seq, now.UnixNano())
		return nil
	}
}

// time records subscriber i's delivery at now of the change at position seq:
// from the writer's ack, or, the ack (or the change's feed position) not known
// yet, once the run is over.
func (o *observer) time(i int, seq uint64, now int64) {
	if ack := o.acks.get(seq); ack > 0 {
		o.record(i, now-ack)
	} else {
		o.subs[i].pending = append(o.subs[i].pending, delivery{seq: seq, at: now})
	}
}

func (o *observer) record(i int, ns int64) {
	us := max(ns/1000, 1)
	shard := i % histShards
	o.histMu[shard].Lock()
	_ = o.hists[shard].RecordValue(us)
	o.histMu[shard].Unlock()
}

// done reports whether every subscriber has had as many changes of the window
// as the writers made visible (during a run only they write).
func (o *observer) done(want int64) bool {
	for _, st := range o.subs {
		if st.inWindow.Load() < want {
			return false
		}
	}
	return true
}

// deliveries counts, once the subscribers have stopped, what they were handed.
func (o *observer) deliveries() int64 {
	var n int64
	for _, st := range o.subs {
		n += st.deliveries
	}
	return n
}

// rate is the deliveries per second from start to last, the last delivery
// (0 if none came after start), once the subscribers have stopped.
func (o *observer) rate(start, last time.Time) float64 {
	if elapsed := last.Sub(start); elapsed > 0 {
		return float64(o.deliveries()) / elapsed.Seconds()
	}
	return 0
}

// tally adds, once the subscribers have stopped, what went wrong to f.
func (o *observer) tally(f *Fanout) {
	f.Deliveries += o.deliveries()
	f.Lost += o.lost()
	for _, st := range o.subs {
		f.Duplicated += st.duplicated
		f.OutOfOrder += st.outOfOrder
		f.Stale += st.stale
	}
}

// lost counts, once the subscribers have stopped, the visible changes each
// subscriber never got, summed over them.
func (o *observer) lost() int64 {
	var visible []int // a run for a duration has a window far wider than its changes
	for i, want := range o.expected {
		if want {
			visible = append(visible, i)
		}
	}
	var n int64
	for _, st := range o.subs {
		for _, i := range visible {
			if !st.got.has(i) {
				n++
			}
		}
	}
	return n
}

// subscribers runs the subscribers of one fan-out run until closed.
type subscribers struct {
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errs     chan error
	cleanups []func()
	subs     []*client.Subscriber
}

// catchUps sums the subscribers' catch-ups over gaps.
func (s *subscribers) catchUps() int64 {
	var n int64
	for _, sub := range s.subs {
		n += int64(sub.CatchUps())
	}
	return n
}

func newSubscribers(ctx context.Context, n int) *subscribers {
	s := &subscribers{errs: make(chan error, n)}
	s.ctx, s.cancel = context.WithCancel(ctx)
	return s
}

// go runs fn until the subscribers are closed; an error it returns is kept.
func (s *subscribers) run(fn func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(s.ctx); err != nil && s.ctx.Err() == nil {
			select {
			case s.errs <- err:
			default:
			}
		}
	}()
}

// close stops everything and releases what was opened, in reverse order.
func (s *subscribers) close() {
	s.cancel()
	s.wg.Wait()
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

// err returns the first error a subscriber met, if any.
func (s *subscribers) err() error {
	select {
	case err := <-s.errs:
		return err
	default:
		return nil
	}
}

// wait waits for ready, failing if a subscriber fails first.
func (s *subscribers) wait(ready <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	case err := <-s.errs:
		return err
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// startRemote starts m remote subscribers, each a client.Subscriber on its own
// connection: it follows the engine's repeats of the feed on core NATS, each
// carrying its change's current status, and reads the feed with an ordered
// consumer of its own to catch up (from where it starts, over a gap); a change
// that carries no status reads it over the service (a client.Client), a
// request per batch of up to readBatch changes.
func startRemote(ctx context.Context, url string, m int, o *observer, start client.Start) (*subscribers, error) {
	s := newSubscribers(ctx, m)
	for i := range m {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench subscriber %d", i)))
		if err != nil {
			s.close()
			return nil, err
		}
		s.cleanups = append(s.cleanups, nc.Close)
		// Live, a change's repeat carries its status; catching up, a batch of
		// changes reads theirs in one request.
		sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: nc, Reader: client.New(nc), Start: start, Batch: readBatch})
		if err != nil {
			s.close()
			return nil, err
		}
		h := o.handler(i)
		s.subs = append(s.subs, sub)
		s.run(func(ctx context.Context) error { return sub.Run(ctx, h) })
		if err := s.wait(sub.Ready()); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// replica is the projection replica that in-process subscribers share: its own
// Pebble store in this process, following the log for the whole run.
type replica struct {
	nc     *nats.Conn
	proj   *projections.Projection
	reader *engine.LocalReader
	cancel context.CancelFunc
	done   chan error
}

func openReplica(ctx context.Context, url, dir string, cfg Config) (*replica, error) {
	nc, err := nats.Connect(url, nats.Name("bench in-process replica"))
	if err != nil {
		return nil, err
	}
	proj, err := projections.Open(dir, projections.Options{Logger: cfg.Logger})
	if err != nil {
		nc.Close()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		proj.Close()
		return nil, err
	}
	follower, err := projections.NewFollower(projections.FollowerConfig{Projection: proj, JetStream: js, Stream: events.LogStream, Logger: cfg.Logger})
	if err != nil {
		nc.Close()
		proj.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &replica{nc: nc, proj: proj, cancel: cancel, done: make(chan error, 1),
		reader: &engine.LocalReader{Projection: proj, Ready: follower.IsReady}}
	go func() { r.done <- follower.Run(rctx) }()
	select {
	case <-follower.Ready():
		return r, nil
	case err := <-r.done:
		r.done <- err
		r.close()
		return nil, fmt.Errorf("replica: %w", err)
	case <-ctx.Done():
		r.close()
		return nil, ctx.Err()
	}
}

func (r *replica) close() {
	r.cancel()
	<-r.done
	r.proj.Close()
	r.nc.Close()
}

// startInProcess starts m subscribers in this process on the shared replica,
// through one hub.
func startInProcess(ctx context.Context, rep *replica, m int, o *observer, cfg Config, start client.Start) (*subscribers, error) {
	s := newSubscribers(ctx, m+1)
	hub, err := client.NewHub(client.HubConfig{Conn: rep.nc, Reader: rep.reader, Logger: cfg.Logger, Queue: 4096, Start: start})
	if err != nil {
		return nil, err
	}
	// Subscribe before the hub runs: from its first change on, every one
	// reaches every subscriber.
	for i := range m {
		sub, h := hub.Subscribe(), o.handler(i)
		s.run(func(ctx context.Context) error { return sub.Run(ctx, h) })
	}
	s.run(hub.Run)
	if err := s.wait(hub.Ready()); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// latency merges the histograms, after the pending deliveries are timed.
func (o *observer) latency() Latency {
	if !o.timing {
		return Latency{}
	}
	for i, st := range o.subs {
		for _, d := range st.pending {
			if ack := o.acks.get(d.seq); ack > 0 {
				o.record(i, d.at-ack)
			}
		}
		st.pending = nil
	}
	all := newHistogram()
	for _, h := range o.hists {
		all.Merge(h)
	}
	return Latency{Count: all.TotalCount(), P50: float64(all.ValueAtQuantile(50)), P90: float64(all.ValueAtQuantile(90)),
		P99: float64(all.ValueAtQuantile(99)), P999: float64(all.ValueAtQuantile(99.9)), Max: float64(all.Max())}
}
