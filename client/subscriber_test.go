package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// collector records the changes a handler is given.
type collector struct {
	mu      sync.Mutex
	changes []client.Change
	reads   []client.Reply
}

func (c *collector) add(ch client.Change, cur client.Reply) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, ch)
	c.reads = append(c.reads, cur)
	return len(c.changes)
}

// current is a handler that reads each change's current status and adds
// both.
func (c *collector) current(ctx context.Context, ch client.Change) error {
	cur, err := ch.Current(ctx)
	if err != nil {
		return err
	}
	c.add(ch, cur)
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.changes)
}

func (c *collector) seqs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uint64, len(c.changes))
	for i, ch := range c.changes {
		out[i] = ch.Seq
	}
	return out
}

// runSubscriber runs a subscriber until ctx is done; the returned channel gets
// Run's result.
func runSubscriber(t testing.TB, ctx context.Context, cfg client.SubscriberConfig, h client.Handler) <-chan error {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = natstest.Logger(t)
	}
	sub, err := client.NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx, h) }()
	return done
}

// feedSeqs returns the feed positions of the feed's entries.
func feedSeqs(t testing.TB, r *enginetest.Running) []uint64 {
	t.Helper()
	var out []uint64
	for _, f := range enginetest.ReadFeed(t, r.JetStream(t)) {
		out = append(out, f.FeedSeq)
	}
	return out
}

// positionsOf returns the feed positions of the visible changes at the log
// sequences given (set results' Seq), counted from r's log.
func positionsOf(t testing.TB, r *enginetest.Running, logSeqs ...uint64) []uint64 {
	t.Helper()
	positions := enginetest.FeedPositions(enginetest.ReadLog(t, r.JetStream(t)))
	out := make([]uint64, len(logSeqs))
	for i, s := range logSeqs {
		pos, ok := positions[s]
		if !ok {
			t.Fatalf("log seq %d is no visible change: it has no feed position", s)
		}
		out[i] = pos
	}
	return out
}

// TestDurableSubscriberResumes stops a durable subscriber mid-stream, writes
// more, and starts it again: together the two runs see every change once, in
// order.
func TestDurableSubscriberResumes(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	enginetest.WriteRandom(t, r.Writer(), rng, 8, 150)
	r.WaitFeed(t)
	nc := r.Connect(t)
	var seen collector

	ctx, cancel := context.WithCancel(context.Background())
	done := runSubscriber(t, ctx, client.SubscriberConfig{Conn: nc, Reader: r.Reader(), Durable: "resumer", Start: client.StartAll(), Batch: 16},
		func(ctx context.Context, ch client.Change) error {
			if seen.add(ch, client.Reply{}) == 40 {
				cancel() // stop mid-batch
			}
			return nil
		})
	natstest.Stopped(t, "subscriber", done)
	cancel()
	first := seen.len()
	if first < 40 || first >= len(feedSeqs(t, r)) {
		t.Fatalf("first run handled %d changes, want at least 40 and not all", first)
	}

	enginetest.WriteRandom(t, r.Writer(), rng, 8, 100)
	r.WaitFeed(t)
	want := feedSeqs(t, r)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done = runSubscriber(t, ctx, client.SubscriberConfig{Conn: nc, Reader: r.Reader(), Durable: "resumer", Start: client.StartNew(), Batch: 16},
		func(ctx context.Context, ch client.Change) error {
			seen.add(ch, client.Reply{})
			return nil
		})
	natstest.WaitFor(t, "the second run to reach the end of the feed", func() bool { return seen.len() >= len(want) })
	cancel()
	natstest.Stopped(t, "subscriber", done)
	got := seen.seqs()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("two runs saw %d changes %v\nthe feed holds %d: %v", len(got), got, len(want), want)
	}
}

