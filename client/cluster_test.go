package client_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestSubscribersGoOnThroughFeedLeaderChanges: on a cluster of three, the
// feed's leader steps down again and again while changes are made; live,
// consumer and durable subscriptions go on, each handed every change once, in
// order, and none takes an election for a feed that went back (ordered
// consumers made again, feed reads during an election). A step-down here does
// not make a replica answer without a leader: that case is not reproduced.
func TestSubscribersGoOnThroughFeedLeaderChanges(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	r := enginetest.Start(t, "", engine.Options{NATSURL: servers[0].ClientURL()})
	subs := map[string]client.SubscriberConfig{
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
		cfg.Reader, cfg.Logger = r.Reader(), natstest.Logger(t)
		sub, err := client.NewSubscriber(cfg)
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
			res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: fmt.Sprintf("c%d", j), Status: statuses[round]})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, res.Seq)
		}
		// Only the leader answers: during the last election, nobody does.
		natstest.WaitFor(t, "the feed's leader to step down", func() bool {
			msg, err := admin.Request("$JS.API.STREAM.LEADER.STEPDOWN."+events.FeedStream, nil, 2*time.Second)
			return err == nil && strings.Contains(string(msg.Data), `"success":true`)
		})
	}
	want = positionsOf(t, r, want...)
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
