// Package enginetest runs real engines for tests: each on its own data
// directory, with an embedded nats-server on a random loopback port (or on a
// test server of natstest), stopped cleanly when the test ends. It also reads
// the log and the feed back for tests to check.
package enginetest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// Running is an engine started for a test.
type Running struct {
	*engine.Engine
	Dir    string // its data directory
	cancel context.CancelFunc
	done   chan error
}

// Start opens an engine in dir (a new temp dir if empty) and runs it until the
// test ends or Stop is called. Unless opts say otherwise, its embedded server
// listens on a random loopback port, it logs to the test (natstest.Logger),
// and no contact's sets are bounded (tests set one contact far faster than
// people do; the bound has a test of its own).
func Start(t testing.TB, dir string, opts engine.Options) *Running {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if opts.Listen == "" && opts.NATSURL == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = natstest.Logger(t)
	}
	if opts.ContactRate == 0 {
		opts.ContactRate = -1
	}
	e, err := engine.Open(dir, opts)
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Engine: e, Dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() { r.Stop(t) })
	wctx, wcancel := context.WithTimeout(context.Background(), natstest.Timeout)
	defer wcancel()
	if err := e.WaitReady(wctx); err != nil {
		t.Fatalf("engine not ready: %v", err)
	}
	return r
}

// Stop shuts the engine down cleanly and checks that Run returned nil and
// Close succeeded. It is safe to call more than once.
func (r *Running) Stop(t testing.TB) {
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
	case <-time.After(natstest.Timeout):
		t.Errorf("engine Run did not return within %s of stop", natstest.Timeout)
	}
	if err := r.Close(); err != nil {
		t.Errorf("engine Close: %v", err)
	}
}

// Connect opens a client connection to the engine's server, closed when the
// test ends.
func (r *Running) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return ConnectURL(t, r.ClientURL(), opts...)
}

// ConnectURL opens a client connection to url, closed when the test ends.
func ConnectURL(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Client returns a service client on a connection of its own.
func (r *Running) Client(t testing.TB) *client.Client {
	t.Helper()
	return client.New(r.Connect(t))
}

// JetStream returns a JetStream context on a connection of its own.
func (r *Running) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(r.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// WaitFeed waits until the feed has caught up with the log as it stands now:
// as the engine's feed says, if it derives the feed; else until the feed
// holds as many entries as the engine's projection counts visible changes
// in the log so far.
func (r *Running) WaitFeed(t testing.TB) {
	t.Helper()
	js, err := jetstream.New(r.Conn())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(natstest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq
	if r.Metrics().Feed.Deriving {
		natstest.WaitFor(t, "the feed to reach the log's end", func() bool { return r.Metrics().Feed.Position >= last })
		return
	}
	if err := r.Projection().WaitApplied(natstest.Context(t), last); err != nil {
		t.Fatal(err)
	}
	want := r.Projection().AppliedFeed()
	feed, err := js.Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the feed to hold every visible change of the log", func() bool {
		info, err := feed.Info(natstest.Context(t))
		return err == nil && info.State.LastSeq >= want
	})
}

// LogEntry is one event of the log with its sequence.
type LogEntry struct {
	Seq   uint64
	Event events.Event
}

// FeedEntry is one entry of the feed with its feed sequence, its feed
// position.
type FeedEntry struct {
	FeedSeq uint64
	Change  events.Change
}

// ReadLog returns every event of the log, in order.
func ReadLog(t testing.TB, js jetstream.JetStream) []LogEntry {
	t.Helper()
	var out []LogEntry
	for _, m := range natstest.ReadStream(t, js, events.LogStream) {
		md, _ := m.Metadata()
		e, err := events.DecodeEvent(m.Data())
		if err != nil {
			t.Fatalf("log seq %d: %v", md.Sequence.Stream, err)
		}
		out = append(out, LogEntry{Seq: md.Sequence.Stream, Event: e})
	}
	return out
}

// ReadFeed returns every entry of the feed, in order.
func ReadFeed(t testing.TB, js jetstream.JetStream) []FeedEntry {
	t.Helper()
	var out []FeedEntry
	for _, m := range natstest.ReadStream(t, js, events.FeedStream) {
		md, _ := m.Metadata()
		c, err := events.DecodeChange(m.Data())
		if err != nil {
			t.Fatalf("feed seq %d: %v", md.Sequence.Stream, err)
		}
		out = append(out, FeedEntry{FeedSeq: md.Sequence.Stream, Change: c})
	}
	return out
}

// WantFeed derives the feed the log calls for: the n-th visible change of the
// log at feed sequence n.
func WantFeed(log []LogEntry) []FeedEntry {
	var out []FeedEntry
	for _, le := range log {
		if c, ok := events.ChangeOf(le.Event); ok {
			out = append(out, FeedEntry{FeedSeq: uint64(len(out) + 1), Change: c})
		}
	}
	return out
}

// FeedPositions maps the log sequence of each visible change of the log to
// its feed position.
func FeedPositions(log []LogEntry) map[uint64]uint64 {
	out := make(map[uint64]uint64)
	for _, le := range log {
		if _, ok := events.ChangeOf(le.Event); ok {
			out[le.Seq] = uint64(len(out) + 1)
		}
	}
	return out
}

// FeedPosition returns the feed position of the visible change at log
// sequence logSeq, counted from the log on js; it fails the test if that event
// is no visible change.
func FeedPosition(t testing.TB, js jetstream.JetStream, logSeq uint64) uint64 {
	t.Helper()
	pos, ok := FeedPositions(ReadLog(t, js))[logSeq]
	if !ok {
		t.Fatalf("log seq %d is no visible change: it has no feed position", logSeq)
	}
	return pos
}

// CheckChains fails the test unless every contact's events chain: each
// previous is the status of the event before it, the first previous is
// unknown.
func CheckChains(t testing.TB, log []LogEntry) {
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

// Background runs an engine on one machine, with its data in a temp directory
// and logging nothing, for an Example, which has no *testing.T. It returns the
// URL clients connect to, and the function that stops the engine and removes
// its data.
func Background() (url string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "presence-example-")
	if err != nil {
		return "", nil, err
	}
	e, err := engine.Open(dir, engine.Options{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop = func() { cancel(); <-done; e.Close(); os.RemoveAll(dir) }
	if err := e.WaitReady(ctx); err != nil {
		stop()
		return "", nil, err
	}
	return e.ClientURL(), stop, nil
}
