package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// appendRaw appends e to the log behind the owner's back, as a former owner's
// late append would be, with msgID if not empty, and returns its sequence.
func appendRaw(t testing.TB, js jetstream.JetStream, e events.Event, msgID string) uint64 {
	t.Helper()
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := js.PublishMsg(natstest.Context(t), &nats.Msg{Subject: events.EventSubject(e.Contact), Data: e.Encode()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// owner returns which of the engines owns the log, once exactly one does.
func owner(t testing.TB, engines ...*enginetest.Running) (own *enginetest.Running, others []*enginetest.Running) {
	t.Helper()
	natstest.WaitFor(t, "one engine to own the log", func() bool {
		n := 0
		for _, r := range engines {
			if r.Writer().Owning() {
				n++
			}
		}
		return n == 1
	})
	for _, r := range engines {
		if r.Writer().Owning() {
			own = r
		} else {
			others = append(others, r)
		}
	}
	return own, others
}

// twoEngines starts a server and two engines on it, and returns the server,
// the engine that owns the log and the other.
func twoEngines(t *testing.T) (s *server.Server, own, other *enginetest.Running) {
	t.Helper()
	s = natstest.Start(t)
	a := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	b := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	own, others := owner(t, a, b)
	return s, own, others[0]
}

// TestTwoEnginesOneOwnerKeepTheChain races clients of two engines on a few
// contacts: one engine owns the log and appends; the other passes its sets on;
// every event's previous is the status of the contact's event before it, and
// every acknowledged change is in the log once.
func TestTwoEnginesOneOwnerKeepTheChain(t *testing.T) {
	s, own, other := twoEngines(t)
	statuses := []events.Status{events.Online, events.Away, events.Busy, events.Invisible, events.Offline, events.DoNotDisturb}
	const clients, sets = 8, 50
	var (
		mu    sync.Mutex
		acked []client.SetResult
		wg    sync.WaitGroup
	)
	for i := range clients {
		c := client.New(natstest.Connect(t, s))
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range sets {
				res, err := c.Set(context.Background(), client.SetRequest{Contact: fmt.Sprintf("sip:c%d@contoso.com", rng.IntN(3)),
					Status: statuses[rng.IntN(len(statuses))], Name: fmt.Sprintf("client %d", i)})
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				mu.Lock()
				acked = append(acked, res)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	log := enginetest.ReadLog(t, own.JetStream(t))
	enginetest.CheckChains(t, log)
	bySeq := map[uint64]events.Event{}
	for _, le := range log {
		bySeq[le.Seq] = le.Event
	}
	changed := 0
	for _, res := range acked {
		if !res.Changed {
			continue
		}
		changed++
		if e, ok := bySeq[res.Seq]; !ok || e.Contact != res.Contact || e.Status != res.Status || e.Previous != res.Previous {
			t.Errorf("acknowledged %+v, log holds %+v (present: %v)", res, e, ok)
		}
		delete(bySeq, res.Seq)
	}
	if changed != len(log) {
		t.Errorf("%d sets acknowledged as changes, log holds %d events", changed, len(log))
	}
	if m := other.Metrics().Writer; m.Appended != 0 || m.PassedOn == 0 {
		t.Errorf("the engine that does not own the log: %+v; want no appends, and sets passed on", m)
	}
	if m := own.Metrics().Writer; m.Conflicts != 0 {
		t.Errorf("the owner: %+v; want no conflicts, as no one else appends", m)
	}
}

// TestOwnershipMovesWhenTheOwnerStops: an owner that stops hands the log over
// at once, and the sets go on through the other engine with the chain kept.
func TestOwnershipMovesWhenTheOwnerStops(t *testing.T) {
	s, own, other := twoEngines(t)
	c := client.New(natstest.Connect(t, s))
	ctx := natstest.Context(t)
	if _, err := c.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	own.Stop(t)
	next, _ := owner(t, other)
	if took := time.Since(start); took > engine.DefaultOwnerTTL/2 {
		t.Errorf("the log moved %s after its owner stopped, want at once, well within the TTL (%s)", took, engine.DefaultOwnerTTL)
	}
	res, err := c.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Away})
	if err != nil || res.Previous != events.Online || !res.Changed {
		t.Fatalf("set after the move: %+v, %v; want online -> away", res, err)
	}
	if m := next.Metrics().Writer; m.Appended != 1 {
		t.Errorf("the new owner appended %d events, want 1", m.Appended)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, next.JetStream(t)))
}

// TestOwnershipMovesWhenTheOwnerIsCutOff: an owner cut off from NATS (as one
// that died) keeps the log no longer than the owners' TTL: another engine
// takes it over and appends, the cut-off one stops counting itself the owner
// on its own, and once back it does not take the log again.
func TestOwnershipMovesWhenTheOwnerIsCutOff(t *testing.T) {
	s := natstest.Start(t)
	const ttl = time.Second
	streams := engine.StreamOptions{OwnerTTL: ttl}
	p := natstest.StartProxy(t, s.Addr().String())
	a := enginetest.Start(t, "", engine.Options{NATSURL: p.URL(), Streams: streams})
	natstest.WaitFor(t, "the first engine to own the log", a.Writer().Owning)
	b := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL(), Streams: streams})
	c := client.New(natstest.Connect(t, s))
	ctx := natstest.Context(t)
	if _, err := c.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}

	p.Pause()
	start := time.Now()
	both := false // a sample where both counted themselves the owner
	natstest.WaitFor(t, "the other engine to take the log over", func() bool {
		bOwns := b.Writer().Owning()
		both = both || (bOwns && a.Writer().Owning())
		return bOwns
	})
	if both {
		t.Error("the cut-off engine still counted itself the owner when the other took the log over; it must let go first")
	}
	if took := time.Since(start); took > 2*ttl {
		t.Errorf("the log moved %s after its owner was cut off, want within the TTL (%s) and a refresh", took, ttl)
	}
	natstest.WaitFor(t, "the cut-off engine to stop counting itself the owner", func() bool { return !a.Writer().Owning() })
	res, err := c.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Busy})
	if err != nil || res.Previous != events.Online {
		t.Fatalf("set while the first owner is cut off: %+v, %v; want online -> busy", res, err)
	}
	p.Resume()
	natstest.WaitFor(t, "the first engine to see the other own the log", func() bool { return a.Metrics().Ready })
	if a.Writer().Owning() || !b.Writer().Owning() {
		t.Errorf("after the first engine came back: owning %v and %v, want the second alone", a.Writer().Owning(), b.Writer().Owning())
	}
	if _, err := c.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Away}); err != nil {
		t.Fatal(err)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, b.JetStream(t)))
}

