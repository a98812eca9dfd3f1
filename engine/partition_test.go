package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// partitioned is how many partitions the tests of this file give the log.
const partitioned = 4

// waitSourced waits until the log holds every event of the partitions'
// streams, and returns how many that is.
func waitSourced(t testing.TB, js jetstream.JetStream, n int) uint64 {
	t.Helper()
	var total uint64
	for p := range n {
		s, err := js.Stream(natstest.Context(t), events.PartitionStream(p, n))
		if err != nil {
			t.Fatal(err)
		}
		total += s.CachedInfo().State.Msgs
	}
	log, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the log to source every partition's events", func() bool {
		info, err := log.Info(natstest.Context(t))
		return err == nil && info.State.Msgs == total
	})
	return total
}

// TestPartitionedLog runs the log in partitions: each contact's events go to
// its partition's stream alone, the log sources them all in one order, every
// contact's chain holds there, the feed is derived from it, and a contact's
// own positions (a set's seq, self's min_seq, expect_seq) are sequences of its
// partition. The count is kept: a restart finds it, another count is refused.
func TestPartitionedLog(t *testing.T) {
	dir := t.TempDir()
	e := enginetest.Start(t, dir, engine.Options{Streams: engine.StreamOptions{Partitions: partitioned}})
	if n := len(e.Writers()); n != partitioned {
		t.Fatalf("the engine has %d writers, want one a partition (%d)", n, partitioned)
	}
	c, js, ctx := e.Client(t), e.JetStream(t), natstest.Context(t)
	rng := rand.New(rand.NewPCG(19, 4))
	lasts := map[string]client.SetResult{} // each contact's last change
	for range 400 {
		contact := fmt.Sprintf("c%d", rng.IntN(40))
		res, err := c.Set(ctx, client.SetRequest{Contact: contact, Status: enginetest.Mixed[rng.IntN(len(enginetest.Mixed))]})
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed {
			lasts[contact] = res
		}
	}

	perPartition := map[int]int{}
	for p := range partitioned {
		for _, m := range natstest.ReadStream(t, js, events.PartitionStream(p, partitioned)) {
			ev, err := events.DecodeEvent(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			if got := events.Partition(ev.Contact, partitioned); got != p || m.Subject() != events.PartitionSubject(ev.Contact, partitioned) {
				t.Fatalf("partition %d's stream holds an event of %s (partition %d) on %s", p, ev.Contact, got, m.Subject())
			}
			perPartition[p]++
		}
	}
	if len(perPartition) != partitioned {
		t.Fatalf("events in %d partitions, want all %d: %v", len(perPartition), partitioned, perPartition)
	}
	total := waitSourced(t, js, partitioned)
	log := enginetest.ReadLog(t, js)
	if uint64(len(log)) != total {
		t.Fatalf("the log holds %d events, the partitions %d", len(log), total)
	}
	enginetest.CheckChains(t, log)
	e.WaitFeed(t)
	if got, want := enginetest.ReadFeed(t, js), enginetest.WantFeed(log); !reflect.DeepEqual(got, want) {
		t.Fatalf("feed:\n got %v\nwant %v", got, want)
	}
	if r, err := e.Verify(ctx, nil); err != nil || !r.OK() {
		t.Fatalf("verify of a partitioned log: %+v, %v", r, err)
	}

	for contact, res := range lasts {
		self, err := c.Self(ctx, contact, res.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if self.Status != res.Status || self.Seq != res.Seq {
			t.Fatalf("self of %s with min_seq %d: %s at seq %d, want %s at %d", contact, res.Seq, self.Status, self.Seq, res.Status, res.Seq)
		}
		stale := res.Seq - 1
		_, err = c.Set(ctx, client.SetRequest{Contact: contact, Status: events.DoNotDisturb, ExpectSeq: &stale})
		if !errors.Is(err, client.ErrConflict) {
			t.Fatalf("set of %s expecting seq %d (its last is %d): %v, want a conflict", contact, stale, res.Seq, err)
		}
		if _, err := c.Set(ctx, client.SetRequest{Contact: contact, Status: events.DoNotDisturb, ExpectSeq: &res.Seq}); err != nil {
			t.Fatalf("set of %s expecting its last seq %d: %v", contact, res.Seq, err)
		}
	}

	e.Stop(t)
	if _, err := engine.Open(dir, engine.Options{Listen: "127.0.0.1:0", Streams: engine.StreamOptions{Partitions: 2}}); err == nil ||
		!strings.Contains(err.Error(), "partitions 2: the log has 4, fixed when it was created") {
		t.Fatalf("open with 2 partitions a log of 4: %v, want it refused, naming both", err)
	}
	again := enginetest.Start(t, dir, engine.Options{})
	if n := len(again.Writers()); n != partitioned {
		t.Fatalf("restarted, the engine has %d writers, want the log's %d partitions", n, partitioned)
	}
	res, err := again.Client(t).Set(ctx, client.SetRequest{Contact: "c0", Status: events.Online})
	if err != nil || !res.Changed {
		t.Fatalf("set after the restart: %+v, %v", res, err)
	}
	waitSourced(t, again.JetStream(t), partitioned)
	enginetest.CheckChains(t, enginetest.ReadLog(t, again.JetStream(t)))
}

// TestTwoEnginesOnAPartitionedLog: with the log in partitions, two engines
// share them out, half each, the first started handing the second its half
// while sets come in (each handed over once its appends are answered); sets
// reach each contact's partition's owner through either engine, every
// acknowledged change is in its partition's stream at the seq it was
// answered with, the chains hold in the log; when one engine stops, the other
// takes every partition over and the sets go on.
func TestTwoEnginesOnAPartitionedLog(t *testing.T) {
	s := natstest.Start(t)
	opts := engine.Options{NATSURL: s.ClientURL(), Streams: engine.StreamOptions{Partitions: partitioned}}
	a := enginetest.Start(t, "", opts)
	const clients, sets = 6, 300
	var (
		mu    sync.Mutex
		acked []client.SetResult
		wg    sync.WaitGroup
	)
	var b *enginetest.Running
	started := make(chan struct{})
	for i := range clients {
		c := client.New(natstest.Connect(t, s))
		wg.Go(func() {
			<-started
			rng := rand.New(rand.NewPCG(uint64(i), 19))
			for range sets {
				res, err := c.Set(context.Background(), client.SetRequest{Contact: fmt.Sprintf("c%d", rng.IntN(12)),
					Status: enginetest.Mixed[rng.IntN(len(enginetest.Mixed))]})
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				mu.Lock()
				acked = append(acked, res)
				mu.Unlock()
			}
		})
	}
	close(started)
	b = enginetest.Start(t, "", opts)
	natstest.WaitFor(t, "each engine to own half the partitions", func() bool {
		return a.Metrics().Writer.Owned == partitioned/2 && b.Metrics().Writer.Owned == partitioned/2
	})
	wg.Wait()
	js := a.JetStream(t)
	stored := map[string]events.Event{} // by partition and seq
	for p := range partitioned {
		for _, m := range natstest.ReadStream(t, js, events.PartitionStream(p, partitioned)) {
			md, _ := m.Metadata()
			ev, err := events.DecodeEvent(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			stored[fmt.Sprint(p, "/", md.Sequence.Stream)] = ev
		}
	}
	changed := 0
	for _, res := range acked {
		if !res.Changed {
			continue
		}
		changed++
		key := fmt.Sprint(events.Partition(res.Contact, partitioned), "/", res.Seq)
		if ev, ok := stored[key]; !ok || ev.Contact != res.Contact || ev.Status != res.Status || ev.Previous != res.Previous {
			t.Errorf("acknowledged %+v, partition/seq %s holds %+v (present: %v)", res, key, ev, ok)
		}
	}
	if changed != len(stored) {
		t.Errorf("%d sets acknowledged as changes, the partitions hold %d events", changed, len(stored))
	}
	waitSourced(t, js, partitioned)
	enginetest.CheckChains(t, enginetest.ReadLog(t, js))
	if a.Metrics().Writer.PassedOn+b.Metrics().Writer.PassedOn == 0 {
		t.Error("no set was passed on to its partition's owner; want some, the service's requests going to both engines")
	}

	a.Stop(t)
	natstest.WaitFor(t, "the other engine to own every partition", func() bool { return b.Metrics().Writer.Owned == partitioned })
	c := client.New(natstest.Connect(t, s))
	for i := range 12 {
		if _, err := c.Set(natstest.Context(t), client.SetRequest{Contact: fmt.Sprintf("c%d", i), Status: events.OutToLunch}); err != nil {
			t.Fatal(err)
		}
	}
	waitSourced(t, js, partitioned)
	enginetest.CheckChains(t, enginetest.ReadLog(t, js))
}

// TestAPartitionedLogDeduplicatesInItsPartitions: the log that sources the
// partitions keeps no deduplication window of its own (a window there would
// drop an event whose message ID another had within it); each partition
// stream keeps the configured one.
func TestAPartitionedLogDeduplicatesInItsPartitions(t *testing.T) {
	e := enginetest.Start(t, "", engine.Options{Streams: engine.StreamOptions{Partitions: 2}})
	js := e.JetStream(t)
	for name, want := range map[string]time.Duration{events.LogStream: 0, events.PartitionStream(0, 2): 2 * time.Minute, events.PartitionStream(1, 2): 2 * time.Minute} {
		s, err := js.Stream(natstest.Context(t), name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Duplicates; got != want {
			t.Errorf("stream %s has a duplicate window of %s, want %s", name, got, want)
		}
	}
}

// TestAMissingPartitionIsNotMadeAnew: a partition's stream gone from a log
// that exists is refused at start, naming it, rather than made anew, empty:
// its events are gone, and a new stream numbered from 1 would not match what
// the log and the projections hold of it.
func TestAMissingPartitionIsNotMadeAnew(t *testing.T) {
	defer engine.SetMissingPartitionWait(engine.SetMissingPartitionWait(100 * time.Millisecond))
	s := natstest.Start(t)
	dir := t.TempDir()
	opts := engine.Options{NATSURL: s.ClientURL(), Streams: engine.StreamOptions{Partitions: 2}}
	e := enginetest.Start(t, dir, opts)
	if _, err := e.Client(t).Set(natstest.Context(t), client.SetRequest{Contact: "c1", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	e.Stop(t)
	_, js := natstest.JetStream(t, s)
	gone := events.PartitionStream(1, 2)
	if err := js.DeleteStream(natstest.Context(t), gone); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Open(dir, engine.Options{NATSURL: s.ClientURL(), Logger: natstest.Logger(t)}); err == nil ||
		!strings.Contains(err.Error(), "stream "+gone+", a partition of the log PRESENCE, is missing") {
		t.Fatalf("open on a log missing a partition: %v, want it refused, naming the partition", err)
	}
	if _, err := js.Stream(natstest.Context(t), gone); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the missing partition: %v, want it still missing, not made anew", err)
	}
}
