package engine_test

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// checkFeed fails unless the feed holds exactly the entries the log calls for,
// once each, in log order, the n-th visible change at feed sequence n, each
// with a log reference that opens, under the engines' key, to the log sequence
// of its event, and no two references alike.
func checkFeed(t testing.TB, js jetstream.JetStream) []enginetest.FeedEntry {
	t.Helper()
	log := enginetest.ReadLog(t, js)
	want := enginetest.WantFeed(log)
	got := enginetest.ReadFeed(t, js)
	if len(got) != len(want) {
		t.Errorf("feed has %d entries, the log calls for %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.FeedSeq != w.FeedSeq || g.Change.Contact != w.Change.Contact || g.Change.Previous != w.Change.Previous ||
			g.Change.Name != w.Change.Name || !g.Change.At.Equal(w.Change.At) {
			t.Errorf("feed entry %d = %+v, want %+v", i, g, w)
			break
		}
	}
	positions := enginetest.FeedPositions(log)
	logSeqOf := make(map[uint64]uint64, len(positions)) // feed position -> log seq
	for logSeq, pos := range positions {
		logSeqOf[pos] = logSeq
	}
	refs := map[string]bool{}
	for _, m := range natstest.ReadStream(t, js, events.FeedStream) {
		md, _ := m.Metadata()
		ref := m.Headers().Get(events.LogRefHeader)
		if refs[ref] {
			t.Errorf("feed entry %d has the log reference %q of another entry", md.Sequence.Stream, ref)
		}
		refs[ref] = true
		logSeq, err := engine.OpenLogRef(natstest.Context(t), js, ref, m.Data())
		if err != nil || logSeq != logSeqOf[md.Sequence.Stream] {
			t.Errorf("feed entry %d: log reference %q opens to %d, %v; want log seq %d", md.Sequence.Stream, ref, logSeq, err,
				logSeqOf[md.Sequence.Stream])
			break
		}
	}
	return got
}

func TestFeedIsExactlyOnceAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 3 {
		r := enginetest.Start(t, dir, engine.Options{})
		enginetest.WriteRandom(t, r.Writer(), rng, 10, 200)
		if round == 2 {
			r.WaitFeed(t)
			checkFeed(t, r.JetStream(t))
		}
		r.Stop(t) // some rounds stop before the feed has caught up
	}
	r := enginetest.Start(t, dir, engine.Options{})
	r.WaitFeed(t)
	checkFeed(t, r.JetStream(t))
	if m := r.Metrics().Feed; m.Purges != 0 {
		t.Errorf("feed was purged %d times on a healthy log", m.Purges)
	}
}