// TestAnAppendBehindTheOwnersBackIsNoticed: an event the owner did not append
// (a former owner's, late) makes the owner's next append fail its check of the
// log's last sequence; the owner reads the log again and decides the set on
// what it holds, so the chain is kept.
func TestAnAppendBehindTheOwnersBackIsNoticed(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	js := r.JetStream(t)
	w := r.Writer()
	ctx := natstest.Context(t)
	if _, err := w.Set(ctx, client.SetRequest{Contact: "erin", Status: events.Away}); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, js, events.Event{Contact: "erin", Status: events.Online, Previous: events.Away}, "")
	res, err := w.Set(ctx, client.SetRequest{Contact: "erin", Status: events.Busy})
	if err != nil || !res.Changed || res.Previous != events.Online {
		t.Errorf("set busy after an append behind the owner's back set online = %+v, %v; want online -> busy", res, err)
	}
	if m := w.Metrics(); m.Conflicts != 1 {
		t.Errorf("conflicts = %d, want 1: the append that found the log moved on", m.Conflicts)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, js))
}

// TestAnOwnerRestartedTakesTheLogBackAtOnce: an engine that died owning the
// log (its store copied while it ran, as a crash leaves it) starts again and
// owns the log at once, not after the TTL of its former self.
func TestAnOwnerRestartedTakesTheLogBackAtOnce(t *testing.T) {
	dir := t.TempDir()
	r := enginetest.Start(t, dir, engine.Options{})
	if _, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	natstest.CopyDir(t, dir, crashed)
	r.Stop(t)
	start := time.Now()
	again := enginetest.Start(t, crashed, engine.Options{})
	natstest.WaitFor(t, "the restarted engine to own the log", again.Writer().Owning)
	if took := time.Since(start); took > engine.DefaultOwnerTTL/2 {
		t.Errorf("the restarted engine owned the log %s after it started, want at once, well within the TTL (%s)", took, engine.DefaultOwnerTTL)
	}
	res, err := again.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "bob", Status: events.Away})
	if err != nil || res.Previous != events.Online {
		t.Errorf("set after the restart: %+v, %v; want online -> away", res, err)
	}
}

