package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// A contact flapping as fast as its clients can is refused past its bound, with
// a 429 naming it and the bound, and appends no more than the bound allows;
// another contact's sets meanwhile all go through.
func TestFlappingContactIsBounded(t *testing.T) {
	const rate, burst = 50, 20
	e := enginetest.Start(t, "", engine.Options{ContactRate: rate, ContactBurst: burst})
	c := e.Client(t)
	ctx, stop := context.WithCancel(natstest.Context(t))
	start := time.Now()
	var (
		wg                 sync.WaitGroup
		flapOK, flapDenied atomic.Uint64 // sets let through, sets refused
		flapChanged        atomic.Uint64 // of those let through, the ones that appended
		firstDenial        atomic.Value
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				res, err := c.Set(ctx, client.SetRequest{Contact: "flapper", Status: []events.Status{events.Online, events.Away}[i%2]})
				switch {
				case err == nil:
					flapOK.Add(1)
					if res.Changed {
						flapChanged.Add(1)
					}
				case errors.Is(err, client.ErrTooMany):
					flapDenied.Add(1)
					firstDenial.CompareAndSwap(nil, err.Error())
				case ctx.Err() == nil:
					t.Errorf("flapper: %v", err)
					return
				}
			}
		}()
	}
	// Meanwhile, a calm contact within its bound (paced at 40 a second, not
	// waiting on anything): every set goes through.
	pace := time.NewTicker(25 * time.Millisecond)
	defer pace.Stop()
	for i := range 40 {
		<-pace.C
		s := []events.Status{events.Online, events.Busy}[i%2]
		if _, err := c.Set(natstest.Context(t), client.SetRequest{Contact: "calm", Status: s}); err != nil {
			t.Fatalf("calm contact's set %d while another flaps: %v", i, err)
		}
	}
	natstest.WaitFor(t, "the flapper to be refused a thousand times", func() bool { return flapDenied.Load() >= 1000 })
	stop()
	wg.Wait()
	elapsed := time.Since(start)

	msg, _ := firstDenial.Load().(string)
	if !strings.Contains(msg, `too many sets for "flapper": at most 50 a second (20 at once)`) || !strings.Contains(msg, "(429)") {
		t.Errorf("refusal %q: want the contact, the bound and code 429", msg)
	}
	// What went through is within the bound, and each of it is in the log.
	allowed := uint64(burst + rate*elapsed.Seconds() + 1)
	if ok := flapOK.Load(); ok > allowed || ok == 0 {
		t.Errorf("flapper: %d sets went through in %s, the bound allows %d", ok, elapsed, allowed)
	}
	js := e.JetStream(t)
	log := enginetest.ReadLog(t, js)
	var flapEvents, calmEvents int
	for _, le := range log {
		switch le.Event.Contact {
		case "flapper":
			flapEvents++
		case "calm":
			calmEvents++
		}
	}
	// A set in flight when the flapper stopped may be in the log unanswered
	// (at most one per goroutine).
	if n := uint64(flapEvents); n < flapChanged.Load() || n > flapChanged.Load()+8 || n > allowed || calmEvents != 40 {
		t.Errorf("the log holds %d events of the flapper (%d changes went through, the bound allows %d) and %d of the calm contact (40 set)",
			flapEvents, flapChanged.Load(), allowed, calmEvents)
	}
	// The metric counts the refusals the flapper saw, and those of the sets in
	// flight when it stopped (at most one per goroutine).
	if m := e.Metrics().Writer; m.Limited < flapDenied.Load() || m.Limited > flapDenied.Load()+8 {
		t.Errorf("writer metrics count %d refusals, the flapper saw %d", m.Limited, flapDenied.Load())
	}
}
