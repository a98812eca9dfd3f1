//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// The process tests run the real binary: built once, started as `presence
// serve`, killed with signals, started again on the same data.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// presenceBinary builds the binary on first use, with -race when the tests run
// with it (the packages are then already compiled that way).
func presenceBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: process tests skipped; they build the presence binary with go build and run it")
	}
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the process tests build the binary with the go command, which is not on PATH: %w", err)
			return
		}
		out := filepath.Join(binDir, "presence")
		args := []string{"build", "-o", out}
		if raceEnabled() {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, ".")...)
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
			return
		}
		binPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// serveProc is one `presence serve` process.
type serveProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{} // closed once it has exited
	url  string
}

// startServeProc starts `presence serve` on dir and port, with any extra flags,
// and waits until it logs that it serves and its service answers. It is killed
// when the test ends.
func startServeProc(t *testing.T, bin, dir string, port int, extra ...string) *serveProc {
	t.Helper()
	p := &serveProc{logs: newSyncBuffer(), done: make(chan struct{})}
	args := []string{"serve", "--data", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json"}
	p.cmd = exec.Command(bin, append(args, extra...)...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	p.cmd.SysProcAttr = childAttr()
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start presence serve: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("presence serve (pid %d) still running 10s after SIGKILL", p.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("log of presence serve (pid %d):\n%s", p.cmd.Process.Pid, p.logs)
		}
	})
	logs := p.logs.waitFor(t, 30*time.Second, p.done, `the "presence engine serving" log line`, func(s string) bool {
		_, ok := logLine(s, "presence engine serving")
		return ok
	})
	line, _ := logLine(logs, "presence engine serving")
	p.url = fmt.Sprintf("nats://127.0.0.1:%d", port)
	if line["url"] != p.url || line["data"] != dir {
		t.Errorf("serving log line %v: want url %s and data %s", line, p.url, dir)
	}
	waitServing(t, p.url)
	return p
}

// signal sends sig and waits for the process to exit.
func (p *serveProc) signal(t *testing.T, sig os.Signal) *os.ProcessState {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to presence serve: %v", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("presence serve did not exit within 30s of %v", sig)
	}
	return p.cmd.ProcessState
}

var (
	loadContacts = func() []string {
		var cs []string
		for i := range 20 {
			cs = append(cs, fmt.Sprintf("c%d", i))
		}
		return cs
	}()
	loadStatuses = []events.Status{events.Online, events.Away, events.Busy, events.Invisible, events.Offline, events.Idle}
)

// newClients opens n connections to url that reconnect to it forever, quickly.
func newClients(t *testing.T, url string, n int) []*client.Client {
	t.Helper()
	var cs []*client.Client
	for range n {
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
			nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond))
		if err != nil {
			t.Fatalf("connect to %s: %v", url, err)
		}
		t.Cleanup(nc.Close)
		c := client.New(nc)
		c.Timeout = time.Second
		cs = append(cs, c)
	}
	return cs
}

// acked is a set the service acknowledged.
type acked struct {
	req client.SetRequest
	res client.SetResult
}

// load sets random statuses of c0..c19 from several goroutines, keeping every
// acknowledged answer. A request with an ID that got no answer is retried with
// the same ID, as a careful client would.
type load struct {
	quit  chan struct{} // closed to stop: each goroutine finishes its request first
	wg    sync.WaitGroup
	n     atomic.Int64 // acknowledged sets
	fails atomic.Int64 // requests without an answer

	mu         sync.Mutex
	acks       []acked
	unexpected []error
}

func startLoad(t *testing.T, clients []*client.Client, workers int, seed uint64, tag string) *load {
	// Requests are never cancelled: one cancelled in flight may still be
	// appended after the load has stopped, and the log would move under the
	// checks.
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{quit: make(chan struct{})}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	for g := range workers {
		c := clients[g%len(clients)]
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var retry *client.SetRequest
			for i := 0; ; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				var req client.SetRequest
				if retry != nil {
					req = *retry
				} else {
					k := rng.IntN(len(loadContacts))
					req = client.SetRequest{Contact: loadContacts[k], Status: loadStatuses[rng.IntN(len(loadStatuses))]}
					if req.Status == events.Idle {
						req.Cause = events.CauseEndpoint
					}
					if rng.IntN(4) == 0 {
						req.RequestID = fmt.Sprintf("%s-g%d-%d", tag, g, i)
					}
					if rng.IntN(8) == 0 {
						req.Name = fmt.Sprintf("Contact %d (%s-g%d-%d)", k, tag, g, i)
					}
				}
				res, err := c.Set(ctx, req)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					l.fails.Add(1)
					if !errors.Is(err, client.ErrUnavailable) {
						l.mu.Lock()
						l.unexpected = append(l.unexpected, fmt.Errorf("set %+v: %w", req, err))
						l.mu.Unlock()
					}
					if req.RequestID != "" {
						retry = &req
					}
					select { // the engine is away: a pause before the next try
					case <-l.quit:
						return
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				retry = nil
				l.mu.Lock()
				l.acks = append(l.acks, acked{req: req, res: res})
				l.mu.Unlock()
				l.n.Add(1)
			}
		}()
	}
	return l
}

