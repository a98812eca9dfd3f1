package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
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

// newTestWriter returns a writer of its own, with its own connection and memory,
// on a server where the streams exist.
func newTestWriter(t testing.TB, url string) *engine.Writer {
	t.Helper()
	w, _ := newHookedWriter(t, url, nil)
	return w
}

// appendHook is given each append's outcome and returns what the writer is
// told instead: a lost acknowledgement, say.
type appendHook func(ctx context.Context, ack *jetstream.PubAck, err error) (*jetstream.PubAck, error)

// hookedJS passes each append through its hook.
type hookedJS struct {
	jetstream.JetStream
	after appendHook
}

func (j *hookedJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := j.JetStream.PublishMsg(ctx, m, opts...)
	return j.after(ctx, ack, err)
}

// newHookedWriter is newTestWriter whose appends, if after is not nil, go
// through after. It also returns the writer's JetStream, hook and all left out.
func newHookedWriter(t testing.TB, url string, after appendHook) (*engine.Writer, jetstream.JetStream) {
	t.Helper()
	js, err := jetstream.New(enginetest.ConnectURL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	requests, err := js.KeyValue(natstest.Context(t), events.RequestsBucket)
	if err != nil {
		t.Fatal(err)
	}
	var through jetstream.JetStream = js
	if after != nil {
		through = &hookedJS{JetStream: js, after: after}
	}
	w, err := engine.NewWriter(engine.WriterConfig{JetStream: through, Logger: natstest.Logger(t), Requests: requests})
	if err != nil {
		t.Fatal(err)
	}
	return w, js
}

func lastSeq(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(natstest.Context(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(natstest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func TestNeverSeenContactReadsUnknown(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	c := r.Client(t)
	for _, read := range []struct {
		name string
		fn   func(context.Context, string, uint64) (client.Reply, error)
	}{{"status", c.Status}, {"self", c.Self}} {
		got, err := read.fn(natstest.Context(t), "sip:nobody@contoso.com", 0)
		if err != nil {
			t.Fatalf("%s: %v", read.name, err)
		}
		want := client.Reply{Contact: "sip:nobody@contoso.com", Status: events.Unknown}
		if got != want {
			t.Errorf("%s of never-seen contact = %+v, want %+v", read.name, got, want)
		}
	}
	res, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "sip:nobody@contoso.com", Status: events.Online})
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous != events.Unknown {
		t.Errorf("first set's previous = %s, want unknown", res.Previous)
	}
}

func TestSetWithSameStatusAppendsNothing(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	c := r.Client(t)
	js := r.JetStream(t)
	first, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Busy, Name: "Alice"})
	if err != nil {
		t.Fatal(err)
	}
	before := lastSeq(t, js, events.LogStream)
	for _, st := range []events.Status{events.Busy, events.Busy} {
		res, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: st, Name: "Other name"})
		if err != nil {
			t.Fatal(err)
		}
		want := client.SetResult{Contact: "alice", Status: events.Busy, Previous: events.Busy, Seq: first.Seq, Changed: false}
		if res != want {
			t.Errorf("no-op set = %+v, want %+v", res, want)
		}
	}
	if after := lastSeq(t, js, events.LogStream); after != before {
		t.Errorf("log grew from seq %d to %d on no-op sets", before, after)
	}
}