// TestOneEngineDerivesTheFeed runs three engines on one server: the owner of
// the log (of its partition 0) alone reads the log for the feed, publishes and
// repeats its entries, the others stand by; every entry is in the feed once,
// in log order, and repeated live once. When the deriver stops, the next owner
// derives on from the feed's last entry, with nothing missing or twice.
func TestOneEngineDerivesTheFeed(t *testing.T) {
	s := natstest.Start(t)
	var rs []*enginetest.Running
	for range 3 {
		rs = append(rs, enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL()}))
	}
	live := map[string]int{} // repeats by feed position
	var liveMu sync.Mutex
	nc := natstest.Connect(t, s)
	if _, err := nc.Subscribe(events.LivePrefix+">", func(m *nats.Msg) {
		liveMu.Lock()
		live[m.Header.Get(client.FeedSeqHeader)]++
		liveMu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	write := func(rs []*enginetest.Running, seed uint64) {
		var wg sync.WaitGroup
		for i, r := range rs {
			wg.Go(func() { enginetest.WriteRandom(t, r.Client(t), rand.New(rand.NewPCG(uint64(i), seed)), 5, 100) })
		}
		wg.Wait()
		for _, r := range rs {
			r.WaitFeed(t)
		}
	}
	write(rs, 9)
	deriver, others := owner(t, rs...)
	for _, r := range others {
		if m := r.Metrics().Feed; m.Deriving || m.Published != 0 {
			t.Errorf("an engine that does not own the log: %+v; want it standing by, having published nothing", m)
		}
	}
	if !deriver.Metrics().Feed.Deriving {
		t.Error("the owner of the log does not derive the feed")
	}
	js := rs[0].JetStream(t)
	checkFeed(t, js)

	deriver.Stop(t)
	next, _ := owner(t, others...)
	natstest.WaitFor(t, "the next owner to derive the feed", func() bool { return next.Metrics().Feed.Deriving })
	write(others, 10)
	enginetest.CheckChains(t, enginetest.ReadLog(t, js))
	feed := checkFeed(t, js)
	natstest.WaitFor(t, "every entry to be repeated", func() bool {
		liveMu.Lock()
		defer liveMu.Unlock()
		return len(live) >= len(feed)
	})
	liveMu.Lock()
	defer liveMu.Unlock()
	for _, e := range feed {
		if n := live[strconv.FormatUint(e.FeedSeq, 10)]; n != 1 {
			t.Errorf("feed entry %d was repeated %d times, want once", e.FeedSeq, n)
		}
	}
}

// TestLogRecreatedIsNoticed deletes the log and starts again with another
// history: the projection must be rebuilt and the feed derived again, so that
// neither serves what the log no longer holds.
func TestLogRecreatedIsNoticed(t *testing.T) {
	s := natstest.Start(t)
	dir := t.TempDir()
	r := enginetest.Start(t, dir, engine.Options{NATSURL: s.ClientURL()})
	c := r.Writer()
	ctx := natstest.Context(t)
	for _, st := range []events.Status{events.Online, events.Away, events.Busy} {
		if _, err := c.Set(ctx, client.SetRequest{Contact: "old-contact", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitFeed(t)
	if err := r.Projection().WaitApplied(ctx, 3); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)

	js := recreateLog(t, s)
	w := &enginetest.LogWriter{JS: js}
	if _, err := w.Set(ctx, client.SetRequest{Contact: "new-contact", Status: events.Away}); err != nil {
		t.Fatal(err)
	}

	r = enginetest.Start(t, dir, engine.Options{NATSURL: s.ClientURL()})
	if got := r.Follower().Rebuilds(); got != 1 {
		t.Errorf("projection rebuilds = %d, want 1", got)
	}
	old, err := r.Reader().Status(ctx, "old-contact", 0)
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != events.Unknown {
		t.Errorf("contact only in the old log reads %s, want unknown", old.Status)
	}
	cur, err := r.Reader().Status(ctx, "new-contact", 0)
	if err != nil || cur.Status != events.Away {
		t.Errorf("contact of the new log reads %+v, %v; want away", cur, err)
	}
	r.WaitFeed(t)
	checkFeed(t, js)
	if m := r.Metrics().Feed; m.Purges != 1 {
		t.Errorf("feed purges = %d, want 1", m.Purges)
	}
}

// TestLogRecreatedWhileCutOffIsNoticed: the log is recreated (a server that
// lost its store, another engine making the streams again) while a running
// engine is cut off from the server. Reconnected, nats.go makes the fold's and
// the feed's consumers again and would read the new log on from the old
// sequences, as if it went on from the old one; the engine notices instead,
// folds the new log afresh and derives the feed again. The new log may be
// longer than the old one, or shorter: then the new consumers deliver nothing
// to show it, until the log is looked at again on the reconnection.
func TestLogRecreatedWhileCutOffIsNoticed(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []client.SetRequest // by another engine, on the new log
	}{
		{"longer", []client.SetRequest{{Contact: "new-contact", Status: events.Online}, {Contact: "new-contact", Status: events.Away},
			{Contact: "new-contact", Status: events.Busy}, {Contact: "other", Status: events.Online}, {Contact: "other", Status: events.Away}}},
		{"shorter", []client.SetRequest{{Contact: "new-contact", Status: events.Busy}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := natstest.Start(t)
			p := natstest.StartProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
			r := enginetest.Start(t, "", engine.Options{NATSURL: p.URL()})
			ctx := natstest.Context(t)
			for _, st := range []events.Status{events.Online, events.Away, events.Busy} {
				if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "old-contact", Status: st}); err != nil {
					t.Fatal(err)
				}
			}
			r.WaitFeed(t)
			if err := r.Projection().WaitApplied(ctx, 3); err != nil {
				t.Fatal(err)
			}

			p.Pause()
			natstest.WaitFor(t, "the engine to be cut off", func() bool { return !r.Conn().IsConnected() })
			js := recreateLog(t, s)
			w := &enginetest.LogWriter{JS: js}
			want := map[string]events.Status{"old-contact": events.Unknown}
			for _, set := range tc.sets {
				if _, err := w.Set(ctx, set); err != nil {
					t.Fatal(err)
				}
				want[set.Contact] = set.Status
			}
			p.Resume()
			natstest.WaitFor(t, "the engine to reconnect", r.Connected)

			// The engine's own set after the reconnection, and a read of it.
			last, err := r.Writer().Set(ctx, client.SetRequest{Contact: "late", Status: events.Away})
			if err != nil {
				t.Fatal(err)
			}
			want["late"] = events.Away
			natstest.WaitFor(t, "the projection to be rebuilt", func() bool { return r.Follower().Rebuilds() > 0 })
			// Read as of the late set's feed position on the new log.
			pos := enginetest.FeedPositions(enginetest.ReadLog(t, js))[last.Seq]
			for contact, st := range want {
				got, err := r.Reader().Status(ctx, contact, pos)
				if err != nil || got.Status != st {
					t.Errorf("%s reads %+v, %v; want %s, as the new log says", contact, got, err, st)
				}
			}
			// The feed's position on the old log may be past the new
			// log's end: it counts once the feed is derived again.
			natstest.WaitFor(t, "the feed to be derived again", func() bool { return r.Metrics().Feed.Purges > 0 })
			r.WaitFeed(t)
			checkFeed(t, js)
			if m := r.Metrics().Feed; m.Purges != 1 {
				t.Errorf("feed purges = %d, want 1", m.Purges)
			}
		})
	}
}

