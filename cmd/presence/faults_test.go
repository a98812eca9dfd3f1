//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// The kill loop kills `presence serve` with SIGKILL at random points while
// sets go on and subscribers consume the feed, many times in a row, and checks
// after every restart that nothing acknowledged was lost, that the projection
// and the feed describe the log, and that every subscriber goes on with no gap
// and no repeat. The points are drawn from a fixed seed and counted in
// acknowledged sets, not in wall time, so that they fall at the same places of
// the workload whatever the speed of the machine.
//
// PRESENCE_SOAK=10m runs the loop for that long instead of a few cycles.

// soakDuration reads PRESENCE_SOAK: zero when unset.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("PRESENCE_SOAK")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("PRESENCE_SOAK=%q: want a duration such as 10m", v)
	}
	return d
}

// TestProcessKill: SIGKILL the engine at random points during writes and
// subscriptions, six times by default (PRESENCE_SOAK: for a duration).
func TestProcessKill(t *testing.T) {
	runKillLoop(t, killLoopConfig{cycles: 6, soak: soakDuration(t), seed: 20261125, sync: "100ms"})
}

// TestProcessKillSyncAlways: the same with --sync always, where every write
// is on disk before it is acknowledged.
func TestProcessKillSyncAlways(t *testing.T) {
	runKillLoop(t, killLoopConfig{cycles: 3, soak: soakDuration(t), seed: 20261126, sync: "always", serveFlags: []string{"--sync", "always"}})
}

type killLoopConfig struct {
	cycles     int           // kill cycles, when soak is zero
	soak       time.Duration // run cycles until this has passed instead
	seed       uint64
	sync       string // the fsync policy the engine must say it runs with
	serveFlags []string
}

func runKillLoop(t *testing.T, cfg killLoopConfig) {
	bin := presenceBinary(t)
	dir := t.TempDir()
	port := natstest.FreePort(t)
	srv := startServeProc(t, bin, dir, port, cfg.serveFlags...)
	if line, _ := logLine(srv.logs.String(), "embedded nats-server listening"); line["sync"] != cfg.sync {
		t.Fatalf("presence serve %s logged %v: want sync %q", strings.Join(cfg.serveFlags, " "), line, cfg.sync)
	}
	clients := newClients(t, srv.url, 4)
	rng := rand.New(rand.NewPCG(cfg.seed, 0))

	// Durable subscribers run through it all, in this process (reading the
	// current status of each change, or not; big fetches and small; every
	// contact or a few) and as a `presence watch` process; and an ephemeral
	// one of every contact, following the feed's repeats on core NATS, which
	// reads what a restart lost from the feed. The killed
	// server comes back with its durable consumers' positions up to a moment
	// old (it writes them behind): only the subscribers' own resumption keeps
	// them from being handed changes again.
	subs := []*subscription{
		startDurable(t, srv.url, "kill-all", nil, 0, true),
		startDurable(t, srv.url, "kill-few", loadContacts[:5], 8, false),
		startWatchProc(t, bin, srv.url, "kill-watch"),
		startDurable(t, srv.url, "", nil, 0, true),
	}

	var all []acked
	kills := 0
	start := time.Now()
	for cycle := 0; ; cycle++ {
		if cfg.soak > 0 && time.Since(start) >= cfg.soak || cfg.soak == 0 && cycle == cfg.cycles {
			break
		}
		l := startLoad(t, clients, 8, cfg.seed+uint64(cycle)+1, fmt.Sprintf("k%d", cycle))
		// One kill, or now and then a second one soon after the restart,
		// while subscribers and the feed catch up.
		var points []int64
		points = append(points, 1+rng.Int64N(600))
		if rng.IntN(3) == 0 {
			points = append(points, rng.Int64N(40))
		}
		for _, after := range points {
			from := l.n.Load()
			waitUntil(t, 60*time.Second, fmt.Sprintf("%d more acknowledged sets", after), func() bool { return l.n.Load() >= from+after })
			if st := srv.signal(t, syscall.SIGKILL); st.Success() {
				t.Fatalf("presence serve exited %v after SIGKILL", st)
			}
			kills++
			t.Logf("cycle %d: SIGKILL after %d more acknowledged sets (%d this cycle)", cycle, l.n.Load()-from, l.n.Load())
			srv = startServeProc(t, bin, dir, port, cfg.serveFlags...)
		}
		// Sets go on on the restarted engine before the checks.
		more := 20 + rng.Int64N(200)
		from := l.n.Load()
		waitUntil(t, 60*time.Second, fmt.Sprintf("%d sets acknowledged by the restarted engine", more), func() bool { return l.n.Load() >= from+more })
		all = append(all, l.stop(t)...)
		verifyEngine(t, srv.url, all)
		checkSubscribers(t, srv.url, subs)
		if t.Failed() {
			t.Fatalf("cycle %d failed", cycle)
		}
	}
	for _, d := range subs {
		d.stop(t)
	}
	checkConsumersSettled(t, srv.url, subs)
	t.Logf("%d kills in %s; %d acknowledged sets; every subscriber handed each change once, in order",
		kills, time.Since(start).Round(time.Millisecond), len(all))
}

