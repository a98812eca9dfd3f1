package engine

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// copyDir copies the tree at from to to.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setMany sets n statuses over a few contacts and returns the last sequence.
func setMany(t *testing.T, e *running, n, offset int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		s := []events.Status{events.Online, events.Away, events.Invisible, events.Offline, events.Busy}[(i+offset)%5]
		res, err := e.Writer().Set(ctxT(t), SetRequest{Contact: fmt.Sprintf("c%d", i%6), Status: s})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, res.Seq)
	}
	if err := e.Projection().WaitApplied(ctxT(t), last); err != nil {
		t.Fatal(err)
	}
	e.waitFeed(t)
	return last
}

// A log that went back (its store restored from an older copy) or was
// recreated empty, under a projection that had gone further: the engine notices,
// rebuilds the projection from the log as it now is, and the projection, the
// chains and the feed agree with it; writes go on from there.
func TestLogWentBackOrWasRecreated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restore func(t *testing.T, jetstreamDir, older string)
	}{
		{"back", func(t *testing.T, jsDir, older string) {
			if err := os.RemoveAll(jsDir); err != nil {
				t.Fatal(err)
			}
			copyDir(t, older, jsDir)
		}},
		{"recreated", func(t *testing.T, jsDir, _ string) {
			if err := os.RemoveAll(jsDir); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := startEngine(t, dir, Options{})
			setMany(t, e, 60, 0)
			e.stop(t)
			older := filepath.Join(t.TempDir(), "jetstream")
			copyDir(t, filepath.Join(dir, "jetstream"), older)

			e = startEngine(t, dir, Options{})
			ahead := setMany(t, e, 90, 2)
			e.stop(t)
			tc.restore(t, filepath.Join(dir, "jetstream"), older)

			e = startEngine(t, dir, Options{})
			if e.Metrics().Rebuilds == 0 {
				t.Errorf("the projection was at seq %d, the log is behind it now, and no rebuild happened", ahead)
			}
			r, err := e.Verify(ctxT(t), nil)
			if err != nil || !r.OK() {
				t.Fatalf("verify after the log %s: %+v, %v", tc.name, r, err)
			}
			last := setMany(t, e, 30, 4)
			js := e.jetStream(t)
			log := readLog(t, js)
			checkChains(t, log)
			if r, err := e.Verify(ctxT(t), nil); err != nil || !r.OK() || r.Seq != last {
				t.Errorf("verify after more writes: %+v, %v", r, err)
			}
		})
	}
}

// restorableFeed is a server whose store can be copied and restored, with the
// streams made and a way to write feed entries straight to the feed.
type restorableFeed struct {
	t          *testing.T
	dir, older string
	port       int
	s          *server.Server
	js         jetstream.JetStream
}

func newRestorableFeed(t *testing.T) *restorableFeed {
	f := &restorableFeed{t: t, dir: t.TempDir(), older: t.TempDir(), port: natstest.FreePort(t)}
	f.start()
	if err := EnsureStreams(ctxT(t), f.js, StreamOptions{}, testLogger(t)); err != nil {
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
		copyDir(f.t, f.older, f.dir)
	} else {
		copyDir(f.t, f.dir, f.older)
	}
	f.start()
}

