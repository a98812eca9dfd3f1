package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// testLogger discards everything unless the test runs verbose.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// running is an engine started for a test: embedded server on a random loopback
// port, data in a temp directory.
type running struct {
	*Engine
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// startEngine opens an engine in dir (a new temp dir if empty) and runs it until
// the test ends or stop is called.
func startEngine(t testing.TB, dir string, opts Options) *running {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if opts.Listen == "" && opts.NATSURL == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.ContactRate == 0 {
		// Tests set one contact far faster than people do; the bound on that
		// has a test of its own.
		opts.ContactRate = -1
	}
	e, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Engine: e, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := e.WaitReady(wctx); err != nil {
		t.Fatalf("engine not ready: %v", err)
	}
	return r
}

// stop shuts the engine down cleanly and checks that Run returned nil. It is
// safe to call more than once.
func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("engine Run returned %v after a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("engine Run did not return within 30s of stop")
	}
	if err := r.Close(); err != nil {
		t.Errorf("engine Close: %v", err)
	}
}

// connect opens a client connection to the engine's server.
func (r *running) connect(t testing.TB) *nats.Conn {
	t.Helper()
	return connectURL(t, r.ClientURL())
}

func connectURL(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func (r *running) client(t testing.TB) *Client {
	return NewClient(r.connect(t))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// logEntry is one event of the log with its sequence.
type logEntry struct {
	Seq   uint64
	Event events.Event
}

// feedEntry is one entry of the feed with its feed sequence.
type feedEntry struct {
	FeedSeq uint64
	Change  events.Change
}

func readLog(t testing.TB, js jetstream.JetStream) []logEntry {
	t.Helper()
	var out []logEntry
	for _, m := range natstest.ReadStream(t, js, LogStream) {
		md, _ := m.Metadata()
		e, err := events.DecodeEvent(m.Data())
		if err != nil {
			t.Fatalf("log seq %d: %v", md.Sequence.Stream, err)
		}
		out = append(out, logEntry{Seq: md.Sequence.Stream, Event: e})
	}
	return out
}

func readFeed(t testing.TB, js jetstream.JetStream) []feedEntry {
	t.Helper()
	var out []feedEntry
	for _, m := range natstest.ReadStream(t, js, FeedStream) {
		md, _ := m.Metadata()
		c, err := events.DecodeChange(m.Data())
		if err != nil {
			t.Fatalf("feed seq %d: %v", md.Sequence.Stream, err)
		}
		out = append(out, feedEntry{FeedSeq: md.Sequence.Stream, Change: c})
	}
	return out
}

// wantFeed derives the feed the log calls for.
func wantFeed(log []logEntry) []events.Change {
	var out []events.Change
	for _, le := range log {
		if c, ok := events.ChangeOf(le.Event, le.Seq); ok {
			out = append(out, c)
		}
	}
	return out
}

// checkChains fails the test unless every contact's events chain: each previous
// is the status of the event before it, the first previous is unknown.
func checkChains(t testing.TB, log []logEntry) {
	t.Helper()
	last := map[string]events.Status{}
	for _, le := range log {
		if got, want := le.Event.Previous, last[le.Event.Contact]; got != want {
			t.Errorf("log seq %d (%s): previous is %s, but the contact's status before was %s",
				le.Seq, le.Event.Contact, got, want)
		}
		last[le.Event.Contact] = le.Event.Status
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFeed waits until the feed has caught up with the log.
func (r *running) waitFeed(t testing.TB) {
	t.Helper()
	js, err := jetstream.New(r.Conn())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctxT(t), LogStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq
	waitFor(t, "the feed to reach the log's end", func() bool { return r.Feed().Position() >= last })
}

func (r *running) jetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(r.connect(t))
	if err != nil {
		t.Fatal(err)
	}
	return js
}