// TestHandlerReadIsNeverOlderThanItsChange reads the current status in every
// handler, in-process and over the service, while writes go on.
func TestHandlerReadIsNeverOlderThanItsChange(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	readers := map[string]client.Reader{"local": r.Reader(), "remote": r.Client(t)}
	cols := map[string]*collector{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var dones []<-chan error
	for name, rd := range readers {
		col := &collector{}
		cols[name] = col
		dones = append(dones, runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: rd, Start: client.StartAll()},
			col.current))
	}
	enginetest.WriteRandom(t, r.Writer(), rand.New(rand.NewPCG(7, 8)), 3, 300)
	r.WaitFeed(t)
	want := len(feedSeqs(t, r))
	log := enginetest.ReadLog(t, r.JetStream(t))
	if len(log) == want {
		t.Fatalf("the log of %d events has no hidden change: the test proves nothing", len(log))
	}
	bySeq := map[uint64]events.Event{} // by feed position
	positions := enginetest.FeedPositions(log)
	for _, le := range log {
		if pos, ok := positions[le.Seq]; ok {
			bySeq[pos] = le.Event
		}
	}
	for name, col := range cols {
		natstest.WaitFor(t, name+" subscriber to see every change", func() bool { return col.len() >= want })
		col.mu.Lock()
		for i, ch := range col.changes {
			cur := col.reads[i]
			if cur.Seq < ch.Seq {
				t.Errorf("%s: change at seq %d read a status as of seq %d, older than the change", name, ch.Seq, cur.Seq)
			}
			if e := bySeq[cur.Seq]; e.Contact != ch.Contact || e.Status.Visible() != cur.Status {
				t.Errorf("%s: read %+v, but the log's visible change at feed position %d is %+v", name, cur, cur.Seq, e)
			}
			if cur.Status == events.Invisible || ch.Previous == events.Invisible {
				t.Errorf("%s: subscriber saw invisible: change %+v, read %+v", name, ch, cur)
			}
		}
		col.mu.Unlock()
	}
	cancel()
	for _, d := range dones {
		natstest.Stopped(t, "subscriber", d)
	}
}

// TestBlockedHandlerHoldsUpNoOne blocks one subscriber's handler for good: the
// fold, the feed and another subscriber carry on.
func TestBlockedHandlerHoldsUpNoOne(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var blocked collector
	doneBlocked := runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Start: client.StartAll(), Durable: "stuck"},
		func(ctx context.Context, ch client.Change) error {
			blocked.add(ch, client.Reply{})
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		})
	var free collector
	doneFree := runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Start: client.StartAll()},
		free.current)
	enginetest.WriteRandom(t, r.Writer(), rand.New(rand.NewPCG(9, 10)), 20, 400)
	r.WaitFeed(t)
	want := len(feedSeqs(t, r))
	natstest.WaitFor(t, "the free subscriber to see every change", func() bool { return free.len() >= want })
	if got := blocked.len(); got != 1 {
		t.Errorf("blocked subscriber was handed %d changes, want 1 (it never returned)", got)
	}
	log := enginetest.ReadLog(t, r.JetStream(t))
	if err := r.Projection().WaitApplied(natstest.Context(t), log[len(log)-1].Seq); err != nil {
		t.Errorf("fold held up: %v", err)
	}
	close(release)
	cancel()
	natstest.Stopped(t, "subscriber", doneBlocked)
	natstest.Stopped(t, "subscriber", doneFree)
}

// hider makes hidden changes: a contact already offline going invisible and
// back, which are in the log but not in the feed, so that log sequences and
// feed positions part.
type hider struct {
	w enginetest.Setter
	n int
}

// newHider makes the hider's contact offline: one visible change.
func newHider(t testing.TB, w enginetest.Setter) *hider {
	t.Helper()
	if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "ghost", Status: events.Offline}); err != nil {
		t.Fatal(err)
	}
	return &hider{w: w}
}

// hide makes one hidden change.
func (h *hider) hide(t testing.TB) {
	t.Helper()
	h.n++
	res, err := h.w.Set(natstest.Context(t), client.SetRequest{Contact: "ghost", Status: []events.Status{events.Offline, events.Invisible}[h.n%2]})
	if err != nil || !res.Changed {
		t.Fatalf("hidden set: %+v, %v", res, err)
	}
}

