package engine_test

import (
	"context"
	"errors"
	"strings"
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

// restarted stops r and starts an engine again on its directory: an owner
// with nothing in memory of what it appended.
func restarted(t *testing.T, r *enginetest.Running) *enginetest.Running {
	t.Helper()
	r.Stop(t)
	return enginetest.Start(t, r.Dir, engine.Options{})
}

// forget removes the kept answer to a request, as when its owner died before
// keeping it: only the log knows the request then.
func forget(t *testing.T, r *enginetest.Running, contact, requestID string) {
	t.Helper()
	kv, err := r.JetStream(t).KeyValue(natstest.Context(t), events.RequestsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(natstest.Context(t), engine.RequestKey(contact, requestID)); err != nil {
		t.Fatal(err)
	}
}

// TestRequestIDIsStoredOnce retries a request, with and without other changes
// in between, on the owner that appended it, on an owner restarted since, and
// on one that finds the answer only in the log.
func TestRequestIDIsStoredOnce(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	ctx := natstest.Context(t)
	req := client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"}
	first, err := r.Writer().Set(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string) {
		t.Helper()
		before := lastSeq(t, r.JetStream(t), events.LogStream)
		got, err := r.Writer().Set(ctx, req)
		if err != nil || got != first {
			t.Errorf("%s: retry answered %+v, %v; want the first answer %+v", name, got, err, first)
		}
		if after := lastSeq(t, r.JetStream(t), events.LogStream); after != before {
			t.Errorf("%s: the retry appended %d events", name, after-before)
		}
	}
	check("same owner, nothing in between")
	r = restarted(t, r)
	check("owner restarted, nothing in between")
	forget(t, r, "bob", "req-1")
	r = restarted(t, r)
	check("the log alone, nothing in between")

	// Another change comes in between; the retry is still answered as the
	// first time and appends nothing.
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	check("a change in between")
	r = restarted(t, r)
	check("owner restarted, a change in between")

	// The same request ID on another contact is another request.
	other, err := r.Writer().Set(ctx, client.SetRequest{Contact: "carol", Status: events.Away, RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !other.Changed || other.Contact != "carol" || other.Seq == first.Seq {
		t.Errorf("request ID reused by another contact = %+v, want a change of its own", other)
	}
	n := 0
	for _, le := range enginetest.ReadLog(t, r.JetStream(t)) {
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
// the answer is found in the owner's memory, in the requests bucket, or only
// in the log, with or without a change in between.
func TestRequestIDGivenAgainForAnotherStatusIsRefused(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	ctx := natstest.Context(t)
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "bob", Status: events.Away, RequestID: "req-1"}); err != nil {
		t.Fatal(err)
	}
	check := func(where, between string, st events.Status) {
		t.Helper()
		before := lastSeq(t, r.JetStream(t), events.LogStream)
		res, err := r.Writer().Set(ctx, client.SetRequest{Contact: "bob", Status: st, RequestID: "req-1"})
		if !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("%s, %s: req-1 given again for %s = %+v, %v; want it refused as bad input", where, between, st, res, err)
			return
		}
		for _, part := range []string{`"req-1"`, "away", st.String()} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("%s, %s: %q, want it to name %s", where, between, err, part)
			}
		}
		if after := lastSeq(t, r.JetStream(t), events.LogStream); after != before {
			t.Errorf("%s, %s: the refused set appended: log at seq %d, want %d", where, between, after, before)
		}
	}
	check("same owner", "nothing in between", events.Busy)
	r = restarted(t, r)
	check("owner restarted", "nothing in between", events.Busy)
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "bob", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	check("same owner", "a change in between", events.Online) // bob is online: it would change nothing
	check("same owner", "a change in between", events.Busy)
	forget(t, r, "bob", "req-1")
	r = restarted(t, r)
	check("the log alone", "a change in between", events.Online)
	check("the log alone", "a change in between", events.Busy)
}

// TestRequestIDAfterTheContactCameBack retries a request once the contact has
// come back to the status it set, on an owner restarted since: the retry is
// answered as the first time, appending nothing.
func TestRequestIDAfterTheContactCameBack(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	ctx := natstest.Context(t)
	first, err := r.Writer().Set(ctx, client.SetRequest{Contact: "fay", Status: events.Online, RequestID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []events.Status{events.Away, events.Online} {
		if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "fay", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	r = restarted(t, r)
	js := r.JetStream(t)
	before := lastSeq(t, js, events.LogStream)
	got, err := r.Writer().Set(ctx, client.SetRequest{Contact: "fay", Status: events.Online, RequestID: "r-1"})
	if err != nil || got != first {
		t.Errorf("retry answered %+v, %v; want the first answer %+v", got, err, first)
	}
	// A request the log does not know is a plain no-op.
	got, err = r.Writer().Set(ctx, client.SetRequest{Contact: "fay", Status: events.Online, RequestID: "r-2"})
	if err != nil || got.Changed || got.Seq != before {
		t.Errorf("unknown request with the current status = %+v, %v; want no change at seq %d", got, err, before)
	}
	if after := lastSeq(t, js, events.LogStream); after != before {
		t.Errorf("log went from seq %d to %d", before, after)
	}
}

// TestUnchangedRequestIsAnsweredTheSame retries a request whose first answer
// was "nothing changed", after another change, on an owner restarted since: it
// is answered the same way and appends nothing.
func TestUnchangedRequestIsAnsweredTheSame(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	ctx := natstest.Context(t)
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "gus", Status: events.Away}); err != nil {
		t.Fatal(err)
	}
	first, err := r.Writer().Set(ctx, client.SetRequest{Contact: "gus", Status: events.Away, RequestID: "r-1"})
	if err != nil || first.Changed {
		t.Fatalf("first answer %+v, %v; want no change", first, err)
	}
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "gus", Status: events.Busy}); err != nil {
		t.Fatal(err)
	}
	r = restarted(t, r)
	js := r.JetStream(t)
	before := lastSeq(t, js, events.LogStream)
	got, err := r.Writer().Set(ctx, client.SetRequest{Contact: "gus", Status: events.Away, RequestID: "r-1"})
	if err != nil || got != first {
		t.Errorf("retry answered %+v, %v; want the first answer %+v", got, err, first)
	}
	if after := lastSeq(t, js, events.LogStream); after != before {
		t.Errorf("the retry appended: log went from seq %d to %d", before, after)
	}
}

