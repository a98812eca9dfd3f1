package engine_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestOnAClusterOfThree runs three engines, each on its own server of a
// three-node JetStream cluster (streams R3), with the log in one partition and
// in three (one for each engine to own): writes through all of them keep the
// chain, the feed is exactly once, and retried requests are answered as the
// first time whichever engine they reach.
func TestOnAClusterOfThree(t *testing.T) {
	for _, partitions := range []int{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) { onAClusterOfThree(t, partitions) })
	}
}

func onAClusterOfThree(t *testing.T, partitions int) {
	servers := natstest.StartCluster(t, 3)
	var rs []*enginetest.Running
	for _, s := range servers {
		rs = append(rs, enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL(), Streams: engine.StreamOptions{Partitions: partitions}}))
	}
	js := rs[0].JetStream(t)
	names := []string{events.LogStream}
	for p := range partitions {
		names = append(names, events.PartitionStream(p, partitions))
	}
	for _, name := range names {
		st, err := js.Stream(natstest.Context(t), name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas on a cluster of three, want 3", name, got)
		}
	}
	if partitions > 1 {
		natstest.WaitFor(t, "each engine to own one partition", func() bool {
			for _, r := range rs {
				if r.Metrics().Writer.Owned != partitions/len(rs) {
					return false
				}
			}
			return true
		})
	}

	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enginetest.WriteRandom(t, r.Client(t), rand.New(rand.NewPCG(uint64(i), 21)), 4, 60)
		}()
	}
	wg.Wait()

	// A request answered through one engine's server, retried through the
	// others, after the contact changed and came back.
	ctx := natstest.Context(t)
	first, err := rs[0].Client(t).Set(ctx, client.SetRequest{Contact: "roamer", Status: events.Busy, RequestID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []events.Status{events.Away, events.Busy} {
		if _, err := rs[1].Client(t).Set(ctx, client.SetRequest{Contact: "roamer", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range rs[1:] {
		got, err := r.Client(t).Set(ctx, client.SetRequest{Contact: "roamer", Status: events.Busy, RequestID: "r-1"})
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Errorf("retry on engine %d answered %+v, want %+v", i+1, got, first)
		}
	}

	for _, r := range rs {
		r.WaitFeed(t)
	}
	log := enginetest.ReadLog(t, js)
	enginetest.CheckChains(t, log)
	checkFeed(t, js)
	for i, r := range rs {
		if m := r.Metrics().Feed; m.Purges != 0 {
			t.Errorf("engine %d purged the feed %d times on a healthy log", i, m.Purges)
		}
		if n := r.Follower().Rebuilds(); n != 0 {
			t.Errorf("engine %d rebuilt its projection %d times on a healthy log", i, n)
		}
	}
}

// TestEnginesStartedTogetherAllComeUp: engines started at the same moment on a
// fresh cluster all come up. The streams one makes have no leader for a
// moment, and what the others ask of them meanwhile goes unanswered: they ask
// again rather than wait out their start and fail. (Without that, about one
// start in five failed here with "look up stream ...: context deadline
// exceeded".)
func TestEnginesStartedTogetherAllComeUp(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := engine.Open(t.TempDir(), engine.Options{NATSURL: s.ClientURL(), Logger: natstest.Logger(t)})
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = e.Close()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("engine %d, started with the others: %v", i, err)
		}
	}
}