// stop ends the load and returns the acknowledged sets.
func (l *load) stop(t *testing.T) []acked {
	t.Helper()
	close(l.quit)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.unexpected {
		t.Errorf("load: an error other than unavailable: %v", err)
	}
	t.Logf("load: %d sets acknowledged, %d without an answer", len(l.acks), l.fails.Load())
	return l.acks
}

type record struct {
	seq  uint64
	data []byte
}

// readStream reads a whole stream.
func readStream(t *testing.T, js jetstream.JetStream, name string) []record {
	t.Helper()
	var out []record
	for _, m := range natstest.ReadStream(t, js, name) {
		md, err := m.Metadata()
		if err != nil {
			t.Fatalf("metadata of a message of %s: %v", name, err)
		}
		out = append(out, record{seq: md.Sequence.Stream, data: m.Data()})
	}
	return out
}

// folded is a contact's state folded from the log by the test.
type folded struct {
	status      events.Status
	seq         uint64
	name        string
	visible     events.Status
	visibleSeq  uint64
	visibleName string
}

// verifyEngine checks the engine at url against the sets it acknowledged: each
// is in the log, every contact's chain holds, the projection is the fold of the
// log, and the feed holds every visible change exactly once, in log order.
func verifyEngine(t *testing.T, url string, acks []acked) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// The log: every sequence from 1, each an event.
	logRecs := readStream(t, js, events.LogStream)
	bySeq := make(map[uint64]events.Event, len(logRecs))
	var lastSeq uint64
	for i, r := range logRecs {
		if r.seq != uint64(i+1) {
			t.Fatalf("log record %d has seq %d: the log has a gap or is out of order", i+1, r.seq)
		}
		e, err := events.DecodeEvent(r.data)
		if err != nil {
			t.Fatalf("log seq %d: %v", r.seq, err)
		}
		bySeq[r.seq] = e
		lastSeq = r.seq
	}

	// Every acknowledged set is there.
	for _, a := range acks {
		e, ok := bySeq[a.res.Seq]
		switch {
		case !ok:
			t.Errorf("acknowledged %s -> %s (seq %d) is not in the log (last seq %d)", a.req.Contact, a.req.Status, a.res.Seq, lastSeq)
		case e.Contact != a.req.Contact || e.Status != a.req.Status || a.res.Status != a.req.Status || a.res.Contact != a.req.Contact:
			t.Errorf("acknowledged %s -> %s answered %+v, but the log's event at seq %d is %s -> %s", a.req.Contact, a.req.Status, a.res, a.res.Seq, e.Contact, e.Status)
		case a.res.Changed && e.Previous != a.res.Previous:
			t.Errorf("acknowledged %s -> %s answered previous %s, but the log's event at seq %d has previous %s", a.req.Contact, a.req.Status, a.res.Previous, a.res.Seq, e.Previous)
		}
	}

	// Each contact's chain, each request ID appended once, and the fold.
	state := map[string]*folded{}
	requests := map[string]uint64{}
	var visibleSeqs []uint64 // the log seqs of the visible changes: the one at feed position k is [k-1]
	for _, r := range logRecs {
		e := bySeq[r.seq]
		st := state[e.Contact]
		if st == nil {
			st = &folded{status: events.Unknown, visible: events.Unknown}
			state[e.Contact] = st
		}
		if e.Previous != st.status {
			t.Errorf("log seq %d: %s has previous %s, but its event before (seq %d) set %s", r.seq, e.Contact, e.Previous, st.seq, st.status)
		}
		if e.RequestID != "" {
			key := e.Contact + " " + e.RequestID
			if first, dup := requests[key]; dup {
				t.Errorf("request %q of %s is in the log twice, at seq %d and %d", e.RequestID, e.Contact, first, r.seq)
			} else {
				requests[key] = r.seq
			}
		}
		st.status, st.seq, st.name = e.Status, r.seq, e.Name
		if c, ok := events.ChangeOf(e); ok {
			visibleSeqs = append(visibleSeqs, r.seq)
			st.visible, st.visibleSeq, st.visibleName = e.Status.Visible(), uint64(len(visibleSeqs)), c.Name
		}
	}
	for _, a := range acks {
		if a.req.RequestID == "" {
			continue
		}
		if seq, ok := requests[a.req.Contact+" "+a.req.RequestID]; ok && a.res.Seq != seq {
			t.Errorf("request %q of %s was answered with seq %d, but it appended the event at seq %d: a retry must be answered as the first time",
				a.req.RequestID, a.req.Contact, a.res.Seq, seq)
		}
	}

	// The projection, read at least as new as the whole log, is the fold.
	svc := client.New(nc)
	read := func(what string, f func(context.Context) (client.Reply, error)) client.Reply {
		var r client.Reply
		var err error
		waitUntil(t, 20*time.Second, what+" to answer", func() bool {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			defer rcancel()
			r, err = f(rctx)
			if err != nil && !errors.Is(err, client.ErrUnavailable) {
				t.Fatalf("%s: %v", what, err)
			}
			return err == nil
		})
		return r
	}
	for _, c := range slices.Concat(loadContacts, []string{"never-seen"}) {
		want := state[c]
		if want == nil {
			want = &folded{status: events.Unknown, visible: events.Unknown}
		}
		self := read("self "+c, func(ctx context.Context) (client.Reply, error) { return svc.Self(ctx, c, lastSeq) })
		if w := (client.Reply{Contact: c, Name: want.name, Status: want.status, Seq: want.seq}); self != w {
			t.Errorf("self %s = %+v, want %+v (the fold of the log up to seq %d)", c, self, w, lastSeq)
		}
		lastPos := uint64(len(visibleSeqs)) // the feed position of the log's last visible change
		status := read("status "+c, func(ctx context.Context) (client.Reply, error) { return svc.Status(ctx, c, lastPos) })
		if w := (client.Reply{Contact: c, Name: want.visibleName, Status: want.visible, Seq: want.visibleSeq}); status != w {
			t.Errorf("status %s = %+v, want %+v (the fold of the log up to seq %d, feed position %d)", c, status, w, lastSeq, lastPos)
		}
	}

	// The feed: every visible change once, in log order, the one at feed
	// position k the k-th, once it has caught up.
	if len(visibleSeqs) == 0 {
		t.Fatal("the log holds no visible change")
	}
	want := uint64(len(visibleSeqs))
	feed, err := js.Stream(ctx, events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	var feedLast uint64
	waitUntil(t, 20*time.Second, fmt.Sprintf("the feed to reach feed position %d", want), func() bool {
		info, err := feed.Info(ctx)
		if err != nil {
			t.Fatalf("feed info: %v", err)
		}
		feedLast = info.State.LastSeq
		return feedLast >= want
	})
	if feedLast != want {
		t.Errorf("the feed ends at seq %d; the log holds %d visible changes", feedLast, want)
	}
	var n uint64
	for _, r := range readStream(t, js, events.FeedStream) {
		n++
		c, err := events.DecodeChange(r.data)
		if err != nil {
			t.Fatalf("feed seq %d: %v", r.seq, err)
		}
		if r.seq != n {
			t.Errorf("feed entry %d is at feed seq %d: positions number from 1 with no gap", n, r.seq)
			break
		}
		if r.seq > want {
			t.Errorf("feed seq %d: the log holds %d visible changes", r.seq, want)
			break
		}
		if w, _ := events.ChangeOf(bySeq[visibleSeqs[r.seq-1]]); !c.At.Equal(w.At) || c.Contact != w.Contact || c.Name != w.Name || c.Previous != w.Previous {
			t.Errorf("feed seq %d = %+v, want %+v (the change at log seq %d)", r.seq, c, w, visibleSeqs[r.seq-1])
		}
	}
	if n != want {
		t.Errorf("the feed holds %d entries; want every visible change once, %d", n, want)
	}
	t.Logf("verified: %d events, %d visible, %d acknowledged sets", len(logRecs), len(visibleSeqs), len(acks))
}

