package projections

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/presence-engine/presence/events"
)

// startFollower runs a Follower until the test ends or stop is called; stop
// checks that Run returns nil once its context is cancelled.
func startFollower(t *testing.T, cfg FollowerConfig) (f *Follower, stop func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	f, err := NewFollower(cfg)
	if err != nil {
		t.Fatalf("NewFollower() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v after its context was cancelled, want nil", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("Run() still running %v after its context was cancelled", testTimeout)
		}
	})
	t.Cleanup(stop)
	return f, stop
}

// waitReady waits up to testTimeout for f to be ready.
func waitReady(t *testing.T, f *Follower, p *Projection) {
	t.Helper()
	select {
	case <-f.Ready():
	case <-time.After(testTimeout):
		t.Fatalf("follower not ready after %v: applied %d, lag %d, rebuilds %d",
			testTimeout, p.Applied(), f.Lag(), f.Rebuilds())
	}
}

// checkFold checks that p holds exactly the fold of the history's log.
func checkFold(t *testing.T, p *Projection, h *history) {
	t.Helper()
	want, wantCP := freshFold(t, h.records())
	if cp := p.Checkpoint(); cp != wantCP {
		t.Errorf("Checkpoint() = %+v, want %+v", cp, wantCP)
	}
	if d := diffStates(snapshot(t, p), want); d != "" {
		t.Errorf("states differ from a fold of the log:\n%s", d)
	}
}

func TestNewFollowerNeedsProjectionAndJetStream(t *testing.T) {
	js, _ := startLog(t)
	p := openMem(t)
	for _, cfg := range []FollowerConfig{{}, {Projection: p}, {JetStream: js}} {
		if f, err := NewFollower(cfg); err == nil {
			t.Errorf("NewFollower(%+v) = %v, nil; want an error", cfg, f)
		}
	}
}

func TestFollower(t *testing.T) {
	t.Run("empty log", func(t *testing.T) {
		js, _ := startLog(t)
		p := openMem(t)
		f, _ := startFollower(t, FollowerConfig{Projection: p, JetStream: js})
		waitReady(t, f, p)
		if !f.IsReady() || f.Lag() != 0 || p.Applied() != 0 {
			t.Errorf("on an empty log: IsReady() = %v, Lag() = %d, Applied() = %d; want true, 0, 0", f.IsReady(), f.Lag(), p.Applied())
		}
	})

	js, _ := startLog(t)
	h := newHistory()
	h.set(alice, "Alice", events.Online)
	h.set(bob, "Bob", events.Invisible)
	h.set(alice, "", events.Offline)
	h.set(alice, "Alice (hiding)", events.Invisible) // hidden
	h.set(carol, "Carol", events.Busy)
	h.set(bob, "", events.Offline) // hidden
	randomHistory(h, rand.New(rand.NewPCG(10, 10)), 30, 500)
	publish(t, js, h, 0)

	p := openMem(t)
	f, stop := startFollower(t, FollowerConfig{Projection: p, JetStream: js, MaxBatch: 64})
	if f.IsReady() && p.Applied() < h.last() {
		t.Errorf("IsReady() before the projection caught up (applied %d of %d)", p.Applied(), h.last())
	}

	t.Run("catches up", func(t *testing.T) {
		waitReady(t, f, p)
		if got := p.Applied(); got != h.last() {
			t.Errorf("Applied() = %d once ready, want %d: ready means caught up with the log", got, h.last())
		}
		if !f.IsReady() || f.Lag() != 0 {
			t.Errorf("IsReady() = %v, Lag() = %d once caught up; want true, 0", f.IsReady(), f.Lag())
		}
		checkFold(t, p, h)
		view, err := p.View(alice)
		if err != nil || view.Status != events.Offline || view.Name != "Alice" || view.Seq != 3 {
			t.Errorf("View(%q) = %+v, %v; want offline as Alice at seq 3 (seq 4 is hidden)", alice, view, err)
		}
	})

	t.Run("follows", func(t *testing.T) {
		n := len(h.entries)
		randomHistory(h, rand.New(rand.NewPCG(11, 11)), 30, 200)
		publish(t, js, h, n)
		waitApplied(t, p, h.last())
		checkFold(t, p, h)
		if f.Lag() != 0 || !f.IsReady() {
			t.Errorf("Lag() = %d, IsReady() = %v once caught up; want 0, true", f.Lag(), f.IsReady())
		}
		if m := p.Metrics(); m.Folded != h.last() || m.Malformed != 0 {
			t.Errorf("Metrics() = %+v, want Folded %d (each event once), Malformed 0", m, h.last())
		}
		if f.Rebuilds() != 0 {
			t.Errorf("Rebuilds() = %d, want 0", f.Rebuilds())
		}
	})

	t.Run("stops", func(t *testing.T) { stop() })
}