// publish writes entries for log seqs from to to of contact, as the engine
// would derive them from a log of that contact alone.
func (f *restorableFeed) publish(contact string, from, to uint64) {
	f.t.Helper()
	for seq := from; seq <= to; seq++ {
		c := events.Change{Contact: contact, Previous: events.Unknown, Seq: seq, At: time.Now().UTC()}
		if _, err := f.js.Publish(ctxT(f.t), events.ChangeSubject(contact), c.Encode()); err != nil {
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
		cfg  SubscriberConfig
	}{
		{"consumer", SubscriberConfig{LiveCheck: -1, Start: StartAll()}},
		{"live", SubscriberConfig{LiveCheck: 20 * time.Millisecond, Start: StartAll()}},
		{"durable", SubscriberConfig{Durable: "crm", Start: StartAll()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRestorableFeed(t)
			nc := natstest.Connect(t, f.s, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
			cfg := tc.cfg
			cfg.Conn, cfg.Reader, cfg.Logger = nc, NewClient(nc), testLogger(t)
			sub, err := NewSubscriber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			col := &collector{}
			done := runUntilError(t, sub, col)
			handed := func(n int) {
				t.Helper()
				waitFor(t, fmt.Sprintf("%d changes handed over", n), func() bool { return col.len() == n })
				if cfg.Durable != "" {
					waitFor(t, "the durable's acknowledgements", func() bool {
						info, err := f.js.Consumer(ctxT(t), FeedStream, cfg.Durable)
						return err == nil && info.CachedInfo().AckFloor.Stream == uint64(n)
					})
				}
			}
			f.publish("old", 1, 3)
			handed(3)
			f.restart(false) // the copy: the feed at 3, the durable's position with it
			waitFor(t, "the subscriber to reconnect", nc.IsConnected)
			f.publish("old", 4, 6)
			handed(6)

			f.restart(true)
			f.publish("new", 4, 7)
			wantWentBack(t, tc.name, done)
			for _, c := range col.changes {
				if c.Contact == "new" {
					t.Errorf("handed over the change at log seq %d of the restored feed (feed seq %d)", c.Seq, c.FeedSeq)
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
		cfg       SubscriberConfig
		failGets  int32
		growLater bool // the restored feed grows past the durable's position after it looked
	}{
		{"consumer, a get unanswered", SubscriberConfig{LiveCheck: -1}, 1, false},
		{"durable, a get unanswered", SubscriberConfig{Durable: "crm"}, 1, false},
		{"durable, the feed grows later", SubscriberConfig{Durable: "crm"}, 0, true},
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
			cfg.Start, cfg.Conn, cfg.Reader, cfg.Logger = StartAll(), nc, NewClient(nc), testLogger(t)
			sub, err := NewSubscriber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			flaky := &flakyJS{JetStream: sub.js}
			sub.js = flaky
			if tc.growLater {
				// A feed that ends before what was handed is read again
				// for a while before that counts: not long here.
				sub.feed.window = 200 * time.Millisecond
			}
			col := &collector{}
			done := runUntilError(t, sub, col)
			handed := func(n int) {
				t.Helper()
				waitFor(t, fmt.Sprintf("%d changes handed over", n), func() bool { return col.len() == n })
				if cfg.Durable != "" {
					waitFor(t, "the durable's acknowledgements", func() bool {
						info, err := f.js.Consumer(ctxT(t), FeedStream, cfg.Durable)
						return err == nil && info.CachedInfo().AckFloor.Stream == uint64(n)
					})
				}
			}
			f.publish("old", 1, 3)
			handed(3)
			f.restart(false)
			waitFor(t, "the subscriber to reconnect", nc.IsConnected)
			f.publish("old", 4, 6)
			handed(6)

			px.Pause()
			waitFor(t, "the subscriber to be cut off", func() bool { return !nc.IsConnected() })
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
				waitFor(t, "the subscriber to reconnect", nc.IsConnected)
				f.publish("new", 4, 4)
			}
			wantWentBack(t, tc.name, done)
			for _, c := range col.changes {
				if c.Contact == "new" {
					t.Errorf("handed over the change at log seq %d of the restored feed (feed seq %d)", c.Seq, c.FeedSeq)
				}
			}
			if info, err := f.js.Consumer(ctxT(t), FeedStream, "crm"); cfg.Durable != "" && err == nil {
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
			if err := f.js.DeleteConsumer(ctxT(f.t), FeedStream, "crm"); err != nil {
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
			if err := EnsureStreams(ctxT(f.t), f.js, StreamOptions{}, testLogger(f.t)); err != nil {
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
			sub, err := NewSubscriber(SubscriberConfig{Durable: "crm", Start: StartAll(), Conn: nc, Reader: NewClient(nc), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			col := &collector{}
			done := runUntilError(t, sub, col)
			f.publish("old", 1, 3)
			waitFor(t, "three changes handed over", func() bool { return col.len() == 3 })
			px.Pause()
			waitFor(t, "the durable to be cut off", func() bool { return !nc.IsConnected() })
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