// TestARetryAcrossAMoveIsOneEvent: a set retried with its request ID after
// the log moved to another engine is answered as the first time, and the log
// holds it once.
func TestARetryAcrossAMoveIsOneEvent(t *testing.T) {
	s, own, _ := twoEngines(t)
	c := client.New(natstest.Connect(t, s))
	ctx := natstest.Context(t)
	req := client.SetRequest{Contact: "bob", Status: events.Busy, RequestID: "r-1"}
	first, err := c.Set(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	own.Stop(t)
	again, err := c.Set(ctx, req)
	if err != nil || again != first {
		t.Errorf("retry after the move: %+v, %v; want the first answer %+v", again, err, first)
	}
	n := 0
	_, js := natstest.JetStream(t, s)
	for _, le := range enginetest.ReadLog(t, js) {
		if le.Event.RequestID == "r-1" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the log holds %d events of r-1, want 1", n)
	}
}

// lostAcks is a JetStream whose appends, while lose is set, are stored but
// answered as if their acknowledgement never came: after then, if set, runs.
type lostAcks struct {
	jetstream.JetStream
	lose atomic.Bool
	then func()
}

func (j *lostAcks) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	fut, err := j.JetStream.PublishMsgAsync(m, opts...)
	if err != nil || !j.lose.Swap(false) {
		return fut, err
	}
	lost := &lostFuture{PubAckFuture: fut, err: make(chan error, 1)}
	go func() {
		select {
		case <-fut.Ok():
		case <-fut.Err():
		}
		if j.then != nil {
			j.then()
		}
		lost.err <- jetstream.ErrAsyncPublishTimeout
	}()
	return lost, nil
}

type lostFuture struct {
	jetstream.PubAckFuture
	err chan error
}

func (f *lostFuture) Ok() <-chan *jetstream.PubAck { return nil }
func (f *lostFuture) Err() <-chan error            { return f.err }

// TestLostAcknowledgementIsSettledFromTheLog: an append stored whose
// acknowledgement was lost is answered as stored, from the log, with or
// without a request ID and expect_seq; it is not appended twice, and the set
// is not answered with a 503 that a retry would find refused (409) or
// "nothing changed". So also when another append came after it.
func TestLostAcknowledgementIsSettledFromTheLog(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	js := r.JetStream(t)
	hooked := &lostAcks{}
	w := r.Writer()
	if err := w.Hook(nil, func(js jetstream.JetStream) jetstream.JetStream { hooked.JetStream = js; return hooked }); err != nil {
		t.Fatal(err)
	}
	zero := uint64(0)
	for _, req := range []client.SetRequest{
		{Contact: "bob", Status: events.Online},
		{Contact: "bob", Status: events.Away, Name: "Bob"},
		{Contact: "carol", Status: events.Busy, RequestID: "r-1", ExpectSeq: &zero},
	} {
		before := lastSeq(t, js, events.LogStream)
		hooked.lose.Store(true)
		got, err := w.Set(natstest.Context(t), req)
		if err != nil {
			t.Fatalf("set %+v with its acknowledgement lost: %v", req, err)
		}
		if hooked.lose.Load() {
			t.Fatalf("set %+v: no acknowledgement was lost", req)
		}
		stored := lastSeq(t, js, events.LogStream)
		if stored != before+1 {
			t.Errorf("set %+v appended %d events, want 1", req, stored-before)
		}
		log := enginetest.ReadLog(t, js)
		e := log[len(log)-1].Event
		want := client.SetResult{Contact: req.Contact, Status: req.Status, Previous: e.Previous, Seq: stored, Changed: true}
		if got != want || e.Contact != req.Contact || e.Status != req.Status {
			t.Errorf("set %+v answered %+v, want %+v (the log holds %+v)", req, got, want, e)
		}
	}
	if again, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "carol", Status: events.Busy, RequestID: "r-1", ExpectSeq: &zero}); err != nil ||
		again.Seq != lastSeq(t, js, events.LogStream) || !again.Changed {
		t.Errorf("retry of r-1: %+v, %v; want it answered as the first time", again, err)
	}

	// Another append comes between the lost one and the owner's look at the
	// log: the lost one is no longer the last event, and is still found.
	hooked.then = func() {
		appendRaw(t, js, events.Event{Contact: "dan", Status: events.Busy, Previous: events.Online}, "")
	}
	before := lastSeq(t, js, events.LogStream)
	hooked.lose.Store(true)
	got, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "dan", Status: events.Online})
	want := client.SetResult{Contact: "dan", Status: events.Online, Previous: events.Unknown, Seq: before + 1, Changed: true}
	if err != nil || got != want {
		t.Errorf("set with its acknowledgement lost and another append after it: %+v, %v; want %+v", got, err, want)
	}
	if after := lastSeq(t, js, events.LogStream); after != before+2 {
		t.Errorf("the set appended %d events beside the other, want 1", after-before-1)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, js))
}