// TestLogRestoredWhileCutOffIsNoticed: while the engine is cut off from an
// external server, the server is started again on an older copy of its store.
// The log there keeps its creation time, and has grown past where the engine
// read by the time the engine reconnects: other events at the sequences after
// the last one it read. The engine folds the restored log afresh.
func TestLogRestoredWhileCutOffIsNoticed(t *testing.T) {
	dir, older := t.TempDir(), t.TempDir()
	port := natstest.FreePort(t)
	s := natstest.StartWith(t, natstest.Options{StoreDir: dir, Port: port})
	p := natstest.StartProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	r := enginetest.Start(t, "", engine.Options{NATSURL: p.URL()})
	ctx := natstest.Context(t)
	set := func(w enginetest.Setter, contact string, st events.Status) client.SetResult {
		t.Helper()
		res, err := w.Set(ctx, client.SetRequest{Contact: contact, Status: st})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// restart starts the server again with the engine cut off, having
	// done between to its store.
	restart := func(between func() error) {
		t.Helper()
		p.Pause()
		natstest.WaitFor(t, "the engine to be cut off", func() bool { return !r.Conn().IsConnected() })
		s.Shutdown()
		s.WaitForShutdown()
		if err := between(); err != nil {
			t.Fatal(err)
		}
		s = natstest.StartWith(t, natstest.Options{StoreDir: dir, Port: port})
		t.Cleanup(func() { r.Stop(t) }) // before this server stops
	}
	resume := func() {
		t.Helper()
		p.Resume()
		natstest.WaitFor(t, "the engine to reconnect", r.Connected)
	}

	set(r.Writer(), "old-contact", events.Online) // seq 1
	r.WaitFeed(t)
	restart(func() error { return os.CopyFS(older, os.DirFS(dir)) })
	resume()
	set(r.Writer(), "old-contact", events.Away) // seq 2
	set(r.Writer(), "old-contact", events.Busy) // seq 3
	set(r.Writer(), "forgotten", events.Online) // seq 4
	r.WaitFeed(t)
	if err := r.Projection().WaitApplied(ctx, 4); err != nil {
		t.Fatal(err)
	}

	restart(func() error {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		return os.CopyFS(dir, os.DirFS(older))
	})
	_, js := natstest.JetStream(t, s)
	w := &enginetest.LogWriter{JS: js}
	for _, st := range []events.Status{events.Online, events.Away, events.Online, events.Away} { // seqs 2 to 5
		set(w, "new-contact", st)
	}
	resume()
	last := set(r.Writer(), "late", events.Away)
	want := map[string]events.Status{"old-contact": events.Online, "forgotten": events.Unknown,
		"new-contact": events.Away, "late": events.Away}
	natstest.WaitFor(t, "the projection to be rebuilt", func() bool { return r.Follower().Rebuilds() > 0 })
	pos := enginetest.FeedPositions(enginetest.ReadLog(t, js))[last.Seq]
	for contact, st := range want {
		got, err := r.Reader().Status(ctx, contact, pos)
		if err != nil || got.Status != st {
			t.Errorf("%s reads %+v, %v; want %s, as the restored log says", contact, got, err, st)
		}
	}
	r.WaitFeed(t)
	checkFeed(t, js)
}

// recreateLog deletes the log on s and creates it again, empty, as a server
// that lost its store and an engine making the streams again would; it
// returns a JetStream on s.
func recreateLog(t *testing.T, s *server.Server) jetstream.JetStream {
	t.Helper()
	_, js := natstest.JetStream(t, s)
	if err := js.DeleteStream(natstest.Context(t), events.LogStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(natstest.Context(t), engine.LogStreamConfig(engine.StreamOptions{})); err != nil {
		t.Fatal(err)
	}
	return js
}

// TestFeedOrderMatchesLog checks the order of entries against a log with many
// contacts interleaved, and their numbering: from 1, with no gap, whatever
// hidden changes the log holds between them.
func TestFeedOrderMatchesLog(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	enginetest.WriteRandom(t, r.Writer(), rand.New(rand.NewPCG(3, 4)), 50, 500)
	r.WaitFeed(t)
	js := r.JetStream(t)
	feed := enginetest.ReadFeed(t, js)
	log := enginetest.ReadLog(t, js)
	if len(feed) == len(log) {
		t.Fatalf("the log of %d events has no hidden change: the test proves nothing", len(log))
	}
	for i, f := range feed {
		if f.FeedSeq != uint64(i+1) {
			t.Fatalf("feed entry %d is at feed seq %d, want %d: the feed numbers from 1 with no gap", i, f.FeedSeq, i+1)
		}
	}
	checkFeed(t, js)
}

// TestFeedDerivedAgainNumbersFromOne: where the feed must be derived again,
// the engine deletes it and creates it again, so that its sequences are feed
// positions from 1 again, and the feed describes the log once more: when it
// finds the feed missing (deleted by hand while it ran), emptied by a purge
// (which keeps the numbering) while it was stopped, or ending with an entry
// whose log reference does not open (the engines' key replaced).
func TestFeedDerivedAgainNumbersFromOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		// spoil does to the feed, or the key, what makes the engine derive
		// the feed again; restart says it does so with the engine stopped.
		spoil   func(t *testing.T, js jetstream.JetStream)
		restart bool
	}{
		{"missing", func(t *testing.T, js jetstream.JetStream) {
			if err := js.DeleteStream(natstest.Context(t), events.FeedStream); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"purged", func(t *testing.T, js jetstream.JetStream) {
			feed, err := js.Stream(natstest.Context(t), events.FeedStream)
			if err != nil {
				t.Fatal(err)
			}
			if err := feed.Purge(natstest.Context(t)); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"another key", func(t *testing.T, js jetstream.JetStream) {
			kv, err := js.KeyValue(natstest.Context(t), events.EngineBucket)
			if err != nil {
				t.Fatal(err)
			}
			if err := kv.Purge(natstest.Context(t), events.FeedSealKey); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := natstest.Start(t)
			opts := engine.Options{NATSURL: s.ClientURL()}
			dir := t.TempDir()
			r := enginetest.Start(t, dir, opts)
			enginetest.WriteRandom(t, r.Writer(), rand.New(rand.NewPCG(5, 6)), 5, 60)
			r.WaitFeed(t)
			_, js := natstest.JetStream(t, s)
			before, err := js.Stream(natstest.Context(t), events.FeedStream)
			if err != nil {
				t.Fatal(err)
			}
			if tc.restart {
				r.Stop(t)
			}
			tc.spoil(t, js)
			if tc.restart {
				r = enginetest.Start(t, dir, opts)
			} else if _, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "after", Status: events.Online}); err != nil {
				t.Fatal(err) // the feed learns it is missing from its next entry
			}
			natstest.WaitFor(t, "the feed to be derived again", func() bool { return r.Metrics().Feed.Purges == 1 })
			r.WaitFeed(t)
			checkFeed(t, js)
			after, err := js.Stream(natstest.Context(t), events.FeedStream)
			if err != nil {
				t.Fatal(err)
			}
			if info := after.CachedInfo(); info.State.FirstSeq != 1 || !info.Created.After(before.CachedInfo().Created) {
				t.Errorf("the feed derived again starts at seq %d, created %s; want 1, and created after %s",
					info.State.FirstSeq, info.Created, before.CachedInfo().Created)
			}
		})
	}
}

