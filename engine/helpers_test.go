package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
	nc, err := nats.Connect(r.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
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