func TestUnsettableStatusesAreRefused(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	nc := r.Connect(t)
	js := r.JetStream(t)
	set(t, nc, "alice", `{"status":"online"}`)
	before := lastSeq(t, js, events.LogStream)
	cases := map[string]string{
		"unknown by name":     `{"status":"unknown"}`,
		"unknown by constant": `{"status":"MISTATUS_UNKNOWN"}`,
		"unknown by number":   `{"status":0}`,
		"local by name":       `{"status":"local-connecting-to-server"}`,
		"local by constant":   `{"status":"MISTATUS_LOCAL_FINDING_SERVER"}`,
		"local by hex":        `{"status":"0x0300"}`,
		"local by number":     `{"status":1024}`,
		"idle by user":        `{"status":"idle"}`,
		"idle by engine":      `{"status":"idle","cause":"engine"}`,
		"not a status":        `{"status":"0x0007"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			_, code, desc := request(t, nc, events.SetPrefix+"alice", body)
			if code != "400" {
				t.Fatalf("set %s: code %q (%s), want 400", body, code, desc)
			}
			if desc == "" {
				t.Errorf("set %s: empty error description", body)
			}
		})
	}
	if after := lastSeq(t, js, events.LogStream); after != before {
		t.Errorf("refused sets appended: log went from seq %d to %d", before, after)
	}
	// idle is accepted from an endpoint.
	if res := set(t, nc, "alice", `{"status":"idle","cause":"endpoint"}`); res.Status != events.Idle || !res.Changed {
		t.Errorf("idle from an endpoint = %+v, want changed to idle", res)
	}
}

// TestRacingWritersKeepTheChain races 8 writers, each with its own connection
// and memory, on one contact: every event's previous must be the status of the
// event before it, and every acknowledged change must be in the log once.
func TestRacingWritersKeepTheChain(t *testing.T) {
	s := natstest.Start(t)
	r := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	statuses := []events.Status{events.Online, events.Away, events.Busy, events.Invisible, events.Offline, events.DoNotDisturb}
	const writers, sets = 8, 40
	var (
		mu    sync.Mutex
		acked []client.SetResult
		wg    sync.WaitGroup
		ws    []*engine.Writer
	)
	for i := range writers {
		w := newTestWriter(t, s.ClientURL())
		ws = append(ws, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range sets {
				res, err := w.Set(context.Background(), client.SetRequest{Contact: "sip:contended@contoso.com",
					Status: statuses[rng.IntN(len(statuses))], Name: fmt.Sprintf("writer %d", i)})
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
				mu.Lock()
				acked = append(acked, res)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	log := enginetest.ReadLog(t, r.JetStream(t))
	enginetest.CheckChains(t, log)
	bySeq := map[uint64]events.Event{}
	for _, le := range log {
		bySeq[le.Seq] = le.Event
	}
	changed := 0
	seen := map[uint64]bool{}
	for _, res := range acked {
		if !res.Changed {
			continue
		}
		changed++
		if seen[res.Seq] {
			t.Errorf("two acknowledged sets share seq %d", res.Seq)
		}
		seen[res.Seq] = true
		e, ok := bySeq[res.Seq]
		if !ok || e.Status != res.Status || e.Previous != res.Previous {
			t.Errorf("acknowledged %+v, log holds %+v (present: %v)", res, e, ok)
		}
	}
	if changed != len(log) {
		t.Errorf("%d sets acknowledged as changes, log holds %d events", changed, len(log))
	}
	var conflicts uint64
	for _, w := range ws {
		conflicts += w.Metrics().Conflicts
	}
	t.Logf("%d sets, %d changes, %d conflicts settled against the log", len(acked), changed, conflicts)
}

// TestRequestIDIsStoredOnce retries a request, with and without other changes in
// between, through the same writer and through a writer that never saw it.
func TestRequestIDIsStoredOnce(t *testing.T) {
	s := natstest.Start(t)
	r := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	js := r.JetStream(t)
	w := r.Writer()
	ctx := natstest.Context(t)
	first, err := w.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	after := lastSeq(t, js, events.LogStream)
	check := func(name string, w *engine.Writer, req client.SetRequest) {
		t.Helper()
		got, err := w.Set(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != first {
			t.Errorf("%s: retry answered %+v, want the first answer %+v", name, got, first)
		}
	}
	check("same writer, nothing in between", w, client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"})
	check("other writer, nothing in between", newTestWriter(t, s.ClientURL()), client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"})
	if got := lastSeq(t, js, events.LogStream); got != after {
		t.Fatalf("retries appended: log at seq %d, want %d", got, after)
	}

	// Another change comes in between; the retry must still be answered as the
	// first time and append nothing.
	if _, err := w.Set(ctx, client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	after = lastSeq(t, js, events.LogStream)
	check("same writer, a change in between", w, client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"})
	check("other writer, a change in between", newTestWriter(t, s.ClientURL()), client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"})
	if got := lastSeq(t, js, events.LogStream); got != after {
		t.Errorf("retries appended: log at seq %d, want %d", got, after)
	}

	// The same request ID on another contact is another request.
	other, err := w.Set(ctx, client.SetRequest{Contact: "carol", Status: events.Away, RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !other.Changed || other.Contact != "carol" || other.Seq == first.Seq {
		t.Errorf("request ID reused by another contact = %+v, want a change of its own", other)
	}
	log := enginetest.ReadLog(t, js)
	n := 0
	for _, le := range log {
		if le.Event.RequestID == "req-1" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("log holds %d events with request req-1, want 2 (bob once, carol once)", n)
	}
}

// TestRequestIDGivenAgainForAnotherStatusIsRefused: a request ID names one
// set; given again with another status it is refused (400), not answered as
// the first set, which would tell the caller its status was set. So whether
// the answer is found in the writer's memory, in the requests bucket, or only
// in the log, with or without a change in between.
func TestRequestIDGivenAgainForAnotherStatusIsRefused(t *testing.T) {
	s := natstest.Start(t)
	r := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	js := r.JetStream(t)
	ctx := natstest.Context(t)
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"}); err != nil {
		t.Fatal(err)
	}
	logOnly, err := engine.NewWriter(engine.WriterConfig{JetStream: js, Logger: natstest.Logger(t)}) // no requests bucket
	if err != nil {
		t.Fatal(err)
	}
	writers := []struct {
		name string
		w    *engine.Writer
	}{{"same writer", r.Writer()}, {"other writer", newTestWriter(t, s.ClientURL())}, {"the log alone", logOnly}}
	check := func(between string, st events.Status) {
		t.Helper()
		after := lastSeq(t, js, events.LogStream)
		for _, w := range writers {
			res, err := w.w.Set(ctx, client.SetRequest{Contact: "bob", Status: st, RequestID: "req-1"})
			if !errors.Is(err, client.ErrBadRequest) {
				t.Errorf("%s, %s: req-1 given again for %s = %+v, %v; want it refused as bad input", w.name, between, st, res, err)
				continue
			}
			for _, part := range []string{`"req-1"`, "away", st.String()} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%s, %s: %q, want it to name %s", w.name, between, err, part)
				}
			}
		}
		if got := lastSeq(t, js, events.LogStream); got != after {
			t.Errorf("%s: the refused sets appended: log at seq %d, want %d", between, got, after)
		}
	}
	check("nothing in between", events.Busy)
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	check("a change in between", events.Online) // bob is online: it would change nothing
	check("a change in between", events.Busy)
}

func TestExpectSeq(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	c := r.Client(t)
	ctx := natstest.Context(t)
	zero := uint64(0)
	first, err := c.Set(ctx, client.SetRequest{Contact: "dave", Status: events.Online, ExpectSeq: &zero})
	if err != nil {
		t.Fatalf("expect_seq 0 on a never-seen contact: %v", err)
	}
	_, err = c.Set(ctx, client.SetRequest{Contact: "dave", Status: events.Away, ExpectSeq: &zero})
	var se *client.ServiceError
	if !errors.As(err, &se) || se.Code != 409 || !errors.Is(err, client.ErrConflict) {
		t.Fatalf("stale expect_seq: err %v, want a 409", err)
	}
	stale := first.Seq + 100
	if _, err := c.Set(ctx, client.SetRequest{Contact: "dave", Status: events.Away, ExpectSeq: &stale}); !errors.Is(err, client.ErrConflict) {
		t.Errorf("future expect_seq: err %v, want ErrConflict", err)
	}
	res, err := c.Set(ctx, client.SetRequest{Contact: "dave", Status: events.Away, ExpectSeq: &first.Seq})
	if err != nil || !res.Changed || res.Previous != events.Online {
		t.Errorf("matching expect_seq: %+v, %v; want online -> away", res, err)
	}
}

// TestWriterNoticesOtherWriters: a writer's memory of a contact goes stale when
// another writer changes it; an apparent no-op must be checked against the log.
func TestWriterNoticesOtherWriters(t *testing.T) {
	s := natstest.Start(t)
	r := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	a, b := r.Writer(), newTestWriter(t, s.ClientURL())
	ctx := natstest.Context(t)
	mustSet := func(w *engine.Writer, st events.Status) client.SetResult {
		t.Helper()
		res, err := w.Set(ctx, client.SetRequest{Contact: "erin", Status: st})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	mustSet(a, events.Away)   // a remembers away
	mustSet(b, events.Online) // b changes it behind a's back
	res := mustSet(a, events.Away)
	if !res.Changed || res.Previous != events.Online {
		t.Errorf("set away after another writer set online = %+v, want online -> away", res)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, r.JetStream(t)))
}

// TestRequestIDAfterTheContactCameBack retries a request once the contact has
// come back to the status it set, through another writer (as after a restart or
// on another engine): the retry is answered as the first time, appending nothing.
func TestRequestIDAfterTheContactCameBack(t *testing.T) {
	s := natstest.Start(t)
	r := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	js := r.JetStream(t)
	w := r.Writer()
	ctx := natstest.Context(t)
	first, err := w.Set(ctx, client.SetRequest{Contact: "fay", Status: events.Online, RequestID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []events.Status{events.Away, events.Online} {
		if _, err := w.Set(ctx, client.SetRequest{Contact: "fay", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	before := lastSeq(t, js, events.LogStream)
	got, err := newTestWriter(t, s.ClientURL()).Set(ctx, client.SetRequest{Contact: "fay", Status: events.Online, RequestID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got != first {
		t.Errorf("retry answered %+v, want the first answer %+v", got, first)
	}
	// A request the log does not know is a plain no-op.
	got, err = newTestWriter(t, s.ClientURL()).Set(ctx, client.SetRequest{Contact: "fay", Status: events.Online, RequestID: "r-2"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Changed || got.Seq != before {
		t.Errorf("unknown request with the current status = %+v, want no change at seq %d", got, before)
	}
	if after := lastSeq(t, js, events.LogStream); after != before {
		t.Errorf("log went from seq %d to %d", before, after)
	}
}

// TestUnchangedRequestIsAnsweredTheSame retries a request whose first answer was
// "nothing changed", after another change, on another writer: it is answered
// the same way and appends nothing.
func TestUnchangedRequestIsAnsweredTheSame(t *testing.T) {
	s := natstest.Start(t)
	r := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	js := r.JetStream(t)
	ctx := natstest.Context(t)
	w := r.Writer()
	if _, err := w.Set(ctx, client.SetRequest{Contact: "gus", Status: events.Away}); err != nil {
		t.Fatal(err)
	}
	first, err := w.Set(ctx, client.SetRequest{Contact: "gus", Status: events.Away, RequestID: "r-1"})
	if err != nil || first.Changed {
		t.Fatalf("first answer %+v, %v; want no change", first, err)
	}
	if _, err := w.Set(ctx, client.SetRequest{Contact: "gus", Status: events.Busy}); err != nil {
		t.Fatal(err)
	}
	before := lastSeq(t, js, events.LogStream)
	got, err := newTestWriter(t, s.ClientURL()).Set(ctx, client.SetRequest{Contact: "gus", Status: events.Away, RequestID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got != first {
		t.Errorf("retry answered %+v, want the first answer %+v", got, first)
	}
	if after := lastSeq(t, js, events.LogStream); after != before {
		t.Errorf("the retry appended: log went from seq %d to %d", before, after)
	}
}

// TestConflictWait: the first conflict is retried at once (what the writer
// remembered was stale, and the log has been read since); later ones wait,
// and give up their wait when the set's context ends.
func TestConflictWait(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := engine.ConflictWait(done, 0); err != nil {
		t.Errorf("after the first conflict: %v, want a retry at once", err)
	}
	for _, attempt := range []int{1, 5, 40} {
		if err := engine.ConflictWait(done, attempt); !errors.Is(err, context.Canceled) {
			t.Errorf("attempt %d with the set's context ended: %v, want context.Canceled", attempt, err)
		}
		if err := engine.ConflictWait(context.Background(), attempt); err != nil {
			t.Errorf("attempt %d: %v, want a wait that ends", attempt, err)
		}
	}
}

// TestLostAcknowledgementIsSettledFromTheLog: an append stored whose
// acknowledgement was lost is answered as stored, from the log, with or
// without a request ID and expect_seq; it is not appended twice, and the set
// is not answered with a 503 that a retry after another change would find
// refused (409) or "nothing changed".
func TestLostAcknowledgementIsSettledFromTheLog(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	// An append stored once lose is set says it failed, as when its
	// acknowledgement is lost (a timeout, a reconnection, a leader change),
	// after then, if set, has run.
	var (
		lose atomic.Bool
		then func()
	)
	w, js := newHookedWriter(t, r.ClientURL(), func(_ context.Context, ack *jetstream.PubAck, err error) (*jetstream.PubAck, error) {
		if err == nil && lose.Swap(false) {
			if then != nil {
				then()
			}
			return nil, context.DeadlineExceeded
		}
		return ack, err
	})
	zero := uint64(0)
	for _, req := range []client.SetRequest{
		{Contact: "bob", Status: events.Online},
		{Contact: "bob", Status: events.Away, Name: "Bob"},
		{Contact: "carol", Status: events.Busy, RequestID: "r-1", ExpectSeq: &zero},
	} {
		before := lastSeq(t, js, events.LogStream)
		lose.Store(true)
		got, err := w.Set(natstest.Context(t), req)
		if err != nil {
			t.Fatalf("set %+v with its acknowledgement lost: %v", req, err)
		}
		if lose.Load() {
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

	// Another writer changes the contact between the lost append and the
	// writer's look at the log: the lost one is no longer the last event,
	// and is still found, with expect_seq and without.
	other := r.Writer()
	for i, req := range []client.SetRequest{
		{Contact: "dan", Status: events.Online, ExpectSeq: &zero},
		{Contact: "erin", Status: events.Online},
	} {
		then = func() {
			if _, err := other.Set(natstest.Context(t), client.SetRequest{Contact: req.Contact, Status: events.Busy}); err != nil {
				t.Errorf("the other writer's set: %v", err)
			}
		}
		before := lastSeq(t, js, events.LogStream)
		lose.Store(true)
		got, err := w.Set(natstest.Context(t), req)
		want := client.SetResult{Contact: req.Contact, Status: events.Online, Previous: events.Unknown, Seq: before + 1, Changed: true}
		if err != nil || got != want {
			t.Errorf("set %d %+v, its acknowledgement lost and another change after it: %+v, %v; want %+v", i, req, got, err, want)
		}
		if after := lastSeq(t, js, events.LogStream); after != before+2 {
			t.Errorf("set %d appended %d events beside the other writer's, want 1", i, after-before-1)
		}
	}
}

// TestRetryAfterAnUnsettledSetIsAnsweredAsTheFirstTime: a set with a request
// ID whose event was stored, but whose answer was neither given nor kept, is
// retried after another change of the contact. The checks that would refuse it
// (expect_seq) or call it a no-op (the contact is back at its status) come
// before the log's deduplication, so the writer asks the log first: the retry
// is answered as the first time. A set that truly changes nothing, or is truly
// refused, is still answered so, and the asking stores nothing.
func TestRetryAfterAnUnsettledSetIsAnsweredAsTheFirstTime(t *testing.T) {
	t.Run("one server", func(t *testing.T) { retryAfterAnUnsettledSet(t, enginetest.Start(t, "", engine.Options{})) })
	// On a cluster the server deduplicates before it proposes an append, and
	// checks the last message ID once the append is agreed on: still first.
	t.Run("a cluster of three", func(t *testing.T) {
		retryAfterAnUnsettledSet(t, enginetest.Start(t, "", engine.Options{NATSURL: natstest.StartCluster(t, 3)[0].ClientURL()}))
	})
}

func retryAfterAnUnsettledSet(t *testing.T, r *enginetest.Running) {
	// An append stored once giveUp is set ends its context, as a caller that
	// gives up while its append is on the way: the writer cannot settle it,
	// and answers 503 with nothing kept of the answer.
	var giveUp atomic.Pointer[context.CancelFunc]
	first, js := newHookedWriter(t, r.ClientURL(), func(ctx context.Context, ack *jetstream.PubAck, err error) (*jetstream.PubAck, error) {
		if cancel := giveUp.Swap(nil); cancel != nil && err == nil {
			(*cancel)()
			return nil, ctx.Err()
		}
		return ack, err
	})
	other := r.Writer()
	zero := uint64(0)
	unsettled := func(req client.SetRequest) uint64 {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		giveUp.Store(&cancel)
		if _, err := first.Set(ctx, req); engine.ErrorCode(err) != 503 {
			t.Fatalf("set %+v given up on: %v, want a 503", req, err)
		}
		return lastSeq(t, js, events.LogStream)
	}
	set := func(req client.SetRequest) client.SetResult {
		t.Helper()
		res, err := other.Set(natstest.Context(t), req)
		if err != nil {
			t.Fatalf("set %+v: %v", req, err)
		}
		return res
	}

	for _, tc := range []struct {
		name  string
		req   client.SetRequest
		after []events.Status // changes of the contact before the retry
	}{
		{"with expect_seq, after another change", client.SetRequest{Contact: "bob", Status: events.Online, RequestID: "r-1", ExpectSeq: &zero}, []events.Status{events.Away}},
		{"back at its status", client.SetRequest{Contact: "carol", Status: events.Online, RequestID: "r-2"}, []events.Status{events.Away, events.Online}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := unsettled(tc.req)
			for _, st := range tc.after {
				set(client.SetRequest{Contact: tc.req.Contact, Status: st})
			}
			before := lastSeq(t, js, events.LogStream)
			got, err := other.Set(natstest.Context(t), tc.req)
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
		cur := set(client.SetRequest{Contact: "dan", Status: events.Busy})
		before := lastSeq(t, js, events.LogStream)
		if got, err := other.Set(natstest.Context(t), client.SetRequest{Contact: "dan", Status: events.Busy, RequestID: "r-3"}); err != nil || got.Changed || got.Seq != cur.Seq {
			t.Errorf("no-op with a request ID: %+v, %v; want changed:false at seq %d", got, err, cur.Seq)
		}
		if _, err := other.Set(natstest.Context(t), client.SetRequest{Contact: "dan", Status: events.Away, RequestID: "r-4", ExpectSeq: &zero}); !errors.Is(err, client.ErrConflict) {
			t.Errorf("set with a wrong expect_seq and a request ID: %v, want a conflict", err)
		}
		if after := lastSeq(t, js, events.LogStream); after != before {
			t.Errorf("asking after the requests stored %d records", after-before)
		}
	})
}

// TestNoQuestionWhereNoRequestCanBe: a set with a request ID refused for a
// contact the log has never seen asks the log nothing: no request of it can
// be there.
func TestNoQuestionWhereNoRequestCanBe(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	var appends atomic.Int64
	w, _ := newHookedWriter(t, r.ClientURL(), func(_ context.Context, ack *jetstream.PubAck, err error) (*jetstream.PubAck, error) {
		appends.Add(1)
		return ack, err
	})
	five := uint64(5)
	if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "nobody", Status: events.Away, RequestID: "r-1", ExpectSeq: &five}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("expect_seq 5 on a contact never seen: %v, want a conflict", err)
	}
	if n := appends.Load(); n != 0 {
		t.Errorf("%d appends to the log, want none", n)
	}
}

// TestNoQuestionPastTheDuplicateWindow: the log forgets a request ID once its
// duplicate window has passed, so a set that would change nothing is asked
// about its request ID only while the contact's last event is within that
// window (and a minute for the clocks), never after.
func TestNoQuestionPastTheDuplicateWindow(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	var appends atomic.Int64
	w, js := newHookedWriter(t, r.ClientURL(), func(_ context.Context, ack *jetstream.PubAck, err error) (*jetstream.PubAck, error) {
		appends.Add(1)
		return ack, err
	})
	var ahead atomic.Int64 // how far the writer's clock is ahead of time.Now
	w.SetClock(func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	log, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	window := log.CachedInfo().Config.Duplicates

	if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "carol", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		past time.Duration // since the contact's last event
		asks int64         // appends the no-op costs: its question to the log
	}{
		{"within the window", 0, 1},
		{"past the window and the clocks' minute", window + time.Minute + time.Second, 0},
	} {
		ahead.Store(int64(c.past))
		before := appends.Load()
		res, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "carol", Status: events.Online, RequestID: "r-" + c.name})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Changed || res.Seq != 1 {
			t.Errorf("%s: %+v, want no change at seq 1", c.name, res)
		}
		if n := appends.Load() - before; n != c.asks {
			t.Errorf("%s: %d appends to the log, want %d", c.name, n, c.asks)
		}
	}
}
