package client_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// restorableFeed is a server whose store can be copied and restored, with the
// streams made and a way to write feed entries straight to the feed.
type restorableFeed struct {
	t          *testing.T
	dir, older string
	port       int
	s          *server.Server
	js         jetstream.JetStream
}

// handed waits until col holds n changes and, for a durable, until it has
// acknowledged them.
func (f *restorableFeed) handed(col *collector, durable string, n int) {
	t := f.t
	t.Helper()
	natstest.WaitFor(t, fmt.Sprintf("%d changes handed over", n), func() bool { return col.len() == n })
	if durable != "" {
		natstest.WaitFor(t, "the durable's acknowledgements", func() bool {
			info, err := f.js.Consumer(natstest.Context(t), events.FeedStream, durable)
			return err == nil && info.CachedInfo().AckFloor.Stream == uint64(n)
		})
	}
}

func newRestorableFeed(t *testing.T) *restorableFeed {
	f := &restorableFeed{t: t, dir: t.TempDir(), older: t.TempDir(), port: natstest.FreePort(t)}
	f.start()
	if err := engine.EnsureStreams(natstest.Context(t), f.js, engine.StreamOptions{}, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *restorableFeed) start() {
	f.s = natstest.StartWith(f.t, natstest.Options{StoreDir: f.dir, Port: f.port})
	_, f.js = natstest.JetStream(f.t, f.s)
}

// restart starts the server again, copying its store aside first, or, with
// restore, on the copy.
func (f *restorableFeed) restart(restore bool) {
	f.t.Helper()
	f.s.Shutdown()
	f.s.WaitForShutdown()
	if restore {
		if err := os.RemoveAll(f.dir); err != nil {
			f.t.Fatal(err)
		}
		natstest.CopyDir(f.t, f.older, f.dir)
	} else {
		natstest.CopyDir(f.t, f.dir, f.older)
	}
	f.start()
}

// publish writes entries of contact for feed positions from to to (the feed
// ending at from-1), as the engine would derive them from a log of that
// contact alone, each stamped now.
func (f *restorableFeed) publish(contact string, from, to uint64) {
	f.t.Helper()
	for range to - from + 1 {
		c := events.Change{Contact: contact, Previous: events.Unknown, At: time.Now().UTC()}
		if _, err := f.js.Publish(natstest.Context(f.t), events.ChangeSubject(contact), c.Encode()); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestSubscriberSeesAFeedRestoredFromAnOlderCopy: a server started again on an
// older copy of its store has a feed created at the same time as before,
// shorter, and (the log restored with it, so nothing is purged) growing again
// with other changes at the same sequences, even the same log sequences. A
// subscription that was handed the old entries there says so
// (ErrFeedWentBack), rather than hand over only what lies past where it was,
// or, durable, acknowledge the new entries as handed over already.
func TestSubscriberSeesAFeedRestoredFromAnOlderCopy(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  client.SubscriberConfig
	}{
		{"consumer", client.SubscriberConfig{LiveCheck: -1, Start: client.StartAll()}},
		{"live", client.SubscriberConfig{LiveCheck: 20 * time.Millisecond, Start: client.StartAll()}},
		{"durable", client.SubscriberConfig{Durable: "crm", Start: client.StartAll()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRestorableFeed(t)
			nc := natstest.Connect(t, f.s, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
			cfg := tc.cfg
			cfg.Conn, cfg.Reader, cfg.Logger = nc, client.New(nc), natstest.Logger(t)
			sub, err := client.NewSubscriber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			col := &collector{}
			done := runUntilError(t, sub, col)
			handed := func(n int) { t.Helper(); f.handed(col, cfg.Durable, n) }
			f.publish("old", 1, 3)
			handed(3)
			f.restart(false) // the copy: the feed at 3, the durable's position with it
			natstest.WaitFor(t, "the subscriber to reconnect", nc.IsConnected)
			f.publish("old", 4, 6)
			handed(6)

			f.restart(true)
			f.publish("new", 4, 7)
			wantWentBack(t, tc.name, done)
			for _, c := range col.changes {
				if c.Contact == "new" {
					t.Errorf("handed over the change at feed seq %d of the restored feed", c.Seq)
				}
			}
		})
	}
}

// flakyJS hands out streams whose GetMsg fails failGets times, as a get does
// that has no answer in time (a server recovering, a group electing a leader).
type flakyJS struct {
	jetstream.JetStream
	failGets atomic.Int32
}

func (f *flakyJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	s, err := f.JetStream.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return &flakyStream{Stream: s, js: f}, nil
}

type flakyStream struct {
	jetstream.Stream
	js *flakyJS
}

func (s *flakyStream) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	if s.js.failGets.Add(-1) >= 0 {
		return nil, context.DeadlineExceeded
	}
	return s.Stream.GetMsg(ctx, seq, opts...)
}

// TestSubscriberSeesAFeedRestoredWhateverTheLook: the look at the entry handed
// last tells a feed restored from an older copy even when it cannot be made
// at once (a get with no answer, looked at again), and when the restored feed
// ends before that entry (it may grow past it only later: a durable steps
// over nothing until it knows).
func TestSubscriberSeesAFeedRestoredWhateverTheLook(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       client.SubscriberConfig
		failGets  int32
		growLater bool // the restored feed grows past the durable's position after it looked
	}{
		{"consumer, a get unanswered", client.SubscriberConfig{LiveCheck: -1}, 1, false},
		{"durable, a get unanswered", client.SubscriberConfig{Durable: "crm"}, 1, false},
		{"durable, the feed grows later", client.SubscriberConfig{Durable: "crm"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRestorableFeed(t)
			px := natstest.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", f.port))
			nc, err := nats.Connect(px.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			cfg := tc.cfg
			cfg.Start, cfg.Conn, cfg.Reader, cfg.Logger = client.StartAll(), nc, client.New(nc), natstest.Logger(t)
			sub, err := client.NewSubscriber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var flaky *flakyJS
			sub.WrapJetStream(func(js jetstream.JetStream) jetstream.JetStream { flaky = &flakyJS{JetStream: js}; return flaky })
			if tc.growLater {
				// A feed that ends before what was handed is read again
				// for a while before that counts: not long here.
				sub.SetFeedWindow(200 * time.Millisecond)
			}
			col := &collector{}
			done := runUntilError(t, sub, col)
			handed := func(n int) { t.Helper(); f.handed(col, cfg.Durable, n) }
			f.publish("old", 1, 3)
			handed(3)
			f.restart(false)
			natstest.WaitFor(t, "the subscriber to reconnect", nc.IsConnected)
			f.publish("old", 4, 6)
			handed(6)

			px.Pause()
			natstest.WaitFor(t, "the subscriber to be cut off", func() bool { return !nc.IsConnected() })
			f.restart(true)
			if !tc.growLater {
				f.publish("new", 4, 7) // there before the subscriber looks
			}
			flaky.failGets.Store(tc.failGets)
			px.Resume()
			if tc.growLater {
				// The restored durable resumes from its ack floor, 3; its
				// first new change comes at feed seq 4, below the 6 it
				// handed, and the feed ends there: the feed went back,
				// though it holds no other entry at 6 yet.
				natstest.WaitFor(t, "the subscriber to reconnect", nc.IsConnected)
				f.publish("new", 4, 4)
			}
			wantWentBack(t, tc.name, done)
			for _, c := range col.changes {
				if c.Contact == "new" {
					t.Errorf("handed over the change at feed seq %d of the restored feed", c.Seq)
				}
			}
			if info, err := f.js.Consumer(natstest.Context(t), events.FeedStream, "crm"); cfg.Durable != "" && err == nil {
				if floor := info.CachedInfo().AckFloor.Stream; floor > 3 {
					t.Errorf("the durable acknowledged the restored feed up to seq %d, past its own 3", floor)
				}
			}
		})
	}
}

// TestDurableEndsWhenItsConsumerGoesWhileCutOff: the consumer of a durable
// subscription deleted while it is cut off, or gone with the feed of a server
// started again on an empty store: once connected again, the reset it makes
// fails, and it ends rather than try for ever.
func TestDurableEndsWhenItsConsumerGoesWhileCutOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone func(f *restorableFeed)
	}{
		{"consumer deleted", func(f *restorableFeed) {
			if err := f.js.DeleteConsumer(natstest.Context(f.t), events.FeedStream, "crm"); err != nil {
				f.t.Fatal(err)
			}
		}},
		{"feed made again on an empty store", func(f *restorableFeed) {
			f.s.Shutdown()
			f.s.WaitForShutdown()
			if err := os.RemoveAll(f.dir); err != nil {
				f.t.Fatal(err)
			}
			f.start()
			if err := engine.EnsureStreams(natstest.Context(f.t), f.js, engine.StreamOptions{}, natstest.Logger(f.t)); err != nil {
				f.t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRestorableFeed(t)
			px := natstest.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", f.port))
			nc, err := nats.Connect(px.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			sub, err := client.NewSubscriber(client.SubscriberConfig{Durable: "crm", Start: client.StartAll(), Conn: nc, Reader: client.New(nc), Logger: natstest.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			col := &collector{}
			done := runUntilError(t, sub, col)
			f.publish("old", 1, 3)
			natstest.WaitFor(t, "three changes handed over", func() bool { return col.len() == 3 })
			px.Pause()
			natstest.WaitFor(t, "the durable to be cut off", func() bool { return !nc.IsConnected() })
			tc.gone(f)
			px.Resume()
			select {
			case err := <-done:
				if err == nil {
					t.Error("Run returned nil, want an error saying the durable's consumer is gone")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the durable still runs 20s after its consumer went")
			}
		})
	}
}

// TestConsumerGoneAfterAReadAheadSeesTheFeedGoBack: an ordered subscription
// reads ahead of what it has handed over. Its server comes back on an older
// copy of its store, and the consumer made on it is deleted: the subscription
// starts a new one after the last entry it read, not the last it handed. The
// feed no longer holds that entry, and grows again with other changes: the
// subscription ends with ErrFeedWentBack, having handed over none of them.
func TestConsumerGoneAfterAReadAheadSeesTheFeedGoBack(t *testing.T) {
	f := newRestorableFeed(t)
	nc := natstest.Connect(t, f.s, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: nc, Reader: client.New(nc), Logger: natstest.Logger(t),
		LiveCheck: -1, Start: client.StartAll()})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetFeedWindow(300 * time.Millisecond)
	sub.SetLookEvery(time.Hour) // what the consumer gone tells, alone
	col := &collector{}
	held, release := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, c client.Change) error {
			if c.Contact == "old" && c.Seq == 4 {
				close(held)
				<-release
			}
			col.add(c, client.Reply{})
			return nil
		})
	}()
	<-sub.Ready()
	f.publish("old", 1, 3)
	natstest.WaitFor(t, "the first three changes", func() bool { return col.len() == 3 })
	f.restart(false) // the copy holds entries 1 to 3
	natstest.WaitFor(t, "the subscriber to reconnect", nc.IsConnected)
	f.publish("old", 4, 10)
	<-held
	feed, err := f.js.Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func(each func(*jetstream.ConsumerInfo) bool) bool {
		for info := range feed.ListConsumers(natstest.Context(t)).Info() {
			if each(info) {
				return true
			}
		}
		return false
	}
	natstest.WaitFor(t, "entries 5 to 10 read ahead", func() bool {
		return consumers(func(info *jetstream.ConsumerInfo) bool { return info.Delivered.Stream >= 10 })
	})

	f.restart(true)
	natstest.WaitFor(t, "the subscriber to reconnect", nc.IsConnected)
	if feed, err = f.js.Stream(natstest.Context(t), events.FeedStream); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "a consumer made again on the restored feed", func() bool {
		return consumers(func(*jetstream.ConsumerInfo) bool { return true })
	})
	for name := range feed.ConsumerNames(natstest.Context(t)).Name() {
		if err := feed.DeleteConsumer(natstest.Context(t), name); err != nil {
			t.Fatal(err)
		}
	}
	f.publish("new", 4, 12)
	close(release)

	wantWentBack(t, "an ordered subscription whose consumer went after it read ahead of a feed that went back", done)
	col.mu.Lock()
	defer col.mu.Unlock()
	for i, c := range col.changes {
		if c.Contact != "old" || c.Seq != uint64(i+1) {
			t.Errorf("change %d handed over is %s's at feed seq %d; want old's at %d, read before the feed went back", i, c.Contact, c.Seq, i+1)
		}
	}
}