// TestAStoredButUnansweredSetIsAnsweredAsTheFirstTime: an owner died after its
// append of a set with a request ID was stored, before the answer was given
// or kept. Retried after later changes of the contact, the checks that would
// refuse it (expect_seq) or call it a no-op (the contact is back at its
// status) come before the log's deduplication, so the owner asks the log
// first: the retry is answered as the first time. A set that truly changes
// nothing, or is truly refused, is still answered so, and the asking stores
// nothing.
func TestAStoredButUnansweredSetIsAnsweredAsTheFirstTime(t *testing.T) {
	t.Run("one server", func(t *testing.T) { storedButUnanswered(t, natstest.Start(t).ClientURL()) })
	// On a cluster the server deduplicates before it proposes an append, and
	// checks the last message ID once the append is agreed on: still first.
	t.Run("a cluster of three", func(t *testing.T) { storedButUnanswered(t, natstest.StartCluster(t, 3)[0].ClientURL()) })
}

func storedButUnanswered(t *testing.T, url string) {
	r := enginetest.Start(t, "", engine.Options{NATSURL: url})
	js := r.JetStream(t)
	c := r.Client(t)
	zero := uint64(0)
	for _, tc := range []struct {
		name  string
		req   client.SetRequest
		after []events.Status // changes of the contact before the retry
	}{
		{"with expect_seq, after another change", client.SetRequest{Contact: "bob", Status: events.Online, RequestID: "r-1", ExpectSeq: &zero}, []events.Status{events.Away}},
		{"back at its status", client.SetRequest{Contact: "carol", Status: events.Online, RequestID: "r-2"}, []events.Status{events.Away, events.Online}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := appendRaw(t, js, events.Event{Contact: tc.req.Contact, Status: tc.req.Status, Previous: events.Unknown, RequestID: tc.req.RequestID},
				events.Token(tc.req.Contact)+"/"+tc.req.RequestID)
			for _, st := range tc.after {
				if _, err := c.Set(natstest.Context(t), client.SetRequest{Contact: tc.req.Contact, Status: st}); err != nil {
					t.Fatal(err)
				}
			}
			before := lastSeq(t, js, events.LogStream)
			got, err := c.Set(natstest.Context(t), tc.req)
			want := client.SetResult{Contact: tc.req.Contact, Status: tc.req.Status, Previous: events.Unknown, Seq: stored, Changed: true}
			if err != nil || got != want {
				t.Errorf("retry of %s, whose event is in the log at seq %d: %+v, %v; want %+v", tc.req.RequestID, stored, got, err, want)
			}
			if after := lastSeq(t, js, events.LogStream); after != before {
				t.Errorf("the retry stored %d records", after-before)
			}
		})
	}

	t.Run("truly a no-op, truly refused", func(t *testing.T) {
		cur, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "dan", Status: events.Busy})
		if err != nil {
			t.Fatal(err)
		}
		before := lastSeq(t, js, events.LogStream)
		if got, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "dan", Status: events.Busy, RequestID: "r-3"}); err != nil || got.Changed || got.Seq != cur.Seq {
			t.Errorf("no-op with a request ID: %+v, %v; want changed:false at seq %d", got, err, cur.Seq)
		}
		if _, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "dan", Status: events.Away, RequestID: "r-4", ExpectSeq: &zero}); !errors.Is(err, client.ErrConflict) {
			t.Errorf("set with a wrong expect_seq and a request ID: %v, want a conflict", err)
		}
		if after := lastSeq(t, js, events.LogStream); after != before {
			t.Errorf("asking after the requests stored %d records", after-before)
		}
	})
}

