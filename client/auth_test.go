package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestRolesFollowTheFeedAcrossFaults: what a subscription reads of the feed
// to hand over every change once (an entry at a sequence: where it starts, and
// the one it handed last, to see the feed still holds it) is open to the roles
// that consume the feed, and only to the feed: a live subscriber of the
// subscriber role catches up over a repeat it lost, one of the user role
// starts at a log sequence, and a hub of the subscriber role goes on across a
// reconnection.
const alice = "sip:alice@contoso.com"

func TestRolesFollowTheFeedAcrossFaults(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	set := func(contact string, st events.Status) client.SetResult {
		t.Helper()
		res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: contact, Status: st})
		if err != nil || !res.Changed {
			t.Fatalf("set %s %s: %+v, %v", contact, st, res, err)
		}
		return res
	}
	first := set(alice, events.Online)
	r.WaitFeed(t)

	for _, user := range []string{"crm", "alice"} {
		js, err := jetstream.New(enginetest.ConnectAs(t, r.ClientURL(), user))
		if err != nil {
			t.Fatal(err)
		}
		feed, err := js.Stream(natstest.Context(t), events.FeedStream)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := feed.GetMsg(natstest.Context(t), 1); err != nil {
			t.Errorf("%s: get of the feed's first entry: %v", user, err)
		}
		if _, err := feed.GetMsg(natstest.Context(t), 1, jetstream.WithGetMsgSubject(events.ChangeSubject(alice))); err != nil {
			t.Errorf("%s: get of alice's last entry: %v", user, err)
		}
	}

	// A live subscriber that loses a repeat catches up from the feed.
	crm := enginetest.ConnectAs(t, r.ClientURL(), "crm")
	var live collector
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: crm, Reader: client.New(crm), Logger: natstest.Logger(t),
		Start: client.StartAtSeq(first.Seq), LiveCheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sub.DropRepeats(func(seq uint64) bool { return seq == 3 })
	liveDone := runUntilError(t, sub, &live)

	// A hub across a reconnection.
	p := natstest.StartProxy(t, strings.TrimPrefix(r.ClientURL(), "nats://"))
	nc := enginetest.ConnectAs(t, p.URL(), "crm", nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	h := runHub(t, r, client.HubConfig{Conn: nc})
	var hubbed collector
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	hs := h.Subscribe()
	go func() {
		_ = hs.Run(hubCtx, func(_ context.Context, c client.Change) error { hubbed.add(c, client.Reply{}); return nil })
	}()

	set(alice, events.Away) // feed entry 2
	natstest.WaitFor(t, "the hub's first change", func() bool { return hubbed.len() == 1 })
	reconnects := nc.Stats().Reconnects
	p.Pause()
	natstest.WaitFor(t, "the hub to be cut off", func() bool { return !nc.IsConnected() })
	p.Resume()
	natstest.WaitFor(t, "the hub to reconnect", func() bool { return nc.IsConnected() && nc.Stats().Reconnects > reconnects })
	set(alice, events.Busy)   // feed entry 3: its repeat is lost to the live subscriber
	set(alice, events.Online) // feed entry 4
	natstest.WaitFor(t, "the live subscriber's four changes", func() bool { return live.len() == 4 })
	natstest.WaitFor(t, "the hub's three changes", func() bool { return hubbed.len() == 3 })
	select {
	case err := <-liveDone:
		t.Fatalf("the live subscriber ended: %v", err)
	default:
	}
}