// probes counts the owner's questions to the log about a request ID: its
// synchronous publishes (appends are asynchronous).
type probes struct {
	jetstream.JetStream
	n atomic.Int64
}

func (p *probes) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	p.n.Add(1)
	return p.JetStream.PublishMsg(ctx, m, opts...)
}

// TestNoQuestionWhereNoRequestCanBe: a set with a request ID refused for a
// contact the log has never seen asks the log nothing: no request of it can
// be there.
func TestNoQuestionWhereNoRequestCanBe(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	p := &probes{}
	if err := r.Writer().Hook(nil, func(js jetstream.JetStream) jetstream.JetStream { p.JetStream = js; return p }); err != nil {
		t.Fatal(err)
	}
	five := uint64(5)
	if _, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "nobody", Status: events.Away, RequestID: "r-1", ExpectSeq: &five}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("expect_seq 5 on a contact never seen: %v, want a conflict", err)
	}
	if n := p.n.Load(); n != 0 {
		t.Errorf("%d questions to the log, want none", n)
	}
}

// TestNoQuestionPastTheDuplicateWindow: the log forgets a request ID once its
// duplicate window has passed, so a set that would change nothing is asked
// about its request ID only while the contact's last event is within that
// window (and a minute for the clocks), never after.
func TestNoQuestionPastTheDuplicateWindow(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	p := &probes{}
	var ahead atomic.Int64 // how far the owner's clock is ahead of time.Now
	now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	if err := r.Writer().Hook(now, func(js jetstream.JetStream) jetstream.JetStream { p.JetStream = js; return p }); err != nil {
		t.Fatal(err)
	}
	log, err := r.JetStream(t).Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	window := log.CachedInfo().Config.Duplicates
	if _, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "carol", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		past time.Duration // since the contact's last event
		asks int64         // the no-op's questions to the log
	}{
		{"within the window", 0, 1},
		{"past the window and the clocks' minute", window + time.Minute + time.Second, 0},
	} {
		ahead.Store(int64(c.past))
		before := p.n.Load()
		res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "carol", Status: events.Online, RequestID: "r-" + c.name})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Changed || res.Seq != 1 {
			t.Errorf("%s: %+v, want no change at seq 1", c.name, res)
		}
		if n := p.n.Load() - before; n != c.asks {
			t.Errorf("%s: %d questions to the log, want %d", c.name, n, c.asks)
		}
	}
}