// TestADataDirectoryFromBeforeOwnersIsUpgraded: a data directory written
// before engines owned the log (no owners' bucket, no engine ID) starts: the
// engine makes what is missing, owns the log, and appends on the log it finds.
func TestADataDirectoryFromBeforeOwnersIsUpgraded(t *testing.T) {
	dir := t.TempDir()
	r := enginetest.Start(t, dir, engine.Options{})
	first, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "bob", Status: events.Online})
	if err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	// Take away what this change added, with a server of its own on the store.
	s := natstest.StartWith(t, natstest.Options{StoreDir: dir})
	_, js := natstest.JetStream(t, s)
	if err := js.DeleteKeyValue(natstest.Context(t), events.OwnersBucket); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	if err := os.Remove(filepath.Join(dir, engine.IDFile)); err != nil {
		t.Fatal(err)
	}

	r = enginetest.Start(t, dir, engine.Options{})
	natstest.WaitFor(t, "the engine to own the log", r.Writer().Owning)
	res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "bob", Status: events.Away})
	if err != nil || res.Previous != events.Online || res.Seq != first.Seq+1 {
		t.Errorf("set on the upgraded directory: %+v, %v; want online -> away at seq %d", res, err, first.Seq+1)
	}
}

// slotFiller appends behind the owner's back just before the owner's first
// append goes out, and holds that append's answer until the second went out
// too: both are in flight when the first is refused.
type slotFiller struct {
	jetstream.JetStream
	t     *testing.T
	raw   jetstream.JetStream
	n     atomic.Int32
	first chan struct{} // closed once the first append went out
	gate  chan struct{} // closed once the second did
}

func (j *slotFiller) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	n := j.n.Add(1)
	if n == 1 {
		appendRaw(j.t, j.raw, events.Event{Contact: "bob", Status: events.Offline, Previous: events.Online}, "")
	}
	fut, err := j.JetStream.PublishMsgAsync(m, opts...)
	if err != nil || n > 2 {
		return fut, err
	}
	if n == 2 {
		close(j.gate)
		return fut, nil
	}
	held := &lostFuture{PubAckFuture: fut, err: make(chan error, 1)}
	go func() {
		<-j.gate
		select {
		case <-fut.Ok():
			held.err <- errors.New("the first append was stored, which this test does not expect")
		case err := <-fut.Err():
			held.err <- err
		}
	}()
	close(j.first)
	return held, nil
}

// TestAnAppendTakenAfterARefusedOneIsReported: another engine's append fills
// the slot the owner's first append in flight expected; that one is refused,
// and the next, which expected the slot after, is taken. The owner cannot undo
// it, and cannot tell whether the chain broke: it reports it, loudly.
func TestAnAppendTakenAfterARefusedOneIsReported(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	js := r.JetStream(t)
	w := r.Writer()
	ctx := natstest.Context(t)
	if _, err := w.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	h := &slotFiller{t: t, raw: js, first: make(chan struct{}), gate: make(chan struct{})}
	if err := w.Hook(nil, func(j jetstream.JetStream) jetstream.JetStream { h.JetStream = j; return h }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Away})
		done <- err
	}()
	<-h.first
	if _, err := w.Set(ctx, client.SetRequest{Contact: "carol", Status: events.Busy}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := w.Metrics(); m.Realigned != 1 || m.Conflicts != 1 {
		t.Errorf("writer metrics %+v; want 1 append refused and 1 taken after it, reported", m)
	}
	// Of another contact, this one broke nothing: the chain holds.
	enginetest.CheckChains(t, enginetest.ReadLog(t, js))
}
