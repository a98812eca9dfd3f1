package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestNotReadyWhileTheFoldIsHeldBehind: a consumer of the engine's own on the
// log paused through the JetStream API (which no role's permissions allow any
// more, but a user with the whole API may) holds the projection behind the log: the engine says it is not
// ready, naming the paused consumer and how far behind it is; resumed, the
// projection catches up and the engine is ready again.
func TestNotReadyWhileTheFoldIsHeldBehind(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	c, ctx := r.Client(t), natstest.Context(t)
	if _, err := c.Set(ctx, client.SetRequest{Contact: "ann", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the engine to be ready", func() bool { return len(r.NotReady(ctx, 0)) == 0 })

	js := r.JetStream(t)
	log, err := js.Stream(ctx, events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	var paused []string
	for name := range log.ListConsumers(ctx).Info() {
		if _, err := js.PauseConsumer(ctx, events.LogStream, name.Name, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		paused = append(paused, name.Name)
	}
	if len(paused) == 0 {
		t.Fatal("no consumer on the log to pause")
	}
	for i := range 5 {
		if _, err := c.Set(ctx, client.SetRequest{Contact: fmt.Sprintf("c%d", i), Status: events.Busy}); err != nil {
			t.Fatal(err)
		}
	}
	var why []string
	natstest.WaitFor(t, "the engine to say the fold is held behind", func() bool {
		why = r.NotReady(ctx, 2)
		text := strings.Join(why, "\n")
		return strings.Contains(text, "consumer "+paused[0]+" on the log is paused") && strings.Contains(text, "events behind the log")
	})
	t.Logf("not ready: %q", why)
	for _, name := range paused {
		if _, err := js.ResumeConsumer(ctx, events.LogStream, name); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, "the engine to be ready again", func() bool { return len(r.NotReady(ctx, 2)) == 0 })
}