// TestOnlyTheOwnerMakesTheFeedAnew: two engines find that the feed must be
// derived again (it went missing under them); the log's owner alone deletes
// and makes it anew, the other stands by, and the feed describes the log.
func TestOnlyTheOwnerMakesTheFeedAnew(t *testing.T) {
	s := natstest.Start(t)
	opts := engine.Options{NATSURL: s.ClientURL()}
	a := enginetest.Start(t, "", opts)
	b := enginetest.Start(t, "", opts)
	own, others := owner(t, a, b)
	enginetest.WriteRandom(t, own.Writer(), rand.New(rand.NewPCG(7, 8)), 5, 60)
	own.WaitFeed(t)
	_, js := natstest.JetStream(t, s)
	if err := js.DeleteStream(natstest.Context(t), events.FeedStream); err != nil {
		t.Fatal(err)
	}
	if _, err := own.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "after", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the owner to derive the feed again", func() bool { return own.Metrics().Feed.Purges == 1 })
	own.WaitFeed(t)
	checkFeed(t, js)
	if n := others[0].Metrics().Feed.Purges; n != 0 {
		t.Errorf("the engine that does not own the log made the feed anew %d times, want none", n)
	}
}

// TestFeedIsExactlyOnceWhenItsConnectionBreaks: the deriving engine's
// connection breaks while it derives the feed, events coming all the while;
// back, it goes on, and every visible change is in the feed once, in log
// order, without deriving the feed again.
func TestFeedIsExactlyOnceWhenItsConnectionBreaks(t *testing.T) {
	s := natstest.Start(t)
	p := natstest.StartProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	// A TTL the break does not outlast: the engine stays the deriver.
	r := enginetest.Start(t, "", engine.Options{NATSURL: p.URL(), Streams: engine.StreamOptions{OwnerTTL: time.Minute}})
	_, js := natstest.JetStream(t, s)
	w := &enginetest.LogWriter{JS: js}
	rng := rand.New(rand.NewPCG(11, 12))
	written := make(chan struct{})
	go func() {
		defer close(written)
		enginetest.WriteRandom(t, w, rng, 20, 600)
	}()
	natstest.WaitFor(t, "the feed to be under way", func() bool { return r.Metrics().Feed.Published > 50 })
	p.Pause() // as entries are published, and more events come
	natstest.WaitFor(t, "the engine to be cut off", func() bool { return !r.Conn().IsConnected() })
	p.Resume()
	<-written
	natstest.WaitFor(t, "the engine to reconnect", r.Connected)
	r.WaitFeed(t)
	checkFeed(t, js)
	if m := r.Metrics().Feed; m.Purges != 0 {
		t.Errorf("feed: %+v; want it never derived again", m)
	}
}
