package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// TestBadRequestsAreRefused sends the running service every kind of bad request:
// each gets a 400 (or a 503 for a min_seq never reached) whose description names
// the problem, nothing is appended, and the service keeps serving.
func TestBadRequestsAreRefused(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{ReadTimeout: 100 * time.Millisecond})
	nc := r.Connect(t)
	js := r.JetStream(t)
	set(t, nc, "alice", `{"status":"online"}`)
	before := lastSeq(t, js, events.LogStream)

	tests := []struct {
		name, subject, body string
		code, mention       string // want code, and a part of the description
	}{
		{"not JSON", "presence.set.alice", `away`, "400", `"away"`},
		{"JSON array", "presence.set.alice", `["away"]`, "400", "not a JSON object"},
		{"trailing data", "presence.set.alice", `{"status":"away"} x`, "400", "not a JSON object"},
		{"empty set", "presence.set.alice", ``, "400", `"status" is required`},
		{"status missing", "presence.set.alice", `{"name":"Alice"}`, "400", `"status" is required`},
		{"unknown field", "presence.set.alice", `{"status":"away","colour":"red"}`, "400", `"colour"`},
		{"status wrong type", "presence.set.alice", `{"status":true}`, "400", `"true"`},
		{"status object", "presence.set.alice", `{"status":{}}`, "400", "unknown status"},
		{"status null", "presence.set.alice", `{"status":null}`, "400", "null"},
		{"unknown status", "presence.set.alice", `{"status":"sleeping"}`, "400", `"sleeping"`},
		{"local-only status", "presence.set.alice", `{"status":"local-synchronizing-with-server"}`, "400", "local-only"},
		{"unknown", "presence.set.alice", `{"status":"unknown"}`, "400", "never-seen"},
		{"name wrong type", "presence.set.alice", `{"status":"away","name":7}`, "400", "name"},
		{"name with NUL", "presence.set.alice", `{"status":"away","name":"A\u0000B"}`, "400", "control character"},
		{"name with newline", "presence.set.alice", `{"status":"away","name":"A\nB"}`, "400", "control character"},
		{"name too long", "presence.set.alice", `{"status":"away","name":"` + strings.Repeat("n", 300) + `"}`, "400", "300 bytes"},
		{"invalid UTF-8", "presence.set.alice", "{\"status\":\"away\",\"name\":\"\xff\"}", "400", "UTF-8"},
		{"request_id too long", "presence.set.alice", `{"status":"away","request_id":"` + strings.Repeat("r", 200) + `"}`, "400", "request_id"},
		{"cause engine", "presence.set.alice", `{"status":"away","cause":"engine"}`, "400", "engine"},
		{"cause unknown", "presence.set.alice", `{"status":"away","cause":"robot"}`, "400", `"robot"`},
		{"expect_seq negative", "presence.set.alice", `{"status":"away","expect_seq":-1}`, "400", `"-1"`},
		{"expect_seq fraction", "presence.set.alice", `{"status":"away","expect_seq":1.5}`, "400", `"1.5"`},
		{"expect_seq string", "presence.set.alice", `{"status":"away","expect_seq":"1"}`, "400", "expect_seq"},
		{"expect_seq huge", "presence.set.alice", `{"status":"away","expect_seq":1e30}`, "400", "1e30"},
		{"expect_seq past 2^63", "presence.set.alice", `{"status":"away","expect_seq":18446744073709551615}`, "400", "expect_seq"},
		{"payload of 8 KB", "presence.set.alice", `{"status":"away","name":"` + strings.Repeat("x", 8<<10) + `"}`, "400", "at most 4096"},
		{"payload of 900 KB", "presence.set.alice", strings.Repeat(" ", 900<<10), "400", "at most 4096"},
		{"token with a cut escape", "presence.set.alice%2", `{"status":"away"}`, "400", "cut short"},
		{"token with lowercase hex", "presence.set.alice%2e", `{"status":"away"}`, "400", "uppercase"},
		{"token escaping a safe byte", "presence.set.%41lice", `{"status":"away"}`, "400", "written as itself"},
		{"token decoding to a space", "presence.set.a%20b", `{"status":"away"}`, "400", "space"},
		{"token decoding to NUL", "presence.set.a%00b", `{"status":"away"}`, "400", "control"},
		{"token decoding to bad UTF-8", "presence.set.a%FFb", `{"status":"away"}`, "400", "UTF-8"},
		{"status: not JSON", "presence.status.alice", `nope`, "400", "not a JSON object"},
		{"status: unknown field", "presence.status.alice", `{"seq":1}`, "400", `"seq"`},
		{"status: min_seq negative", "presence.status.alice", `{"min_seq":-5}`, "400", `"-5"`},
		{"status: min_seq never reached", "presence.status.alice", `{"min_seq":9000000000000}`, "503", "9000000000000"},
		{"status: bad token", "presence.status.a%zz", ``, "400", "subject token"},
		{"self: min_seq wrong type", "presence.self.alice", `{"min_seq":[1]}`, "400", "min_seq"},
		{"statuses: empty", "presence.statuses", ``, "400", `"contacts" is required`},
		{"statuses: not an array", "presence.statuses", `{"contacts":"alice"}`, "400", "JSON array"},
		{"statuses: no contacts", "presence.statuses", `{"contacts":[]}`, "400", "1 to 1000"},
		{"statuses: a bad contact", "presence.statuses", `{"contacts":["alice","b c"]}`, "400", `"b c"`},
		{"statuses: too many", "presence.statuses", `{"contacts":[` + strings.Repeat(`"a",`, 1000) + `"a"]}`, "400", "1001 contacts"},
		{"statuses: min_seq never reached", "presence.statuses", `{"contacts":["alice"],"min_seq":9000000000000}`, "503", "9000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, code, desc := request(t, nc, tt.subject, tt.body)
			if code != tt.code {
				t.Fatalf("code %q (%s), want %s", code, desc, tt.code)
			}
			if !strings.Contains(desc, tt.mention) {
				t.Errorf("description %q does not mention %q", desc, tt.mention)
			}
			if !strings.Contains(string(data), `"code":`+tt.code) {
				t.Errorf("error body %s does not carry the code", data)
			}
		})
	}
	if after := lastSeq(t, js, events.LogStream); after != before {
		t.Errorf("bad requests appended: log went from seq %d to %d", before, after)
	}
	if res := set(t, nc, "alice", `{"status":"away"}`); !res.Changed || res.Previous != events.Online {
		t.Errorf("a good request after the bad ones = %+v, want online -> away", res)
	}
}