// subscription is a subscription to the feed whose handler records the log
// sequence of every change it is handed, in a goroutine of this process or in
// a `presence watch` process.
type subscription struct {
	name     string
	contacts []string // nil: every contact
	seen     func() []uint64
	stop     func(t *testing.T) // stops it cleanly
	exited   <-chan struct{}    // closed if it ends by itself (nil: never)
	logs     *syncBuffer

	mu    sync.Mutex
	seqs  []uint64
	stale []string
}

// startDurable runs an client.Subscriber with a durable consumer named name
// (an ephemeral one if name is empty), from the feed's start, over a
// connection to url that reconnects forever, reading through an client.Client.
// With read, its handler reads the current status of each change (failing
// while the engine is away, which hands the change over again), and notes a
// read older than the change.
func startDurable(t *testing.T, url, name string, contacts []string, batch int, read bool) *subscription {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	reader := client.New(nc)
	reader.Timeout = time.Second
	d := &subscription{name: name, contacts: contacts, logs: newSyncBuffer()}
	if name == "" {
		d.name = "(ephemeral)"
	}
	sub, err := client.NewSubscriber(client.SubscriberConfig{
		Conn: nc, Reader: reader, Durable: name, Start: client.StartAll(), Contacts: contacts, Batch: batch,
		Logger: slog.New(slog.NewJSONHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	d.seen = func() []uint64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		return slices.Clone(d.seqs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch client.Change) error {
			if read {
				cur, err := ch.Current(ctx)
				if err != nil {
					return err
				}
				if cur.Contact != ch.Contact || cur.Seq < ch.Seq {
					d.mu.Lock()
					d.stale = append(d.stale, fmt.Sprintf("change %s at seq %d read %+v", ch.Contact, ch.Seq, cur))
					d.mu.Unlock()
				}
			}
			d.mu.Lock()
			d.seqs = append(d.seqs, ch.Seq)
			d.mu.Unlock()
			return nil
		})
	}()
	var once sync.Once
	d.stop = func(t *testing.T) {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("subscriber %s: Run returned %v", d.name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("subscriber %s: Run did not return within 30s of its context ending", d.name)
			}
		})
	}
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("log of subscriber %s:\n%s", d.name, d.logs)
		}
	})
	select {
	case <-sub.Ready():
	case err := <-done:
		t.Fatalf("subscriber %s: Run returned %v before it was ready", d.name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("subscriber %s: not ready after 30s", d.name)
	}
	return d
}