func TestFollowerResumes(t *testing.T) {
	tests := []struct {
		name   string
		reopen bool // close and reopen the projection between the runs
	}{
		{"same projection", false},
		{"reopened projection", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, _ := startLog(t)
			h := randomHistory(newHistory(), rand.New(rand.NewPCG(12, 12)), 30, 300)
			publish(t, js, h, 0)
			fs := vfs.NewMem()
			p := openAt(t, fs, "projection")

			_, stop := startFollower(t, FollowerConfig{Projection: p, JetStream: js})
			waitApplied(t, p, h.last())
			stop()
			if got := p.Metrics().Folded; got != h.last() {
				t.Fatalf("first run: Metrics().Folded = %d, want %d", got, h.last())
			}

			n := len(h.entries)
			randomHistory(h, rand.New(rand.NewPCG(13, 13)), 30, 200)
			publish(t, js, h, n)
			wantFolded := h.last() // every event of both runs, each once
			if tt.reopen {
				if err := p.Close(); err != nil {
					t.Fatalf("Close() = %v", err)
				}
				p = openAt(t, fs, "projection")
				wantFolded = h.last() - uint64(n) // the counters start again at Open
			}

			f, _ := startFollower(t, FollowerConfig{Projection: p, JetStream: js})
			waitApplied(t, p, h.last())
			waitReady(t, f, p)
			if got := p.Metrics().Folded; got != wantFolded {
				t.Errorf("Metrics().Folded = %d after the second run, want %d: every event folded exactly once", got, wantFolded)
			}
			if f.Rebuilds() != 0 {
				t.Errorf("Rebuilds() = %d on resuming over the same log, want 0", f.Rebuilds())
			}
			checkFold(t, p, h)
		})
	}
}

// gone is a contact only the first log knows.
const gone = "sip:gone@contoso.com"

func TestFollowerRebuildsOnAnotherLog(t *testing.T) {
	oldLog := func() *history {
		h := newHistory()
		h.set(gone, "Gone", events.Online)
		h.set(alice, "Alice (old)", events.Away)
		h.set(alice, "", events.Offline)
		h.set(alice, "", events.Invisible)
		h.set(bob, "Bob (old)", events.Busy)
		h.set(gone, "", events.DoNotDisturb)
		return h // 6 events
	}
	newLog := func(n int) *history {
		h := newHistory()
		h.set(alice, "Alice", events.Online)
		h.set(bob, "Bob", events.Invisible)
		return randomHistory(h, rand.New(rand.NewPCG(14, 14)), 5, n-2)
	}
	tests := []struct {
		name string
		new  *history
	}{
		{"log behind the checkpoint", newLog(3)},
		{"as long, another event at the checkpoint", newLog(6)},
		{"longer, another event at the checkpoint", newLog(20)},
	}
	for _, tt := range tests {
		t.Run("stopped/"+tt.name, func(t *testing.T) {
			js, _ := startLog(t)
			old := oldLog()
			publish(t, js, old, 0)
			p := openMem(t)
			_, stop := startFollower(t, FollowerConfig{Projection: p, JetStream: js})
			waitApplied(t, p, old.last())
			stop()

			deleteLog(t, js)
			createLog(t, js)
			publish(t, js, tt.new, 0)

			f, _ := startFollower(t, FollowerConfig{Projection: p, JetStream: js})
			waitReady(t, f, p)
			checkRebuilt(t, f, p, tt.new)
		})
	}
	for _, tt := range tests {
		t.Run("running/"+tt.name, func(t *testing.T) {
			t.Parallel() // each has its own server; a failure waits out the deadline
			js, _ := startLog(t)
			old := oldLog()
			publish(t, js, old, 0)
			p := openMem(t)
			f, _ := startFollower(t, FollowerConfig{Projection: p, JetStream: js, RetryWait: 10 * time.Millisecond})
			waitApplied(t, p, old.last())

			deleteLog(t, js)
			createLog(t, js)
			publish(t, js, tt.new, 0)

			// Nothing announces a rebuild: poll for its outcome.
			want, _ := freshFold(t, tt.new.records())
			rebuilt := func() bool {
				if f.Rebuilds() == 0 || p.Applied() != tt.new.last() {
					return false
				}
				got, err := states(p)
				return err == nil && diffStates(got, want) == ""
			}
			if !eventually(5*time.Second, rebuilt) {
				t.Errorf("%v after the log was deleted and recreated under a running follower: Rebuilds() = %d, Applied() = %d (the new log ends at %d), states:\n%s",
					5*time.Second, f.Rebuilds(), p.Applied(), tt.new.last(), diffStates(snapshot(t, p), want))
				return
			}
			checkRebuilt(t, f, p, tt.new)
		})
	}
}

// checkRebuilt checks that f rebuilt p once, from the log h.
func checkRebuilt(t *testing.T, f *Follower, p *Projection, h *history) {
	t.Helper()
	waitApplied(t, p, h.last())
	if got := f.Rebuilds(); got != 1 {
		t.Errorf("Rebuilds() = %d, want 1", got)
	}
	checkFold(t, p, h)
	if st, found, err := p.State(gone); err != nil || found {
		t.Errorf("State(%q) = %+v, found %v, %v; want not found: only the old log knew it", gone, st, found, err)
	}
	if v, err := p.View(gone); err != nil || v != (View{Contact: gone}) {
		t.Errorf("View(%q) = %+v, %v; want Unknown at seq 0", gone, v, err)
	}
}
