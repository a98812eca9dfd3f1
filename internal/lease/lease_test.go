package lease

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/presence-engine/presence/engine/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const ttl = time.Second

// bucket makes the bucket the holders compete in, with a TTL of ttl and
// markers when it removes a key.
func bucket(t *testing.T, nc *nats.Conn) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(natstest.Context(t), jetstream.KeyValueConfig{Bucket: "LEASES", TTL: ttl, LimitMarkerTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// running is a holder competing for the key until stop, or until the test
// ends.
type running struct {
	*Lease
	stop context.CancelFunc
	done chan error
}

func compete(t *testing.T, nc *nats.Conn, holder string, with ...func(*Config)) *running {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(natstest.Context(t), "LEASES")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{KV: kv, Key: "partition.0", Holder: holder, Logger: natstest.Logger(t)}
	for _, f := range with {
		f(&cfg)
	}
	l, err := New(natstest.Context(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &running{Lease: l, stop: stop, done: make(chan error, 1)}
	go func() { r.done <- l.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		natstest.Stopped(t, "lease", r.done)
	})
	return r
}

// heldBy waits until exactly the one holder given holds the key and every
// holder sees it so, and returns how long that took.
func heldBy(t *testing.T, want *running, all ...*running) time.Duration {
	t.Helper()
	start := time.Now()
	natstest.WaitFor(t, "the key to be held by "+want.cfg.Holder, func() bool {
		for _, r := range all {
			if r.Held() != (r == want) || r.Holder() != want.cfg.Holder {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

func TestOneHolderAtATime(t *testing.T) {
	s := natstest.Start(t)
	bucket(t, natstest.Connect(t, s))
	a := compete(t, natstest.Connect(t, s), "a")
	heldBy(t, a, a)
	b := compete(t, natstest.Connect(t, s), "b")
	heldBy(t, a, a, b)
	// Held across many refreshes, by a alone: neither changes its mind.
	select {
	case <-a.Changed():
		t.Errorf("a let go of the key it held: held %v", a.Held())
	case <-b.Changed():
		t.Errorf("b changed its mind about a key a holds: held %v", b.Held())
	case <-time.After(3 * ttl):
	}
}

// TestAHolderThatStopsHandsOverAtOnce: a holder that stops lets go of the key,
// and another takes it well before the TTL would have removed it.
func TestAHolderThatStopsHandsOverAtOnce(t *testing.T) {
	s := natstest.Start(t)
	bucket(t, natstest.Connect(t, s))
	a := compete(t, natstest.Connect(t, s), "a")
	heldBy(t, a, a)
	b := compete(t, natstest.Connect(t, s), "b")
	heldBy(t, a, a, b)
	a.stop()
	natstest.Stopped(t, "lease", a.done)
	a.done <- nil // for the cleanup
	if took := heldBy(t, b, b); took > ttl/2 {
		t.Errorf("b took the key %s after a stopped, want well within the TTL (%s)", took, ttl)
	}
}

// TestAHolderCutOffLosesTheKeyWithinItsTTL: a holder cut off from the server
// updates the key no more; the TTL removes it and another takes it within the
// TTL and a refresh, and the cut-off holder lets go of it on its own, before
// it hears of the other; connected again, it sees who holds it.
func TestAHolderCutOffLosesTheKeyWithinItsTTL(t *testing.T) {
	s := natstest.Start(t)
	bucket(t, natstest.Connect(t, s))
	p := natstest.StartProxy(t, s.Addr().String())
	nc, err := nats.Connect(p.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a := compete(t, nc, "a")
	heldBy(t, a, a)
	b := compete(t, natstest.Connect(t, s), "b")
	heldBy(t, a, a, b)

	p.Pause()
	start := time.Now()
	natstest.WaitFor(t, "b to take the key", b.Held)
	if took := time.Since(start); took > ttl+a.cfg.Refresh+ttl/2 {
		t.Errorf("b took the key %s after a was cut off, want within the TTL (%s) and a refresh (%s)", took, ttl, a.cfg.Refresh)
	}
	natstest.WaitFor(t, "a, cut off, to let go of the key", func() bool { return !a.Held() })
	p.Resume()
	heldBy(t, b, a, b)
}

// TestAHolderThatRestartsTakesItsKeyBackAtOnce: a holder that died without
// letting go (its connection gone, the key left to the TTL) and starts again
// under the same name takes the key back at once, not after the TTL; another
// name waits for the TTL.
func TestAHolderThatRestartsTakesItsKeyBackAtOnce(t *testing.T) {
	s := natstest.Start(t)
	kv := bucket(t, natstest.Connect(t, s))
	dead, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	a := compete(t, dead, "a")
	heldBy(t, a, a)
	dead.Close() // died: the key stays until the TTL removes it
	b := compete(t, natstest.Connect(t, s), "b")
	again := compete(t, natstest.Connect(t, s), "a")
	if took := heldBy(t, again, again, b); took > ttl/2 {
		t.Errorf("a took its key back %s after it restarted, want at once, well within the TTL (%s)", took, ttl)
	}
	if e, err := kv.Get(natstest.Context(t), "partition.0"); err != nil || string(e.Value()) != "a" {
		t.Fatalf("key after the restart: %v, %v; want held by a", e, err)
	}
}

// TestAHolderKeepsTheKeyUntilSettled: a holder that lets go (no longer
// eligible) counts itself the holder no more at once, but keeps the key, past
// its TTL, until Settle returns (what the key guards is settled); only then
// does another take it.
func TestAHolderKeepsTheKeyUntilSettled(t *testing.T) {
	s := natstest.Start(t)
	bucket(t, natstest.Connect(t, s))
	var eligible atomic.Bool
	eligible.Store(true)
	settling, settled := make(chan struct{}), make(chan struct{})
	a := compete(t, natstest.Connect(t, s), "a", func(c *Config) {
		c.Eligible = eligible.Load
		c.Settle = func() {
			close(settling)
			<-settled
		}
	})
	heldBy(t, a, a)
	b := compete(t, natstest.Connect(t, s), "b")
	heldBy(t, a, a, b)
	eligible.Store(false)
	<-settling
	if a.Held() {
		t.Error("a still counts itself the holder while it settles")
	}
	select {
	case <-b.Changed():
		t.Fatalf("b changed (held %v) while a settled, within %s: the key must stay a's until it is settled", b.Held(), 3*ttl)
	case <-time.After(3 * ttl):
	}
	close(settled)
	if took := heldBy(t, b, a, b); took > ttl/2 {
		t.Errorf("b took the key %s after a settled, want at once", took)
	}
}