// TestProcessStop: SIGTERM or SIGINT while sets go on is a clean stop, exit 0,
// and the engine started again has everything, without folding the log again
// nor deriving the feed again: it goes on from its checkpoint.
func TestProcessStop(t *testing.T) {
	bin := presenceBinary(t)
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGINT", syscall.SIGINT}} {
		sig := tc.sig
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			port := natstest.FreePort(t)
			srv := startServeProc(t, bin, dir, port)
			clients := newClients(t, srv.url, 2)

			l := startLoad(t, clients, 4, 7, "t")
			waitUntil(t, 30*time.Second, "200 acknowledged sets", func() bool { return l.n.Load() >= 200 })
			// How far the projection and the feed had gone, committed, just
			// before the signal: the restarted engine starts from there or later.
			before := serviceMetrics(t, srv.url)
			st := srv.signal(t, sig)
			if code := st.ExitCode(); code != 0 {
				t.Errorf("presence serve exited %v after %v, want exit 0", st, sig)
			}
			logs := srv.logs.String()
			if _, ok := logLine(logs, "presence engine stopped cleanly"); !ok {
				t.Errorf("presence serve did not log \"presence engine stopped cleanly\" after %v", sig)
			}
			for _, line := range jsonLines(logs) {
				if line["level"] == "ERROR" {
					t.Errorf("presence serve logged an error during a clean stop: %v", line)
				}
			}
			acks := l.stop(t)

			srv = startServeProc(t, bin, dir, port)
			checkNoRefold(t, srv, before)
			verifyEngine(t, srv.url, acks)
			// verifyEngine only reads: still nothing folded again.
			checkNoRefold(t, srv, before)
		})
	}
}

