package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// stalledReader never answers within its caller's deadline: a projection
// that does not move.
type stalledReader struct{}

func (stalledReader) AppliedFeed() uint64 { return 0 }

func (stalledReader) Status(ctx context.Context, _ string, _ uint64) (client.Reply, error) {
	<-ctx.Done()
	return client.Reply{}, ctx.Err()
}

// TestFeedIsNotHeldUpByItsRepeats: when the status its repeats carry cannot
// be read (the projection stalled), the feed still derives every entry at its
// own pace; the repeats it cannot keep up with are dropped (and counted), and
// those it makes carry no status.
func TestFeedIsNotHeldUpByItsRepeats(t *testing.T) {
	s := natstest.Start(t)
	nc, js := natstest.JetStream(t, s)
	if err := engine.EnsureStreams(natstest.Context(t), js, engine.StreamOptions{}, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	const n = 60
	var last uint64
	for i := range n {
		e := events.Event{Contact: fmt.Sprintf("c%d", i), Status: events.Online, Previous: events.Unknown,
			At: time.Now().UTC(), Cause: events.CauseUser}
		ack, err := js.Publish(natstest.Context(t), events.EventSubject(e.Contact), e.Encode())
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	repeats, err := nc.SubscribeSync(events.LivePrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	seal, err := engine.SealOf(natstest.Context(t), js)
	if err != nil {
		t.Fatal(err)
	}
	f, err := engine.NewFeed(engine.FeedConfig{Conn: nc, Logger: natstest.Logger(t), MaxInFlight: 4, Seal: seal, Current: stalledReader{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	natstest.WaitFor(t, fmt.Sprintf("the feed to hold all %d entries", n), func() bool { return f.Position() == last })
	m := f.Metrics()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.Published != n || m.RepeatsDropped == 0 {
		t.Errorf("published %d entries and dropped %d repeats; want %d published, and repeats dropped", m.Published, m.RepeatsDropped, n)
	}
	msg, err := repeats.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no repeat at all: %v", err)
	}
	if h := msg.Header.Get(client.CurrentHeader); h != "" {
		t.Errorf("a repeat carries status %s that could not be read", h)
	}
	checkFeed(t, js)
}

// foldingReader reads a real projection that moves only when told: before a
// read that may wait (its ctx not done yet), fold (if set) brings it up to the
// change read for, as a projection a moment behind would get there while the
// read waits. (It folds to the log sequence of the feed position read for:
// the tests that use it make visible changes only, from the log's first
// event, so the two are equal.)
type foldingReader struct {
	engine.LocalReader
	fold atomic.Pointer[func(seq uint64)]
}

func (r *foldingReader) Status(ctx context.Context, contact string, minSeq uint64) (client.Reply, error) {
	if f := r.fold.Load(); f != nil && ctx.Err() == nil {
		(*f)(minSeq)
	}
	return r.LocalReader.Status(ctx, contact, minSeq)
}

// TestRepeatsAreNotHeldBehindAStalledProjection: while the projection does not
// move, the repeats go out at the feed's pace, without the status they cannot
// have (one wait, not one per entry: 30 waits would trail the feed by 30 of
// them); once the projection is past the change the repeater waited for in
// vain (though not past those after it), the repeats wait for it again and
// carry the status.
func TestRepeatsAreNotHeldBehindAStalledProjection(t *testing.T) {
	s := natstest.Start(t)
	nc, js := natstest.JetStream(t, s)
	if err := engine.EnsureStreams(natstest.Context(t), js, engine.StreamOptions{}, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	p, err := projections.Open(t.TempDir(), projections.Options{Logger: natstest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	reader := &foldingReader{LocalReader: engine.LocalReader{Projection: p}}
	repeats, err := nc.SubscribeSync(events.LivePrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	seal, err := engine.SealOf(natstest.Context(t), js)
	if err != nil {
		t.Fatal(err)
	}
	f, err := engine.NewFeed(engine.FeedConfig{Conn: nc, Logger: natstest.Logger(t), Seal: seal, Current: reader})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	set := func(contact string) uint64 {
		e := events.Event{Contact: contact, Status: events.Online, Previous: events.Unknown, At: time.Now().UTC(), Cause: events.CauseUser}
		ack, err := js.Publish(natstest.Context(t), events.EventSubject(e.Contact), e.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	const n = 30
	first := set("c0") // the repeat the repeater waits for in vain
	for i := 1; i < n; i++ {
		set(fmt.Sprintf("c%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := range n {
		msg, err := repeats.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("%d of %d repeats within 10s of a stalled projection: they wait for it one by one (%v)", i, n, err)
		}
		if h := msg.Header.Get(client.CurrentHeader); h != "" {
			t.Errorf("repeat %s carries status %s that the stalled projection does not have", msg.Header.Get(client.FeedSeqHeader), h)
		}
	}

	logStream, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	fold := func(seq uint64) {
		if err := p.FoldLog(ctx, logStream, seq, nil); err != nil {
			t.Errorf("fold the log to seq %d: %v", seq, err)
		}
	}
	// The projection gets past the first change only: the next repeat waits,
	// and the projection reaches it meanwhile.
	fold(first)
	reader.fold.Store(&fold)
	set("back")
	msg, err := repeats.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no repeat once the projection is back: %v", err)
	}
	var cur client.Reply
	if err := cur.UnmarshalJSON([]byte(msg.Header.Get(client.CurrentHeader))); err != nil || cur.Contact != "back" || cur.Status != events.Online {
		t.Errorf("the repeat once the projection is past the change waited for carries %q (%v), want back's status, online: "+
			"the repeater did not wait for the projection again", msg.Header.Get(client.CurrentHeader), err)
	}
	if m := f.Metrics(); m.RepeatsDropped != 0 {
		t.Errorf("%d repeats dropped, want none: the repeater keeps up", m.RepeatsDropped)
	}
}
