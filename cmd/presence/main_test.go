package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/presence-engine/presence/client"
)

// binDir holds the presence binary that the process tests build on first use.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "presence-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir for the presence binary:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	// run starts servers, connections and subscribers: all must be gone once
	// it has returned.
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "goroutines left running after the tests: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for concurrent use that tells waiters when
// it grows: what a running command or a child process writes into.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// waitFor waits until cond holds for the buffer's contents and returns them. It
// fails the test when timeout passes first, or when abort is closed (the writer
// is gone and nothing more will come).
func (b *syncBuffer) waitFor(t testing.TB, timeout time.Duration, abort <-chan struct{}, what string, cond func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s, changed := b.snapshot()
		if cond(s) {
			return s
		}
		select {
		case <-changed:
		case <-abort:
			if s := b.String(); cond(s) {
				return s
			}
			t.Fatalf("waiting for %s: the writer stopped; it wrote:\n%s", what, b.String())
		case <-deadline.C:
			t.Fatalf("waiting for %s: not there after %s; got:\n%s", what, timeout, b.String())
		}
	}
}

// jsonLines decodes each complete line of s that is a JSON object; other lines
// (and a last line still being written) are left out.
func jsonLines(s string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	complete := strings.HasSuffix(s, "\n")
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if !complete && len(lines) > 0 {
		lines = lines[:len(lines)-1]
	}
	for _, l := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m != nil {
			out = append(out, m)
		}
	}
	return out
}

// logLine returns the first JSON log line whose msg is msg.
func logLine(s, msg string) (map[string]any, bool) {
	for _, l := range jsonLines(s) {
		if l["msg"] == msg {
			return l, true
		}
	}
	return nil, false
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not so after %s", what, timeout)
		}
		<-tick.C
	}
}

// cliResult is what one run of the program printed, and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
	err            error
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// presence runs the program in-process as main does, and returns what it printed
// and its exit code.
func presence(t testing.TB, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, &stdout, &stderr)
	code := exitCode(err, &stderr)
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code, err: err}
}

// mustPresence runs the program and fails the test unless it exits 0.
func mustPresence(t testing.TB, args ...string) string {
	t.Helper()
	r := presence(t, args...)
	if r.code != 0 {
		t.Fatalf("presence %s: %s", strings.Join(args, " "), r)
	}
	if r.stderr != "" {
		t.Errorf("presence %s: stderr %q, want nothing", strings.Join(args, " "), r.stderr)
	}
	return r.stdout
}

// testServer is `presence serve` run in-process by run(), on a random loopback
// port with its data in a temp dir.
type testServer struct {
	url  string
	dir  string
	logs *syncBuffer
}

// startServer runs `presence serve` in-process until the test ends, and waits
// until its service answers.
func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with more serve flags, and the options a
// client needs to connect (credentials, TLS).
func startServerWith(t *testing.T, extra []string, connOpts ...nats.Option) *testServer {
	t.Helper()
	s := &testServer{dir: t.TempDir(), logs: newSyncBuffer()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = run(ctx, append([]string{"serve", "--data", s.dir, "--listen", "127.0.0.1:0", "--log-format", "json"}, extra...), &bytes.Buffer{}, s.logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("presence serve did not return within 30s of its context ending; log:\n%s", s.logs)
			return
		}
		if runErr != nil {
			t.Errorf("presence serve returned %v after a clean stop; log:\n%s", runErr, s.logs)
		}
		if _, ok := logLine(s.logs.String(), "presence engine stopped cleanly"); !ok {
			t.Errorf("presence serve stopped without logging \"presence engine stopped cleanly\"; log:\n%s", s.logs)
		}
	})
	logs := s.logs.waitFor(t, 30*time.Second, done, `the "presence engine serving" log line`, func(s string) bool {
		_, ok := logLine(s, "presence engine serving")
		return ok
	})
	line, _ := logLine(logs, "presence engine serving")
	url, _ := line["url"].(string)
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("serving log line has url %q, want nats://127.0.0.1:PORT: %v", url, line)
	}
	s.url = url
	waitServing(t, url, connOpts...)
	return s
}

// waitServing polls a status request until the service answers it.
func waitServing(t testing.TB, url string, opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	c := client.New(nc)
	var last error
	waitUntil(t, 30*time.Second, "the presence service to answer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, last = c.Status(ctx, "probe:ready", 0)
		if last != nil && !errors.Is(last, client.ErrUnavailable) {
			t.Fatalf("status request while waiting for the service: %v", last)
		}
		return last == nil
	})
}
