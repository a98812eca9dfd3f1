package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// An external nats-server stopped and started again under a running engine:
// while it is down the engine says it is not ready and sets fail with a 503
// within their bound, not hang; once it is back the engine recovers by itself
// and nothing acknowledged is lost.
func TestExternalServerRestart(t *testing.T) {
	opts := natstest.Options{StoreDir: t.TempDir(), Port: natstest.FreePort(t)}
	s := natstest.StartWith(t, opts)
	e := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	w := e.Writer()
	var acked []client.SetResult
	set := func(ctx context.Context, i int) error {
		res, err := w.Set(ctx, client.SetRequest{Contact: fmt.Sprintf("c%d", i%7), Status: []events.Status{events.Online, events.Away, events.Busy}[i%3]})
		if err == nil && res.Changed {
			acked = append(acked, res)
		}
		return err
	}
	for i := range 50 {
		if err := set(natstest.Context(t), i); err != nil {
			t.Fatal(err)
		}
	}

	s.Shutdown()
	s.WaitForShutdown()
	natstest.WaitFor(t, "the engine to say it is not ready", func() bool { return !e.Metrics().Ready })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := set(ctx, 50)
	if err == nil || engine.ErrorCode(err) != 503 || ctx.Err() != nil {
		t.Fatalf("a set while the server is down: %v (code %d) after %s; want a 503 before the caller's deadline", err, engine.ErrorCode(err), time.Since(start))
	}

	s = natstest.StartWith(t, opts)
	var i = 51
	natstest.WaitFor(t, "sets to succeed again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := set(ctx, i)
		i++
		return err == nil
	})
	natstest.WaitFor(t, "the engine to be ready again", func() bool { return e.Metrics().Ready })
	for ; i < 120; i++ {
		if err := set(natstest.Context(t), i); err != nil {
			t.Fatal(err)
		}
	}
	last := acked[len(acked)-1].Seq
	if err := e.Projection().WaitApplied(natstest.Context(t), last); err != nil {
		t.Fatal(err)
	}
	e.WaitFeed(t)
	_, js := natstest.JetStream(t, s)
	log := enginetest.ReadLog(t, js)
	bySeq := map[uint64]enginetest.LogEntry{}
	for _, le := range log {
		bySeq[le.Seq] = le
	}
	for _, a := range acked {
		if le, ok := bySeq[a.Seq]; !ok || le.Event.Contact != a.Contact || le.Event.Status != a.Status {
			t.Errorf("acknowledged set %+v is not in the log (found %+v)", a, le)
		}
	}
	enginetest.CheckChains(t, log)
	r, err := e.Verify(natstest.Context(t), nil)
	if err != nil || !r.OK() {
		t.Errorf("verify after the outage: %+v, %v", r, err)
	}
	e.Stop(t) // before the second server's cleanup shuts it down
}

// A Client whose connection is down sends nothing: a set it reports as failed
// cannot be applied later, when the connection comes back and nats.go would
// have flushed its reconnect buffer.
func TestClientSendsNothingWhileDisconnected(t *testing.T) {
	opts := natstest.Options{StoreDir: t.TempDir(), Port: natstest.FreePort(t)}
	s := natstest.StartWith(t, opts)
	e := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()})
	nc := enginetest.ConnectURL(t, s.ClientURL())
	c := client.New(nc)
	first, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Online})
	if err != nil {
		t.Fatal(err)
	}

	s.Shutdown()
	s.WaitForShutdown()
	natstest.WaitFor(t, "the client's connection to be down", func() bool { return !nc.IsConnected() })
	sent := nc.Stats().OutMsgs
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Set(ctx, client.SetRequest{Contact: "alice", Status: events.Away})
	if engine.ErrorCode(err) != 503 || ctx.Err() != nil {
		t.Fatalf("a set while disconnected: %v (code %d); want a 503 at once", err, engine.ErrorCode(err))
	}
	if got := nc.Stats().OutMsgs; got != sent {
		t.Errorf("the client queued %d messages while disconnected, want none: they would be sent on reconnecting", got-sent)
	}

	natstest.StartWith(t, opts)
	natstest.WaitFor(t, "the client to reconnect", nc.IsConnected)
	natstest.WaitFor(t, "the engine to be ready again", func() bool { return e.Metrics().Ready })
	after, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: events.Busy})
	if err != nil {
		t.Fatal(err)
	}
	if after.Previous != events.Online || after.Seq != first.Seq+1 {
		t.Errorf("the set after reconnecting = %+v; want online -> busy right after seq %d: the failed set must not have been applied", after, first.Seq)
	}
	e.Stop(t)
}
