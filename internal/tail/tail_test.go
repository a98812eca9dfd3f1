package tail

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/engine/natstest"
)

// startTail starts a Tail and stops it when the test ends.
func startTail(t *testing.T, stream jetstream.Stream, cfg Config) *Tail {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = natstest.Logger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tail, err := Start(ctx, stream, cfg)
	if err != nil {
		t.Fatalf("Start(%+v) = %v", cfg, err)
	}
	t.Cleanup(tail.Stop)
	return tail
}

// collect reads n records from tail, failing the test if they take longer
// than testTimeout.
func collect(t *testing.T, tail *Tail, n int) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out, batch []Record
	var err error
	for len(out) < n {
		batch, err = tail.Next(ctx, batch, n-len(out))
		if err != nil {
			t.Fatalf("Next() after %d of %d records = %v", len(out), n, err)
		}
		out = append(out, batch...)
	}
	return out
}

// checkRecords checks that got holds the history's records at seqs, in order.
func checkRecords(t *testing.T, got []Record, h *history, seqs ...uint64) {
	t.Helper()
	if len(got) != len(seqs) {
		t.Fatalf("got %d records, want %d", len(got), len(seqs))
	}
	for i, r := range got {
		want := h.records[seqs[i]-1]
		if r.Seq != want.Seq || !bytes.Equal(r.Data, want.Data) {
			t.Errorf("record %d: seq %d %s, want seq %d %s", i, r.Seq, r.Data, want.Seq, want.Data)
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestTail(t *testing.T) {
	js, stream := startLog(t)
	h := newHistory()
	for i := range 10 {
		h.set([]string{alice, bob, carol}[i%3], "", []string{"online", "away"}[i/3%2])
	}
	publish(t, js, h, 0)

	t.Run("from", func(t *testing.T) {
		tests := []struct {
			name string
			from uint64
			want []uint64
		}{
			{"zero means the first", 0, seqRange(1, 10)},
			{"first", 1, seqRange(1, 10)},
			{"middle", 4, seqRange(4, 10)},
			{"last", 10, seqRange(10, 10)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tail := startTail(t, stream, Config{From: tt.from})
				checkRecords(t, collect(t, tail, len(tt.want)), h, tt.want...)
				if got := tail.Last(); got != 10 {
					t.Errorf("Last() = %d, want 10", got)
				}
			})
		}
	})

	t.Run("subjects", func(t *testing.T) {
		tail := startTail(t, stream, Config{Subjects: []string{subject(bob)}})
		checkRecords(t, collect(t, tail, 3), h, 2, 5, 8)
	})

	t.Run("batches what is waiting", func(t *testing.T) {
		tail := startTail(t, stream, Config{From: 1, Buffer: 16})
		natstest.WaitFor(t, "10 records waiting in C", func() bool { return len(tail.C) == 10 })
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		var batch []Record
		for _, want := range [][]uint64{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}} {
			var err error
			batch, err = tail.Next(ctx, batch, 4)
			if err != nil {
				t.Fatalf("Next() = %v", err)
			}
			checkRecords(t, batch, h, want...)
		}
		// Nothing waits now: Next waits for the next record, until ctx is done.
		short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancelShort()
		batch, err := tail.Next(short, batch, 4)
		if !errors.Is(err, context.DeadlineExceeded) || len(batch) != 0 {
			t.Errorf("Next() with nothing waiting = %d records, %v; want none and context.DeadlineExceeded", len(batch), err)
		}
	})

	t.Run("waits for what comes", func(t *testing.T) {
		tail := startTail(t, stream, Config{From: 11})
		h.set(alice, "", "busy")
		publish(t, js, h, 10)
		checkRecords(t, collect(t, tail, 1), h, 11)
		if got := tail.Last(); got != 11 {
			t.Errorf("Last() = %d, want 11", got)
		}
	})

	t.Run("stop twice", func(t *testing.T) {
		tail := startTail(t, stream, Config{})
		tail.Stop()
		tail.Stop()
	})
}

func TestTailSlowReader(t *testing.T) {
	// A reader slower than the log, with a buffer of one: every record comes,
	// in order, once. (PullMaxMessages stays at its default: with small pulls,
	// 10 say, the consumer was seen to stall for over 10s on a loaded machine,
	// with or without a small buffer.)
	js, stream := startLog(t)
	h := randomHistory(rand.New(rand.NewPCG(3, 3)), 20, 300)
	publish(t, js, h, 0)
	logs := &logRecorder{}
	tail := startTail(t, stream, Config{Buffer: 1, Logger: slog.New(logs)})
	var got []Record
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var batch []Record
	for len(got) < 300 {
		var err error
		if batch, err = tail.Next(ctx, batch, 1); err != nil {
			t.Fatalf("Next() after %d records = %v; the consumer reported %q", len(got), err, logs.errs())
		}
		got = append(got, batch...)
	}
	checkRecords(t, got, h, seqRange(1, 300)...)
}

func TestTailStreamDeleted(t *testing.T) {
	// Err's contract: it delivers ErrConsumerLost when the stream is deleted under
	// the Tail. The Follower relies on it to notice a recreated log.
	js, stream := startLog(t)
	h := newHistory()
	h.set(alice, "Alice", "online")
	h.set(bob, "Bob", "online")
	publish(t, js, h, 0)
	logs := &logRecorder{}
	tail := startTail(t, stream, Config{Logger: slog.New(logs)})
	checkRecords(t, collect(t, tail, 2), h, 1, 2)

	deleteLog(t, js)
	select {
	case <-tail.Failed():
		if err := tail.Err(); !errors.Is(err, ErrConsumerLost) {
			t.Errorf("Err() = %v, want ErrConsumerLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Failed() was not closed 5s after the stream was deleted, want ErrConsumerLost; the consumer reported %q", logs.errs())
	}
}

// logRecorder is a slog.Handler that keeps the "err" of every record.
type logRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			l.mu.Lock()
			l.seen = append(l.seen, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *logRecorder) errs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// TestTailNoticesAStreamCreatedAgainWhileCutOff: cut off from the server while
// the stream is created again shorter, a Tail hears of no deletion, and its
// new consumer, at the old position, delivers nothing. It looks at the stream
// on reconnecting and fails, although the context it was started with is long
// gone (startTail's ends as it returns); Stop then waits for its looking.
func TestTailNoticesAStreamCreatedAgainWhileCutOff(t *testing.T) {
	p, js, direct := behindProxy(t)
	nc := js.Conn()
	stream := createLog(t, js)
	h := newHistory()
	h.set(alice, "Alice", "online")
	h.set(bob, "Bob", "online")
	publish(t, js, h, 0)
	tail := startTail(t, stream, Config{Conn: nc, Watch: time.Hour}) // only the reconnection may tell
	checkRecords(t, collect(t, tail, 2), h, 1, 2)

	p.Pause()
	deleteLog(t, direct)
	again := newHistory()
	again.set(alice, "Alice", "away")
	createLog(t, direct)
	publish(t, direct, again, 0)
	p.Resume()

	select {
	case <-tail.Failed():
		if err := tail.Err(); !errors.Is(err, ErrConsumerLost) {
			t.Errorf("Err() = %v, want ErrConsumerLost", err)
		}
	case r := <-tail.C:
		t.Fatalf("the Tail delivered seq %d of the stream created again", r.Seq)
	case <-time.After(testTimeout):
		t.Fatal("the Tail did not fail after reconnecting to a stream created again")
	}
	tail.Stop() // returns once the Tail has stopped looking
}

// TestTailNoticesAStreamRestoredFromAnOlderCopy: a server started again on an
// older copy of its store has the same stream, created at the same time, but
// ending before what a Tail delivered. The Tail fails on reconnecting rather
// than deliver what is appended to that stream since: other events at the
// sequences after the ones it delivered.
func TestTailNoticesAStreamRestoredFromAnOlderCopy(t *testing.T) {
	dir, older := t.TempDir(), t.TempDir()
	port := natstest.FreePort(t)
	start := func() *server.Server { return natstest.StartWith(t, natstest.Options{StoreDir: dir, Port: port}) }
	stop := func(s *server.Server) {
		s.Shutdown()
		s.WaitForShutdown()
	}
	s := start()
	reconnected := make(chan struct{}, 2)
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := createLog(t, js)
	h := newHistory()
	h.set(alice, "Alice", "online")
	h.set(bob, "Bob", "online")
	publish(t, js, h, 0)
	stop(s)
	if err := os.CopyFS(older, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}

	s = start()
	select {
	case <-reconnected:
	case <-time.After(testTimeout):
		t.Fatal("the client did not reconnect to the server started again")
	}
	tail := startTail(t, stream, Config{Conn: nc, Watch: time.Hour}) // only the consumer made again may tell
	h.set(alice, "Alice", "away")
	h.set(bob, "Bob", "busy")
	publish(t, js, h, 2)
	checkRecords(t, collect(t, tail, 4), h, 1, 2, 3, 4)

	stop(s)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(older)); err != nil {
		t.Fatal(err)
	}
	s = start()
	_, direct := natstest.JetStream(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	const carol = "sip:carol@contoso.com"
	for i := range 3 { // seqs 3 to 5 of the restored stream
		if _, err := direct.Publish(ctx, subject(carol), []byte(carol+" "+[]string{"online", "busy", "away"}[i])); err != nil {
			t.Fatal(err)
		}
	}

	select {
	case <-tail.Failed():
		if err := tail.Err(); !errors.Is(err, ErrConsumerLost) {
			t.Errorf("Err() = %v, want ErrConsumerLost", err)
		}
	case r := <-tail.C:
		t.Fatalf("the Tail delivered seq %d of the stream restored from an older copy: %s", r.Seq, r.Data)
	case <-time.After(testTimeout):
		t.Fatal("the Tail did not fail after reconnecting to a stream restored from an older copy")
	}
}

// TestTailStopDeletesItsConsumer: a stopped Tail leaves no consumer on the
// server (the library would leave it there for five minutes).
func TestTailStopDeletesItsConsumer(t *testing.T) {
	js, stream := startLog(t)
	h := newHistory()
	h.set(alice, "Alice", "online")
	publish(t, js, h, 0)
	consumers := func() int {
		t.Helper()
		info, err := stream.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	for _, n := range []int{0, 1} { // records delivered before Stop
		tail := startTail(t, stream, Config{})
		collect(t, tail, n)
		if got := consumers(); got != 1 {
			t.Fatalf("%d consumers while a Tail reads, want 1", got)
		}
		tail.Stop()
		if got := consumers(); got != 0 {
			t.Errorf("%d consumers after Stop (%d records delivered), want 0", got, n)
		}
	}
}

// gatedStream answers no Info while fail is set, as a stream does while the
// link to it flaps: a Tail's look at it cannot tell, and is made again.
type gatedStream struct {
	jetstream.Stream
	fail  atomic.Bool
	looks atomic.Int32 // looks that could not tell
}

func (g *gatedStream) Info(ctx context.Context, opts ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error) {
	if g.fail.Load() {
		g.looks.Add(1)
		return nil, errors.New("no answer")
	}
	return g.Stream.Info(ctx, opts...)
}

// TestTailKeepsOrderAcrossConsumersMadeAgainWhileLooking: nats.go makes a
// Tail's consumer again on a goroutine of its own, without waiting for the
// old one's callback. That one may still be looking at the stream before it
// delivers a record when the next consumer, made again from the record after,
// delivers that one: the Tail delivers them in stream order all the same.
func TestTailKeepsOrderAcrossConsumersMadeAgainWhileLooking(t *testing.T) {
	p, js, direct := behindProxy(t)
	nc := js.Conn()
	g := &gatedStream{Stream: createLog(t, js)}
	h := newHistory()
	h.set(alice, "Alice", "online")
	h.set(bob, "Bob", "online")
	publish(t, direct, h, 0)
	tail := startTail(t, g, Config{Conn: nc, Watch: -1})
	checkRecords(t, collect(t, tail, 2), h, 1, 2)

	bounce := func() {
		t.Helper()
		before := nc.Stats().Reconnects
		p.Pause()
		natstest.WaitFor(t, "the Tail to be cut off", func() bool { return !nc.IsConnected() })
		p.Resume()
		natstest.WaitFor(t, "the Tail to reconnect", func() bool { return nc.IsConnected() && nc.Stats().Reconnects > before })
	}
	delivered := func(seq uint64) func() bool { // by some consumer of the stream, to the Tail's client
		return func() bool {
			stream, err := direct.Stream(context.Background(), streamName)
			if err != nil {
				return false
			}
			for info := range stream.ListConsumers(context.Background()).Info() {
				if info.Delivered.Stream >= seq {
					return true
				}
			}
			return false
		}
	}

	g.fail.Store(true)
	bounce()
	h.set(alice, "Alice", "away") // seq 3: its consumer was made again, and its callback looks, in vain
	publish(t, direct, h, 2)
	natstest.WaitFor(t, "the callback of seq 3 to look at the stream", func() bool { return g.looks.Load() > 0 })
	bounce()
	h.set(bob, "Bob", "away") // seq 4: for the consumer made again from it
	publish(t, direct, h, 3)
	natstest.WaitFor(t, "seq 4 to be delivered to the Tail's client", delivered(4))
	g.fail.Store(false)
	checkRecords(t, collect(t, tail, 2), h, 3, 4)
}

// behindProxy starts a server and returns a proxy to it, a JetStream through
// the proxy (reconnecting at once when the proxy lets it) and one straight to
// the server.
func behindProxy(t *testing.T) (p *natstest.Proxy, through, direct jetstream.JetStream) {
	t.Helper()
	s := natstest.Start(t)
	p = natstest.StartProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	nc, err := nats.Connect(p.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if through, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	_, direct = natstest.JetStream(t, s)
	return p, through, direct
}