// TestSubscriberStarts: a subscription starts where its Start says, a feed
// position counting visible changes only, hidden ones between them.
func TestSubscriberStarts(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	w := r.Writer()
	ctx := natstest.Context(t)
	h := newHider(t, w) // feed position 1; then one for each set
	for i, st := range []events.Status{events.Online, events.Away, events.Busy, events.Online, events.Away} {
		contact := "alice"
		if i%2 == 1 {
			contact = "bob"
		}
		h.hide(t)
		if _, err := w.Set(ctx, client.SetRequest{Contact: contact, Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitFeed(t)
	tests := []struct {
		name  string
		start client.Start
		only  []string
		want  []uint64
	}{
		{"all", client.StartAll(), nil, []uint64{1, 2, 3, 4, 5, 6}},
		{"from seq", client.StartAtSeq(4), nil, []uint64{4, 5, 6}},
		{"one contact", client.StartAll(), []string{"bob"}, []uint64{3, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var col collector
			ctx, cancel := context.WithCancel(context.Background())
			done := runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Start: tt.start, Contacts: tt.only},
				func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
			// A marker change after the expected ones tells when to stop looking.
			marker, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "marker-" + tt.name[:3], Status: events.Online})
			if err != nil {
				t.Fatal(err)
			}
			if tt.only == nil {
				pos := positionsOf(t, r, marker.Seq)[0]
				natstest.WaitFor(t, "the marker", func() bool { s := col.seqs(); return len(s) > 0 && s[len(s)-1] == pos })
			} else {
				natstest.WaitFor(t, "the expected changes", func() bool { return col.len() >= len(tt.want) })
			}
			cancel()
			natstest.Stopped(t, "subscriber", done)
			var got []uint64 // leave out the markers
			for _, seq := range col.seqs() {
				if seq <= 6 {
					got = append(got, seq)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("saw %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStartPastTheEnd starts at a feed position the feed has not reached:
// changes before it are not handed over, even those that reach the feed after
// the start, and the one at it is, whatever hidden changes come between.
func TestStartPastTheEnd(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	w := r.Writer()
	// Feed positions: the hider's contact 1, alice online 2.
	h := newHider(t, w)
	if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	r.WaitFeed(t)
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	done := runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Start: client.StartAtSeq(5)},
		func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
	for _, st := range []events.Status{events.Away, events.Busy, events.Online, events.Away} { // 3 to 6
		h.hide(t)
		if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, "the last change", func() bool { s := col.seqs(); return len(s) > 0 && s[len(s)-1] == 6 })
	cancel()
	natstest.Stopped(t, "subscriber", done)
	if got, want := fmt.Sprint(col.seqs()), fmt.Sprint([]uint64{5, 6}); got != want {
		t.Errorf("saw %s, want %s", got, want)
	}
}

func TestHandlerErrorsAreRetried(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	var calls collector
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Start: client.StartAll(), Durable: "flaky", RetryWait: time.Millisecond},
		func(ctx context.Context, ch client.Change) error {
			if calls.add(ch, client.Reply{}) < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	if _, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "three tries", func() bool { return calls.len() >= 3 })
	cancel()
	natstest.Stopped(t, "subscriber", done)
	if got := calls.seqs(); fmt.Sprint(got) != "[1 1 1]" {
		t.Errorf("handler was handed %v, want the one change three times", got)
	}
}

// TestDurableSubscriberAfterACrash drops a durable subscriber's connection in the
// middle of a batch, as a crash would: the next run resumes right after the last
// change acknowledged, in order, without waiting for redelivery, and with no gap.
func TestDurableSubscriberAfterACrash(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	enginetest.WriteRandom(t, r.Writer(), rand.New(rand.NewPCG(11, 12)), 6, 200)
	r.WaitFeed(t)
	want := feedSeqs(t, r)

	crashConn := r.Connect(t)
	var first collector
	ctx, cancel := context.WithCancel(context.Background())
	done := runSubscriber(t, ctx, client.SubscriberConfig{Conn: crashConn, Reader: r.Reader(), Durable: "crashy", Start: client.StartAll(), Batch: 32, AckWait: time.Minute},
		func(ctx context.Context, ch client.Change) error {
			if first.add(ch, client.Reply{}) == 50 {
				crashConn.Close() // no more acks get out
			}
			return nil
		})
	natstest.WaitFor(t, "the crash", func() bool { return first.len() >= 50 })
	cancel()
	natstest.Stopped(t, "subscriber", done)

	var second collector
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done = runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Durable: "crashy", Batch: 32, AckWait: time.Minute},
		func(ctx context.Context, ch client.Change) error { second.add(ch, client.Reply{}); return nil })
	natstest.WaitFor(t, "the second run to reach the end of the feed", func() bool {
		s := second.seqs()
		return len(s) > 0 && s[len(s)-1] == want[len(want)-1]
	})
	cancel()
	natstest.Stopped(t, "subscriber", done)
	got := second.seqs()
	// The second run starts at or before the change after the last one the
	// first run handled, and then goes on in order without a gap.
	firstSeqs := first.seqs()
	lastHandled := firstSeqs[len(firstSeqs)-1]
	i := slices.Index(want, got[0])
	if i < 0 || got[0] > want[slices.Index(want, lastHandled)+1] {
		t.Fatalf("second run starts at seq %d, after the first unhandled change", got[0])
	}
	if fmt.Sprint(got) != fmt.Sprint(want[i:]) {
		t.Errorf("second run saw %v, want %v", got, want[i:])
	}
}

// TestStartAtSeqOnAnEmptyFeed starts at a feed position before anything was
// written.
func TestStartAtSeqOnAnEmptyFeed(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	done := runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Start: client.StartAtSeq(1)},
		func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
	res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Online})
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the first change", func() bool { return col.len() >= 1 })
	cancel()
	natstest.Stopped(t, "subscriber", done)
	if got := col.seqs(); fmt.Sprint(got) != fmt.Sprint([]uint64{res.Seq}) {
		t.Errorf("saw %v, want [%d]", got, res.Seq)
	}
}