func TestServiceIsDiscoverable(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	nc := r.Connect(t)
	msg, err := nc.Request("$SRV.INFO.presence", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"presence"`, `"presence.set.*"`, `"presence.status.*"`, `"presence.self.*"`} {
		if !strings.Contains(string(msg.Data), want) {
			t.Errorf("service info %s lacks %s", msg.Data, want)
		}
	}
}

func TestReadsWaitForTheProjection(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	lr := &engine.LocalReader{Projection: r.Projection(), Ready: func() bool { return false }, Timeout: 50 * time.Millisecond}
	_, err := lr.Status(context.Background(), "alice", 0)
	if !errors.Is(err, client.ErrUnavailable) || engine.ErrorCode(err) != 503 {
		t.Errorf("read while not ready: %v (code %d), want 503", err, engine.ErrorCode(err))
	}
	res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Busy})
	if err != nil {
		t.Fatal(err)
	}
	got, err := lr.Status(context.Background(), "alice", res.Seq)
	if err != nil || got.Status != events.Busy || got.Seq != res.Seq {
		t.Errorf("read with min_seq while not ready = %+v, %v; want busy at seq %d", got, err, res.Seq)
	}
	_, err = lr.Status(context.Background(), "alice", res.Seq+1000)
	if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, projections.ErrNotReached) {
		t.Errorf("read with unreached min_seq: %v, want ErrUnavailable", err)
	}
}

func TestIncompatibleStreamIsReported(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.JetStream(t, s)
	cfg := engine.LogStreamConfig(engine.StreamOptions{})
	cfg.Storage = jetstream.MemoryStorage
	if _, err := js.CreateStream(natstest.Context(t), cfg); err != nil {
		t.Fatal(err)
	}
	_, err := engine.Open(t.TempDir(), engine.Options{NATSURL: s.ClientURL(), Logger: natstest.Logger(t)})
	var ie *engine.IncompatibleStreamError
	if !errors.Is(err, engine.ErrIncompatibleStream) || !errors.As(err, &ie) {
		t.Fatalf("Open with a memory log: %v, want an IncompatibleStreamError", err)
	}
	if ie.Stream != events.LogStream || ie.Setting != "storage" {
		t.Errorf("error names %s %s, want %s storage", ie.Stream, ie.Setting, events.LogStream)
	}
	info, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil || info.CachedInfo().Config.Storage != jetstream.MemoryStorage {
		t.Errorf("the existing stream was changed: %v", err)
	}
}

// TestFeedWithAnAgeLimitIsRefused: once every entry aged out, a feed with
// max_age would read as one purged to be derived again, and every change in
// the log would come again.
func TestFeedWithAnAgeLimitIsRefused(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.JetStream(t, s)
	cfg := engine.FeedStreamConfig(engine.StreamOptions{})
	cfg.MaxAge, cfg.Duplicates = time.Hour, time.Minute
	if _, err := js.CreateStream(natstest.Context(t), cfg); err != nil {
		t.Fatal(err)
	}
	_, err := engine.Open(t.TempDir(), engine.Options{NATSURL: s.ClientURL(), Logger: natstest.Logger(t)})
	var ie *engine.IncompatibleStreamError
	if !errors.As(err, &ie) || ie.Stream != events.FeedStream || ie.Setting != "max_age" {
		t.Fatalf("Open with a feed with max_age: %v, want an IncompatibleStreamError naming %s max_age", err, events.FeedStream)
	}
	if !strings.Contains(err.Error(), "1h0m0s") {
		t.Errorf("error %q does not name the value", err)
	}
}

func TestSyncAlways(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{Sync: engine.Sync{Always: true}})
	if !r.Server().JetStreamConfig().SyncAlways {
		t.Fatalf("embedded server does not sync always")
	}
	res, err := r.Client(t).Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Online})
	if err != nil || !res.Changed {
		t.Fatalf("set with sync always: %+v, %v", res, err)
	}
}

func TestParseSync(t *testing.T) {
	for in, want := range map[string]engine.Sync{"always": {Always: true}, "ALWAYS": {Always: true}, "250ms": {Interval: 250 * time.Millisecond}, "1s": {Interval: time.Second}} {
		got, err := engine.ParseSync(in)
		if err != nil || got != want {
			t.Errorf("ParseSync(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "never", "-1s", "0s", "10"} {
		if _, err := engine.ParseSync(in); err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("ParseSync(%q) = %v, want an error naming it", in, err)
		}
	}
}

// TestWaitingReadsDoNotCrowdOutSets fills every read slot with reads waiting for
// a min_seq that never comes: sets still go through.
func TestWaitingReadsDoNotCrowdOutSets(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{MaxConcurrent: 4, ReadTimeout: 2 * time.Second})
	nc := r.Connect(t)
	replies := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(nats.NewInbox(), replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for range 8 { // twice the slots: the last four are refused at once
		if err := nc.PublishRequest("presence.status.alice", sub.Subject, []byte(`{"min_seq":9000000000}`)); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		select {
		case m := <-replies:
			if code := m.Header.Get(micro.ErrorCodeHeader); code != "503" {
				t.Errorf("read past the slots: code %q, want 503 busy", code)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("reads past the slots were not refused at once")
		}
	}
	if res := set(t, nc, "alice", `{"status":"online"}`); !res.Changed {
		t.Errorf("set while every read slot waits = %+v, want a change", res)
	}
}

func TestStatusesReadsManyAtOnce(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	c := r.Client(t)
	ctx := natstest.Context(t)
	var last client.SetResult
	for _, set := range []client.SetRequest{
		{Contact: "alice", Status: events.Busy, Name: "Alice"},
		{Contact: "bob", Status: events.Invisible, Name: "Bob"},
	} {
		var err error
		if last, err = c.Set(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Statuses(ctx, []string{"bob", "nobody", "alice"}, last.Seq)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.Reply{
		{Contact: "bob", Name: "Bob", Status: events.Offline, Seq: 2},
		{Contact: "nobody", Status: events.Unknown},
		{Contact: "alice", Name: "Alice", Status: events.Busy, Seq: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Statuses = %+v\nwant %+v", got, want)
	}
}

// TestClientSaysItGaveUp: a client that waits less than the service does (a
// min_seq read waits up to 2s) says how long it waited for an answer, not
// only that a context ran out.
func TestClientSaysItGaveUp(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	c := r.Client(t)
	c.Timeout = 100 * time.Millisecond
	_, err := c.Status(natstest.Context(t), "alice", 1000)
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("a read past the log's end with a 100ms timeout: %v, want unavailable, saying no answer came within the wait", err)
	}
}