// startWatchProc runs `presence watch --durable name --all --json` against url
// as a process of its own, and records the seq of each line it prints.
func startWatchProc(t *testing.T, bin, url, name string) *subscription {
	t.Helper()
	d := &subscription{name: name, logs: newSyncBuffer()}
	out := newSyncBuffer()
	cmd := exec.Command(bin, "watch", "--server", url, "--durable", name, "--all", "--json", "--timeout", "2s")
	cmd.Stdout, cmd.Stderr = out, d.logs
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start presence watch: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	d.exited = exited
	d.seen = func() []uint64 {
		var seqs []uint64
		for _, line := range jsonLines(out.String()) {
			seq, _ := line["seq"].(float64)
			seqs = append(seqs, uint64(seq))
		}
		return seqs
	}
	var once sync.Once
	d.stop = func(t *testing.T) {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
				if code := cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("presence watch --durable %s exited %d after SIGTERM, want 0; stderr:\n%s", name, code, d.logs)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("presence watch --durable %s still running 30s after SIGTERM", name)
			}
		})
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("stderr of presence watch --durable %s:\n%s", name, d.logs)
		}
	})
	// It prints nothing until a change comes: wait for its consumer instead.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the consumer of presence watch --durable "+name, func() bool {
		select {
		case <-exited:
			t.Fatalf("presence watch --durable %s exited %v; stderr:\n%s", name, cmd.ProcessState, d.logs)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.Consumer(ctx, events.FeedStream, name)
		return err == nil
	})
	return d
}

// wants reports whether the subscription covers contact.
func (d *subscription) wants(contact string) bool {
	return d.contacts == nil || slices.Contains(d.contacts, contact)
}

// checkSubscribers waits until every subscriber has been handed the feed's last
// change it covers, and checks that each was handed every change it covers
// exactly once, in feed order, from the first.
func checkSubscribers(t *testing.T, url string, subs []*subscription) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		events.Change
		pos uint64 // its feed position, which subscribers are handed
	}
	var feed []entry
	for _, r := range readStream(t, js, events.FeedStream) {
		c, err := events.DecodeChange(r.data)
		if err != nil {
			t.Fatalf("feed seq %d: %v", r.seq, err)
		}
		feed = append(feed, entry{c, r.seq})
	}
	for _, d := range subs {
		var want []uint64
		for _, c := range feed {
			if d.wants(c.Contact) {
				want = append(want, c.pos)
			}
		}
		if len(want) == 0 {
			t.Fatalf("subscriber %s: the feed holds no change it covers", d.name)
		}
		last := want[len(want)-1]
		waitUntil(t, 60*time.Second, fmt.Sprintf("subscriber %s to be handed the change at feed seq %d (%d changes)", d.name, last, len(want)), func() bool {
			select {
			case <-d.exited:
				t.Fatalf("subscriber %s: the process exited; stderr:\n%s", d.name, d.logs)
			default:
			}
			got := d.seen()
			return len(got) >= len(want) || len(got) > 0 && got[len(got)-1] >= last
		})
		if got := d.seen(); !slices.Equal(got, want) {
			t.Errorf("subscriber %s was not handed each change once, in order: %s", d.name, seqDiff(got, want))
		}
		d.mu.Lock()
		for _, s := range d.stale {
			t.Errorf("subscriber %s: a read older than its change: %s", d.name, s)
		}
		d.stale = nil
		d.mu.Unlock()
	}
}

