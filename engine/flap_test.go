package engine_test

import (
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// shownTo returns what subscribers are shown of contact: its feed entries, in
// order, and the visible status they read. It waits for the feed and the
// projection to reach the log's end first.
func shownTo(t testing.TB, r *enginetest.Running, c *client.Client, contact string) ([]enginetest.FeedEntry, events.Status) {
	t.Helper()
	r.WaitFeed(t)
	log := enginetest.ReadLog(t, r.JetStream(t))
	ctx := natstest.Context(t)
	if err := r.Projection().WaitApplied(ctx, log[len(log)-1].Seq); err != nil {
		t.Fatal(err)
	}
	var feed []enginetest.FeedEntry
	for _, f := range enginetest.ReadFeed(t, r.JetStream(t)) {
		if f.Change.Contact == contact {
			feed = append(feed, f)
		}
	}
	st, err := c.Status(ctx, contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	return feed, st.Status
}

// TestAReconnectLoopShowsOneChangeAWindow: an endpoint signing out and in
// again in a loop shows subscribers at most one change per flap window (the
// default, 2s): the changes within it are logged, held back, and what they
// leave is shown at its end (op show), or nothing if they came back to what
// was shown. The contact itself reads the truth throughout. A status the user
// sets is shown at once. The feed is what the log derives, and verifies.
func TestAReconnectLoopShowsOneChangeAWindow(t *testing.T) {
	clk := newClock()
	r := enginetest.Start(t, "", engine.Options{Now: clk.Now})
	c, ctx := r.Client(t), natstest.Context(t)
	const kim = "kim"
	signIn := func() {
		t.Helper()
		if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: kim, Endpoint: "laptop", Kind: events.KindDesktop, Lease: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	signOut := func() {
		t.Helper()
		if _, err := c.SignOut(ctx, kim, "laptop"); err != nil {
			t.Fatal(err)
		}
	}
	signIn() // shown at once: nothing was shown within the window
	for range 4 {
		clk.Add(100 * time.Millisecond)
		signOut()
		clk.Add(100 * time.Millisecond)
		signIn()
	}
	clk.Add(100 * time.Millisecond)
	signOut() // 0.9s in: the loop stops signed out
	feed, visible := shownTo(t, r, c, kim)
	if len(feed) != 1 || visible != events.Online {
		t.Fatalf("within the window subscribers have %d entries and read %s; want the sign-in's alone, and online", len(feed), visible)
	}
	if self := selfStatus(t, c, kim); self != events.Offline {
		t.Fatalf("kim reads %s of itself; want the truth, offline", self)
	}

	clk.Add(time.Second + 200*time.Millisecond) // 2.1s in: the window has ended
	looked(t, r)
	feed, visible = shownTo(t, r, c, kim)
	if len(feed) != 2 || feed[1].Change.Previous != events.Online || visible != events.Offline {
		t.Fatalf("after the window: %+v, reading %s; want a second entry, from online, and offline", feed, visible)
	}
	log := enginetest.ReadLog(t, r.JetStream(t))
	if last := log[len(log)-1].Event; last.Op != events.OpShow || last.Shown != events.Online || last.Status != events.Offline {
		t.Fatalf("the window's end is logged as %+v; want a show of offline, online shown before", last)
	}

	// The same loop, ending where it began: nothing to show at its end.
	for range 3 {
		clk.Add(100 * time.Millisecond)
		signIn()
		clk.Add(100 * time.Millisecond)
		signOut()
	}
	clk.Add(2 * time.Second)
	looked(t, r)
	if feed, _ = shownTo(t, r, c, kim); len(feed) != 2 {
		t.Fatalf("a loop back to offline shows %d entries in all; want the 2 before it", len(feed))
	}

	// A status the user sets is never held back.
	signIn()
	clk.Add(100 * time.Millisecond)
	if _, err := c.Set(ctx, client.SetRequest{Contact: kim, Status: events.Busy}); err != nil {
		t.Fatal(err)
	}
	feed, visible = shownTo(t, r, c, kim)
	if len(feed) != 4 || visible != events.Busy {
		t.Fatalf("a set 0.1s after a sign-in: %d entries, reading %s; want both shown, and busy", len(feed), visible)
	}
	for i := 1; i < 3; i++ { // the endpoint's changes came a window apart
		if gap := feed[i].Change.At.Sub(feed[i-1].Change.At); gap < engine.DefaultFlapWindow {
			t.Errorf("entries %d and %d of kim are %s apart; want at least the window", feed[i-1].FeedSeq, feed[i].FeedSeq, gap)
		}
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, r.JetStream(t)))
	if res, err := r.Verify(ctx, nil); err != nil || !res.OK() {
		t.Fatalf("verify (the feed is what the log derives): %+v, %v", res, err)
	}
}

// TestAChangeHeldBackIsShownAfterARestart: the owner stopped within a flap
// window; the owner started again shows the change held back, from the log.
func TestAChangeHeldBackIsShownAfterARestart(t *testing.T) {
	dir, clk := t.TempDir(), newClock()
	r := enginetest.Start(t, dir, engine.Options{Now: clk.Now})
	c, ctx := r.Client(t), natstest.Context(t)
	const lee = "lee"
	if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: lee, Endpoint: "web", Kind: events.KindWeb, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	if _, err := c.SignOut(ctx, lee, "web"); err != nil {
		t.Fatal(err)
	}
	if _, visible := shownTo(t, r, c, lee); visible != events.Online {
		t.Fatalf("subscribers read %s within the window; want online, the sign-out held back", visible)
	}
	r.Stop(t)
	clk.Add(5 * time.Second)
	r = enginetest.Start(t, dir, engine.Options{Now: clk.Now})
	c = r.Client(t)
	looked(t, r)
	feed, visible := shownTo(t, r, c, lee)
	if len(feed) != 2 || visible != events.Offline {
		t.Fatalf("after the restart: %+v, reading %s; want the sign-out shown, offline", feed, visible)
	}
}