// TestDurableSubscriberMissesNoDelivery loses one delivery of a durable's
// consumer, as a fetch that timed out on its way in does: the server counts
// the change as delivered and pending, and hands over the next one. The
// subscriber sees the gap in the consumer's delivery sequence and goes back
// for the lost change, instead of handing over the next one first and the lost
// one never (a redelivery after AckWait comes after changes handled since).
func TestDurableSubscriberMissesNoDelivery(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	w := r.Writer()
	setOne := func(contact string, status events.Status) uint64 {
		t.Helper()
		res, err := w.Set(natstest.Context(t), client.SetRequest{Contact: contact, Status: status})
		if err != nil {
			t.Fatal(err)
		}
		r.WaitFeed(t)
		return res.Seq
	}
	a := setOne("a", events.Online)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var seen collector
	done := runSubscriber(t, ctx, client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Durable: "gappy",
		Start: client.StartAll(), Batch: 4, AckWait: time.Minute},
		func(ctx context.Context, ch client.Change) error {
			if seen.add(ch, client.Reply{}) == 1 {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	natstest.WaitFor(t, "the first change to be handed over", func() bool { return seen.len() == 1 })

	feed, err := r.JetStream(t).Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := feed.Consumer(natstest.Context(t), "gappy")
	if err != nil {
		t.Fatal(err)
	}
	// The subscriber's own pull request runs out while its handler is held,
	// so the next change can be taken from under it.
	natstest.WaitFor(t, "the subscriber's pull request to expire", func() bool {
		info, err := cons.Info(natstest.Context(t))
		return err == nil && info.NumWaiting == 0
	})
	b := setOne("b", events.Busy)
	lost, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for m := range lost.Messages() {
		if md, err := m.Metadata(); err != nil || md.Sequence.Stream == 0 {
			t.Fatalf("lost delivery: %v", err)
		}
		n++ // and never acknowledged
	}
	if n != 1 || lost.Error() != nil {
		t.Fatalf("took %d deliveries (%v), want 1", n, lost.Error())
	}
	c := setOne("c", events.Away)
	close(release)

	natstest.WaitFor(t, "the subscriber to reach the last change", func() bool { return slices.Contains(seen.seqs(), c) })
	cancel()
	natstest.Stopped(t, "subscriber", done)
	if got, want := seen.seqs(), []uint64{a, b, c}; !slices.Equal(got, want) {
		t.Errorf("handed over seqs %v, want %v", got, want)
	}
}

// TestStartNewAcrossAReconnection: an ephemeral subscriber that reads the feed
// from an ordered consumer (Contacts set, as `presence watch alice` does; or
// LiveCheck < 0; or a user refused LivePrefix) started with StartNew, and
// handed nothing yet, loses its connection. A change made while it is away is
// still handed over: nats.go makes the ordered consumer again with the policy
// it was first given (its cursor is still 0), and with DeliverNew that would
// start after the change.
func TestStartNewAcrossAReconnection(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	w := r.Writer()
	p := natstest.StartProxy(t, strings.TrimPrefix(r.ClientURL(), "nats://"))
	nc, err := nats.Connect(p.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen collector
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: nc, Reader: r.Reader(), Contacts: []string{"alice"},
		Logger: natstest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(_ context.Context, c client.Change) error { seen.add(c, client.Reply{}); return nil })
	}()
	<-sub.Ready()

	reconnects := nc.Stats().Reconnects
	p.Pause()
	natstest.WaitFor(t, "the subscriber's connection to drop", func() bool { return !nc.IsConnected() })
	away, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Away})
	if err != nil {
		t.Fatal(err)
	}
	r.WaitFeed(t)
	p.Resume()
	natstest.WaitFor(t, "the subscriber to reconnect", func() bool { return nc.IsConnected() && nc.Stats().Reconnects > reconnects })

	// Sets until one is handed over: the consumer nats.go makes again after
	// the reconnection may also start after the first sets made since.
	var sets []uint64
	natstest.WaitFor(t, "a change after the reconnection", func() bool {
		res, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: []events.Status{events.Busy, events.Online}[len(sets)%2]})
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, res.Seq)
		return seen.len() > 0
	})
	cancel()
	natstest.Stopped(t, "subscriber", done)
	want := append([]uint64{away.Seq}, sets...)
	if got := seen.seqs(); len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
		t.Errorf("handed over seqs %v, want %d (made while disconnected) first, then %v in order",
			got, away.Seq, sets)
	}
}