// seqDiff describes how got differs from want: repeats, gaps, disorder, and
// where they first part.
func seqDiff(got, want []uint64) string {
	count := map[uint64]int{}
	for _, s := range got {
		count[s]++
	}
	var repeated, missing []uint64
	for _, s := range want {
		switch n := count[s]; {
		case n == 0:
			missing = append(missing, s)
		case n > 1:
			repeated = append(repeated, s)
		}
	}
	wanted := map[uint64]bool{}
	for _, s := range want {
		wanted[s] = true
	}
	var extra []uint64
	backwards := 0
	for i, s := range got {
		if !wanted[s] {
			extra = append(extra, s)
		}
		if i > 0 && s <= got[i-1] {
			backwards++
		}
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	window := func(s []uint64) []uint64 { return s[max(0, i-3):min(len(s), i+8)] }
	return fmt.Sprintf("handed %d changes, the feed holds %d; repeated %s, missing %s, not in the feed %s, "+
		"%d steps backwards; first difference at #%d: handed ...%v..., the feed ...%v...",
		len(got), len(want), short(repeated), short(missing), short(extra), backwards, i, window(got), window(want))
}

func short(seqs []uint64) string {
	if len(seqs) > 20 {
		return fmt.Sprintf("%d (%v ...)", len(seqs), seqs[:20])
	}
	return fmt.Sprintf("%d %v", len(seqs), seqs)
}

// checkConsumersSettled checks, once the subscribers have stopped cleanly,
// that the server holds nothing it would hand any of them over again or
// still: no change pending an ack, none marked for redelivery, none left.
func checkConsumersSettled(t *testing.T, url string, subs []*subscription) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, d := range subs {
		if d.name == "(ephemeral)" {
			continue
		}
		cons, err := js.Consumer(ctx, events.FeedStream, d.name)
		if err != nil {
			t.Fatalf("consumer %s: %v", d.name, err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatalf("consumer %s: %v", d.name, err)
		}
		if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0 || info.AckFloor.Stream != info.Delivered.Stream {
			t.Errorf("consumer %s after a clean stop: %d unacknowledged, %d redelivered, %d not delivered, ack floor %d, delivered %d: want nothing left to hand over",
				d.name, info.NumAckPending, info.NumRedelivered, info.NumPending, info.AckFloor.Stream, info.Delivered.Stream)
		}
	}
}

// serviceMetrics reads the engine's counters from the presence service's
// stats ($SRV.STATS.presence, what `nats micro stats presence` shows).
func serviceMetrics(t *testing.T, url string) engine.Metrics {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	msg, err := nc.Request("$SRV.STATS."+engine.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("stats of the %s service: %v", engine.ServiceName, err)
	}
	var stats struct {
		Endpoints []struct {
			Data engine.Metrics `json:"data"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatalf("stats of the %s service: %v in %s", engine.ServiceName, err, msg.Data)
	}
	if len(stats.Endpoints) == 0 {
		t.Fatalf("stats of the %s service name no endpoint: %s", engine.ServiceName, msg.Data)
	}
	return stats.Endpoints[0].Data
}

// logLastSeq returns the log's last sequence.
func logLastSeq(t *testing.T, url string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.LogStream)
	if err != nil {
		t.Fatalf("the log: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("the log: %v", err)
	}
	return info.State.LastSeq
}

// checkNoRefold checks that an engine restarted after a clean stop went on
// from where the stopped one had got (before: its metrics a moment before the
// stop): its projection was not rebuilt, it folded only events past what was
// applied before, the feed was not derived again, and it said it had caught up
// with the log at once, at the log's end. (A set sent while the engine was
// away may still arrive from a client's reconnect buffer and be appended once
// it is back: the log's end at its start is its last seq less what it
// appended.)
func checkNoRefold(t *testing.T, srv *serveProc, before engine.Metrics) {
	t.Helper()
	lastSeq := logLastSeq(t, srv.url)
	m := serviceMetrics(t, srv.url)
	if m.Rebuilds != 0 || m.Damaged != 0 || m.Feed.Purges != 0 {
		t.Errorf("restarted after a clean stop: %d rebuilds, %d damaged stores, %d feed purges; want none", m.Rebuilds, m.Damaged, m.Feed.Purges)
	}
	if tail := lastSeq - before.Projection.Applied; m.Projection.Folded > tail {
		t.Errorf("restarted after a clean stop, the projection folded %d events; the log's last seq is %d and the projection had applied up to %d before the stop: want at most the %d after",
			m.Projection.Folded, lastSeq, before.Projection.Applied, tail)
	}
	if tail := lastSeq - before.Feed.Position; m.Feed.Published > tail {
		t.Errorf("restarted after a clean stop, the feed published %d entries; the log's last seq is %d and the feed was complete up to %d before the stop: want at most one per event after",
			m.Feed.Published, lastSeq, before.Feed.Position)
	}
	if m.Projection.Applied != lastSeq {
		t.Errorf("restarted after a clean stop, the projection has applied up to %d; the log's last seq is %d", m.Projection.Applied, lastSeq)
	}
	atStart := lastSeq - m.Writer.Appended
	line, ok := logLine(srv.logs.String(), "projection caught up with the log")
	if seq, _ := line["seq"].(float64); !ok || uint64(seq) < atStart || uint64(seq) > lastSeq {
		t.Errorf("restarted after a clean stop: log line %v, want \"projection caught up with the log\" with seq %d (the log's end when it started) to %d",
			line, atStart, lastSeq)
	}
	t.Logf("restart after a clean stop: log at seq %d (%d when the engine started); before the stop the projection had applied %d and the feed reached %d; after it folded %d events and published %d entries, no rebuild",
		lastSeq, atStart, before.Projection.Applied, before.Feed.Position, m.Projection.Folded, m.Feed.Published)
}

// TestProcessKillLogWentBack: the crash loop meets a log that went back (its
// store restored, while the engine was down after a SIGKILL, from a copy taken
// after an earlier SIGKILL) and a log recreated empty. The restarted engine
// says so and rebuilds its projection from the log as it now is; it derives the
// feed again; writes go on, through more SIGKILLs, and afterwards every
// acknowledged set the log still holds is there, the projection equals a fresh
// fold and the feed has each visible change once.
func TestProcessKillLogWentBack(t *testing.T) {
	bin := presenceBinary(t)
	for _, tc := range []struct {
		name string
		keep bool // whether the sets acknowledged before the copy are still in the log
	}{
		{"back", true},
		{"recreated", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, port := t.TempDir(), natstest.FreePort(t)
			jsDir := filepath.Join(dir, "jetstream")
			srv := startServeProc(t, bin, dir, port)
			clients := newClients(t, srv.url, 4)
			waitAcked := func(l *load, n int64, what string) {
				from := l.n.Load()
				waitUntil(t, 60*time.Second, fmt.Sprintf("%d %s", n, what), func() bool { return l.n.Load() >= from+n })
			}
			kill := func() {
				t.Helper()
				if st := srv.signal(t, syscall.SIGKILL); st.Success() {
					t.Fatalf("presence serve exited %v after SIGKILL", st)
				}
			}

			// The copy: the store as a SIGKILL left it.
			l := startLoad(t, clients, 8, 31, "a")
			waitAcked(l, 150, "sets acknowledged")
			before := l.stop(t)
			kill()
			older := filepath.Join(t.TempDir(), "jetstream")
			if err := os.CopyFS(older, os.DirFS(jsDir)); err != nil {
				t.Fatal(err)
			}

			// The engine goes further, and is killed under writes.
			srv = startServeProc(t, bin, dir, port)
			l = startLoad(t, clients, 8, 32, "b")
			waitAcked(l, 300, "more sets acknowledged")
			kill()
			if err := os.RemoveAll(jsDir); err != nil {
				t.Fatal(err)
			}
			if tc.keep {
				if err := os.CopyFS(jsDir, os.DirFS(older)); err != nil {
					t.Fatal(err)
				}
			}

			srv = startServeProc(t, bin, dir, port)
			srv.logs.waitFor(t, 30*time.Second, srv.done, "the engine saying that the log does not match its projection", func(s string) bool {
				_, ok := logLine(s, "projection: the log does not match the projection; rebuilding it from the log")
				return ok
			})
			waitAcked(l, 50, "sets acknowledged after the log "+tc.name)
			l.stop(t) // what was acknowledged before the restore is gone with it
			l = startLoad(t, clients, 8, 33, "c")
			waitAcked(l, 150, "sets acknowledged")
			kill()
			srv = startServeProc(t, bin, dir, port)
			waitAcked(l, 50, "sets acknowledged after the last SIGKILL")
			var want []acked
			if tc.keep {
				want = before
			}
			verifyEngine(t, srv.url, append(want, l.stop(t)...))
		})
	}
}
