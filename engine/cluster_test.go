package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestOnAClusterOfThree runs three engines, each on its own server of a
// three-node JetStream cluster (streams R3): writes through all of them keep the
// chain, the feed is exactly once, and retried requests are answered as the
// first time whichever engine they reach.
func TestOnAClusterOfThree(t *testing.T) {
	servers := clusterOfThree(t)
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

// clusterOfThree starts a three-node JetStream cluster, or skips the test with
// -short.
func clusterOfThree(t *testing.T) []*server.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts a three-node cluster")
	}
	return natstest.StartCluster(t, 3)
}

// TestSubscribersGoOnThroughFeedLeaderChanges: on a cluster of three, the
// feed's leader steps down again and again while changes are made; live,
// consumer and durable subscriptions go on, each handed every change once, in
// order, and none takes an election for a feed that went back (ordered
// consumers made again, feed reads during an election). A step-down here does
// not make a replica answer without a leader: that case is not reproduced.
func TestSubscribersGoOnThroughFeedLeaderChanges(t *testing.T) {
	servers := clusterOfThree(t)
	r := startEngine(t, "", Options{NATSURL: servers[0].ClientURL()})
	subs := map[string]SubscriberConfig{
		"live":     {LiveCheck: 20 * time.Millisecond},
		"consumer": {LiveCheck: -1},
		"durable":  {Durable: "through-elections"},
	}
	cols := map[string]*collector{}
	dones := map[string]<-chan error{}
	i := 0
	for name, cfg := range subs {
		i++
		cfg.Conn = natstest.Connect(t, servers[i%len(servers)])
		cfg.Reader, cfg.Logger = r.Reader(), testLogger(t)
		sub, err := NewSubscriber(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cols[name] = &collector{}
		dones[name] = runUntilError(t, sub, cols[name])
	}
	admin := natstest.Connect(t, servers[2])
	var want []uint64
	statuses := []events.Status{events.Online, events.Away, events.Busy}
	for round := range 3 {
		for j := range 5 {
			res, err := r.Writer().Set(ctxT(t), SetRequest{Contact: fmt.Sprintf("c%d", j), Status: statuses[round]})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, res.Seq)
		}
		// Only the leader answers: during the last election, nobody does.
		waitFor(t, "the feed's leader to step down", func() bool {
			msg, err := admin.Request("$JS.API.STREAM.LEADER.STEPDOWN."+FeedStream, nil, 2*time.Second)
			return err == nil && strings.Contains(string(msg.Data), `"success":true`)
		})
	}
	for name, col := range cols {
		deadline := time.Now().Add(60 * time.Second)
		for col.len() < len(want) && time.Now().Before(deadline) {
			select {
			case err := <-dones[name]:
				t.Fatalf("%s ended through the elections: %v", name, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if got := col.seqs(); !slices.Equal(got, want) {
			t.Errorf("%s was handed %v, want %v", name, got, want)
		}
	}
	for name, done := range dones {
		select {
		case err := <-done:
			t.Errorf("%s ended: %v", name, err)
		default:
		}
	}
}
