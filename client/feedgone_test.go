package client_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// publishRepeated writes entries of contact for feed positions from to to, as
// restorableFeed.publish does, and repeats each on LivePrefix once stored, as
// the engine's Feed does.
func (f *restorableFeed) publishRepeated(contact string, from, to uint64) {
	f.t.Helper()
	for range to - from + 1 {
		c := events.Change{Contact: contact, Previous: events.Unknown, At: time.Now().UTC()}
		data := c.Encode()
		ack, err := f.js.Publish(natstest.Context(f.t), events.ChangeSubject(contact), data)
		if err != nil {
			f.t.Fatal(err)
		}
		err = f.js.Conn().PublishMsg(&nats.Msg{Subject: events.LivePrefix + events.Token(contact), Data: data,
			Header: nats.Header{client.FeedSeqHeader: []string{strconv.FormatUint(ack.Sequence, 10)}}})
		if err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.js.Conn().Flush(); err != nil {
		f.t.Fatal(err)
	}
}

// TestLiveSubscriberSeesAFeedRestoredUnderIt: a live subscriber whose server
// comes back on an older copy of its store, whose feed then grows again with
// other changes repeated as the engine repeats them, ends with
// ErrFeedWentBack. Before, the repeats up to where it was were stepped over as
// handed already and the next ones handed over as if they followed, for as
// long as repeats kept its LiveCheck from looking at the feed (here, for ever).
func TestLiveSubscriberSeesAFeedRestoredUnderIt(t *testing.T) {
	f := newRestorableFeed(t)
	nc := natstest.Connect(t, f.s, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: nc, Reader: client.New(nc), Logger: natstest.Logger(t), LiveCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	done := runUntilError(t, sub, col)
	f.publishRepeated("old", 1, 3)
	natstest.WaitFor(t, "3 handed", func() bool { return col.len() == 3 })
	f.restart(false) // the copy: the feed at 3
	natstest.WaitFor(t, "reconnect", nc.IsConnected)
	f.publishRepeated("old", 4, 6)
	natstest.WaitFor(t, "6 handed", func() bool { return col.len() == 6 })

	f.restart(true) // back on the copy: the feed ends at 3
	natstest.WaitFor(t, "reconnect", nc.IsConnected)
	f.publishRepeated("new", 4, 10) // other changes at feed seqs 4..10
	wantWentBack(t, "live subscriber", done)
	for _, c := range col.changes {
		if c.Contact == "new" {
			t.Errorf("handed over the change at feed seq %d of the restored feed as if it followed", c.Seq)
		}
	}
}

// TestOrderedSubscriberSeesTheFeedGo: an ephemeral subscriber reading a
// consumer of the feed (LiveCheck < 0; the same code reads for one following
// contacts, and for a live one catching up) whose feed is deleted, or created
// again shorter than where it was, ends with ErrFeedWentBack, as a hub and a
// durable do. Before, nats.go made its consumer again for ever, or read the
// new feed from past its end, and it waited without a word.
func TestOrderedSubscriberSeesTheFeedGo(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  client.SubscriberConfig
		goes func(f *restorableFeed)
	}{
		{"deleted, consumer", client.SubscriberConfig{LiveCheck: -1}, func(f *restorableFeed) {}},
		{"created again shorter, consumer", client.SubscriberConfig{LiveCheck: -1}, func(f *restorableFeed) {
			if err := engine.EnsureStreams(natstest.Context(f.t), f.js, engine.StreamOptions{}, natstest.Logger(f.t)); err != nil {
				f.t.Fatal(err)
			}
			f.publish("new", 1, 2)
		}},
		{"created again shorter, contacts", client.SubscriberConfig{Contacts: []string{"old", "new"}}, func(f *restorableFeed) {
			if err := engine.EnsureStreams(natstest.Context(f.t), f.js, engine.StreamOptions{}, natstest.Logger(f.t)); err != nil {
				f.t.Fatal(err)
			}
			f.publish("new", 1, 2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRestorableFeed(t)
			nc := natstest.Connect(t, f.s)
			cfg := tc.cfg
			cfg.Start, cfg.Conn, cfg.Reader, cfg.Logger = client.StartAll(), nc, client.New(nc), natstest.Logger(t)
			sub, err := client.NewSubscriber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// A feed not found is read again for a while before that
			// counts: not long here.
			sub.SetFeedWindow(300 * time.Millisecond)
			col := &collector{}
			done := runUntilError(t, sub, col)
			f.publish("old", 1, 5)
			natstest.WaitFor(t, "5 handed", func() bool { return col.len() == 5 })
			if err := f.js.DeleteStream(natstest.Context(t), events.FeedStream); err != nil {
				t.Fatal(err)
			}
			tc.goes(f)
			wantWentBack(t, tc.name, done)
		})
	}
}

// TestHubSeesAFeedRestoredUnderIt: a hub whose server comes back on an older
// copy of its store ends with an error wrapping ErrFeedWentBack, as Hub.Run
// says, and hands over nothing of the restored feed. Before, it ended with
// "read the feed", which a caller could not tell from any other failure.
func TestHubSeesAFeedRestoredUnderIt(t *testing.T) {
	f := newRestorableFeed(t)
	nc := natstest.Connect(t, f.s, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	hub, err := client.NewHub(client.HubConfig{Conn: nc, Reader: client.New(nc), Logger: natstest.Logger(t), Start: client.StartAll()})
	if err != nil {
		t.Fatal(err)
	}
	col, hs := &collector{}, hub.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		_ = hs.Run(ctx, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
	}()
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	<-hub.Ready()
	f.publish("old", 1, 3)
	natstest.WaitFor(t, "3 handed", func() bool { return col.len() == 3 })
	f.restart(false)
	natstest.WaitFor(t, "reconnect", nc.IsConnected)
	f.publish("old", 4, 6)
	natstest.WaitFor(t, "6 handed", func() bool { return col.len() == 6 })
	f.restart(true)
	f.publish("new", 4, 7)
	wantWentBack(t, "hub", done)
	for _, c := range col.changes {
		if c.Contact == "new" {
			t.Errorf("hub handed over the change at feed seq %d of the restored feed", c.Seq)
		}
	}
}