// TestDurableStartedPastTheEndRemembersItsStart: a durable made to start at a
// feed position the feed has not reached steps over the changes before it, in
// every run: run again before it got there, it still hands over none of them.
// (TestDurableStartedAtATimeStepsOverOnlyUntilThen covers the same for a
// time.)
func TestDurableStartedPastTheEndRemembersItsStart(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	w := r.Writer()
	// Feed positions: the hider's contact 1, alice online 2.
	h := newHider(t, w)
	if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	r.WaitFeed(t)
	const start = 5
	var col collector
	cfg := client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Durable: "past-the-end", Start: client.StartAtSeq(start)}
	handle := func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil }
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := client.NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx, handle) }()
	<-sub.Ready()
	cancel()
	natstest.Stopped(t, "subscriber", done)

	for _, st := range []events.Status{events.Away, events.Busy, events.Online, events.Away} { // 3 to 6
		h.hide(t)
		if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel = context.WithCancel(context.Background())
	done2 := runSubscriber(t, ctx, cfg, handle)
	natstest.WaitFor(t, "the last change", func() bool { s := col.seqs(); return len(s) > 0 && s[len(s)-1] == start+1 })
	cancel()
	natstest.Stopped(t, "subscriber", done2)
	if got, want := col.seqs(), []uint64{start, start + 1}; !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v: run again, the durable handed changes before its StartAtSeq", got, want)
	}
}

// TestResumedDurableSaysWhatChanged: a durable subscription that exists
// resumes where it stopped, whatever start it is given, and follows the
// contacts it is given now; it says so, rather than leave the caller to
// believe its start was taken, or miss that it follows others now.
func TestResumedDurableSaysWhatChanged(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	run := func(cfg client.SubscriberConfig) string {
		t.Helper()
		var logs natstest.LockedBuffer
		cfg.Conn, cfg.Reader, cfg.Durable = r.Connect(t), r.Client(t), "crm"
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		sub, err := client.NewSubscriber(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cancel, done := runCollecting(t, sub, &collector{})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return logs.String()
	}
	const startIgnored, othersNow = "a start applies only to a new one", "now follows other contacts than before"
	if out := run(client.SubscriberConfig{Start: client.StartAll()}); strings.Contains(out, startIgnored) || strings.Contains(out, othersNow) {
		t.Errorf("the durable's first run said %q; it was made as asked", out)
	}
	if out := run(client.SubscriberConfig{Start: client.StartAll()}); !strings.Contains(out, startIgnored) {
		t.Errorf("resumed with a start, it said %q; want it to say the start applies only to a new one", out)
	}
	if out := run(client.SubscriberConfig{Contacts: []string{"sip:alice@contoso.com"}}); !strings.Contains(out, othersNow) ||
		!strings.Contains(out, "was=\"every contact\"") || !strings.Contains(out, events.ChangeSubject("sip:alice@contoso.com")) {
		t.Errorf("resumed with other contacts, it said %q; want it to say it follows alice now, not every contact", out)
	}
}