// TestProcessRetryAfterRestart: a request retried after the engine restarted is
// answered as the first time and appends nothing, whether the contact's status
// is now the one the request set or another.
func TestProcessRetryAfterRestart(t *testing.T) {
	bin := presenceBinary(t)
	dir := t.TempDir()
	port := natstest.FreePort(t)
	srv := startServeProc(t, bin, dir, port)
	c := newClients(t, srv.url, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	set := func(req client.SetRequest) client.SetResult {
		t.Helper()
		res, err := c.Set(ctx, req)
		if err != nil {
			t.Fatalf("set %+v: %v", req, err)
		}
		return res
	}

	const same, other = "sip:same@contoso.com", "sip:other@contoso.com"
	// same: online by request r-1, then away and online again without one.
	firstSame := set(client.SetRequest{Contact: same, Status: events.Online, RequestID: "r-1"})
	set(client.SetRequest{Contact: same, Status: events.Away})
	lastSame := set(client.SetRequest{Contact: same, Status: events.Online})
	// other: online by request r-1, then away.
	firstOther := set(client.SetRequest{Contact: other, Status: events.Online, RequestID: "r-1"})
	lastOther := set(client.SetRequest{Contact: other, Status: events.Away})

	for _, cs := range []struct {
		contact     string
		first, last client.SetResult
	}{{same, firstSame, lastSame}, {other, firstOther, lastOther}} {
		if got := set(client.SetRequest{Contact: cs.contact, Status: events.Online, RequestID: "r-1"}); got != cs.first {
			t.Errorf("%s: retry before the restart answered %+v, want the first answer %+v", cs.contact, got, cs.first)
		}
	}

	if st := srv.signal(t, syscall.SIGTERM); st.ExitCode() != 0 {
		t.Fatalf("presence serve exited %v after SIGTERM", st)
	}
	startServeProc(t, bin, dir, port)

	for _, cs := range []struct {
		contact     string
		first, last client.SetResult
	}{{same, firstSame, lastSame}, {other, firstOther, lastOther}} {
		t.Run(cs.contact, func(t *testing.T) {
			// The client may still be reconnecting: it says so, having sent
			// nothing, and a careful client retries.
			var (
				got client.SetResult
				err error
			)
			waitUntil(t, 20*time.Second, "the client to reconnect", func() bool {
				got, err = c.Set(ctx, client.SetRequest{Contact: cs.contact, Status: events.Online, RequestID: "r-1"})
				return !errors.Is(err, client.ErrUnavailable)
			})
			if err != nil {
				t.Fatalf("retry after the restart: %v", err)
			}
			if got != cs.first {
				t.Errorf("retry after the restart answered %+v, want the first answer %+v", got, cs.first)
			}
			self, err := c.Self(ctx, cs.contact, cs.last.Seq)
			if err != nil {
				t.Fatal(err)
			}
			if self.Seq != cs.last.Seq || self.Status != cs.last.Status {
				t.Errorf("self after the retry = %+v, want %s at seq %d: a retry appends nothing", self, cs.last.Status, cs.last.Seq)
			}
		})
	}
}
