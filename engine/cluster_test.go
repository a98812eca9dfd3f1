package engine

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestOnAClusterOfThree runs three engines, each on its own server of a
// three-node JetStream cluster (streams R3): writes through all of them keep the
// chain, the feed is exactly once, and retried requests are answered as the
// first time whichever engine they reach.
func TestOnAClusterOfThree(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a three-node cluster")
	}
	servers := natstest.StartCluster(t, 3)
	var rs []*running
	for _, s := range servers {
		rs = append(rs, startEngine(t, "", Options{NATSURL: s.ClientURL()}))
	}
	js := rs[0].jetStream(t)
	st, err := js.Stream(ctxT(t), LogStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Replicas; got != 3 {
		t.Errorf("log has %d replicas on a cluster of three, want 3", got)
	}

	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeRandom(t, r.Writer(), rand.New(rand.NewPCG(uint64(i), 21)), 4, 60)
		}()
	}
	wg.Wait()

	// A request answered on one engine, retried on the others, after the
	// contact changed and came back.
	ctx := ctxT(t)
	first, err := rs[0].Writer().Set(ctx, SetRequest{Contact: "roamer", Status: events.Busy, RequestID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []events.Status{events.Away, events.Busy} {
		if _, err := rs[1].Writer().Set(ctx, SetRequest{Contact: "roamer", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range rs[1:] {
		got, err := r.Writer().Set(ctx, SetRequest{Contact: "roamer", Status: events.Busy, RequestID: "r-1"})
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Errorf("retry on engine %d answered %+v, want %+v", i+1, got, first)
		}
	}

	for _, r := range rs {
		r.waitFeed(t)
	}
	log := readLog(t, js)
	checkChains(t, log)
	checkFeed(t, js)
	for i, r := range rs {
		if m := r.Feed().Metrics(); m.Purges != 0 {
			t.Errorf("engine %d purged the feed %d times on a healthy log", i, m.Purges)
		}
		if n := r.Follower().Rebuilds(); n != 0 {
			t.Errorf("engine %d rebuilt its projection %d times on a healthy log", i, n)
		}
	}
}
