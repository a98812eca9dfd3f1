package client_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
)

// runHub runs a hub on the engine's own projection until the test ends.
func runHub(t testing.TB, r *enginetest.Running, cfg client.HubConfig) *client.Hub {
	t.Helper()
	if cfg.Conn == nil {
		cfg.Conn = r.Connect(t)
	}
	if cfg.Reader == nil {
		cfg.Reader = r.Reader()
	}
	cfg.Logger = natstest.Logger(t)
	h, err := client.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	stopped := make(chan struct{})
	var runErr error
	go func() { runErr = <-done; close(stopped) }()
	t.Cleanup(func() {
		cancel()
		<-stopped
		if runErr != nil {
			t.Errorf("hub Run: %v", runErr)
		}
	})
	select {
	case <-h.Ready():
	case <-stopped:
		t.Fatalf("hub stopped before it was ready: %v", runErr)
	}
	return h
}

// countingReader counts the reads that reach the projection.
type countingReader struct {
	client.Reader
	mu    sync.Mutex
	reads int
}

func (c *countingReader) Status(ctx context.Context, contact string, minSeq uint64) (client.Reply, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Reader.Status(ctx, contact, minSeq)
}

func TestHubHandsEveryChangeToEverySubscriber(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	reader := &countingReader{Reader: r.Reader()}
	h := runHub(t, r, client.HubConfig{Reader: reader})
	const subs = 50
	cols := make([]*collector, subs)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range cols {
		cols[i] = &collector{}
		sub := h.Subscribe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sub.Run(ctx, func(ctx context.Context, ch client.Change) error {
				cur, err := ch.Current(ctx)
				if err != nil {
					return err
				}
				cols[i].add(ch, cur)
				return nil
			})
			if err != nil {
				t.Errorf("subscriber %d: %v", i, err)
			}
		}()
	}
	enginetest.WriteRandom(t, r.Writer(), rand.New(rand.NewPCG(13, 14)), 10, 300)
	r.WaitFeed(t)
	want := feedSeqs(t, r)
	for i, col := range cols {
		natstest.WaitFor(t, fmt.Sprintf("subscriber %d to see every change", i), func() bool { return col.len() >= len(want) })
		if got := col.seqs(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("subscriber %d saw %v, want %v", i, got, want)
		}
		col.mu.Lock()
		for j, ch := range col.changes {
			if col.reads[j].Seq < ch.Seq {
				t.Errorf("subscriber %d: change at seq %d read a status as of seq %d", i, ch.Seq, col.reads[j].Seq)
			}
		}
		col.mu.Unlock()
	}
	cancel()
	wg.Wait()
	reader.mu.Lock()
	defer reader.mu.Unlock()
	if reader.reads != len(want) {
		t.Errorf("the projection was read %d times for %d changes and %d subscribers, want once per change", reader.reads, len(want), subs)
	}
	if m := h.Metrics(); m.Deliveries != uint64(subs*len(want)) || m.CutOff != 0 {
		t.Errorf("hub metrics %+v, want %d deliveries and none cut off", m, subs*len(want))
	}
}

func TestHubCutsOffASlowSubscriber(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	h := runHub(t, r, client.HubConfig{Queue: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	slow := make(chan error, 1)
	slowSub, fastSub := h.Subscribe(), h.Subscribe()
	go func() {
		slow <- slowSub.Run(ctx, func(ctx context.Context, ch client.Change) error {
			select {
			case <-release:
			case <-ctx.Done(): // cancelled when cut off
			}
			return nil
		})
	}()
	var fast collector
	fastDone := make(chan error, 1)
	go func() {
		fastDone <- fastSub.Run(ctx, func(ctx context.Context, ch client.Change) error { fast.add(ch, client.Reply{}); return nil })
	}()
	// Rounds of writes, each handled by the fast subscriber before the next:
	// the slow one's queue fills up with one batch a round.
	rng := rand.New(rand.NewPCG(15, 16))
	var want []uint64
	for range 6 {
		enginetest.WriteRandom(t, r.Writer(), rng, 10, 40)
		r.WaitFeed(t)
		want = feedSeqs(t, r)
		natstest.WaitFor(t, "the fast subscriber to catch up", func() bool { return fast.len() >= len(want) })
	}
	select {
	case err := <-slow:
		if !errors.Is(err, client.ErrSlowSubscriber) {
			t.Errorf("slow subscriber ended with %v, want ErrSlowSubscriber", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the slow subscriber was not cut off")
	}
	close(release)
	if got := fast.seqs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fast subscriber saw %v, want %v", got, want)
	}
	cancel()
	if err := <-fastDone; err != nil {
		t.Errorf("fast subscriber: %v", err)
	}
}

// TestHubDoesNotStartAtATime: a hub asked to start at a time is refused when
// made, with what it accepts, rather than failing in Run before Ready.
func TestHubDoesNotStartAtATime(t *testing.T) {
	s := natstest.Start(t)
	nc, _ := natstest.JetStream(t, s)
	_, err := client.NewHub(client.HubConfig{Conn: nc, Reader: &engine.LocalReader{}, Start: client.StartAtTime(time.Now())})
	if !errors.Is(err, client.ErrBadRequest) || !strings.Contains(err.Error(), "StartAtSeq") {
		t.Fatalf("NewHub with StartAtTime: %v; want a bad request naming the starts a hub accepts", err)
	}
}

// TestHubSubscribedAfterItStopped: a subscription made once the hub has
// stopped, having run or failed to start, ends at once, as those made before
// do, rather than wait for changes that will never come.
func TestHubSubscribedAfterItStopped(t *testing.T) {
	t.Run("having run", func(t *testing.T) {
		r := enginetest.Start(t, "", engine.Options{})
		h, err := client.NewHub(client.HubConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.Run(ctx) }()
		<-h.Ready()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("hub Run: %v", err)
		}
		subscribeAfter(t, h)
	})
	t.Run("failed to start", func(t *testing.T) {
		nc := enginetest.ConnectURL(t, natstest.Start(t).ClientURL()) // a server without the feed
		h, err := client.NewHub(client.HubConfig{Conn: nc, Reader: client.New(nc), Logger: natstest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Run(natstest.Context(t)); err == nil {
			t.Fatal("a hub ran without a feed")
		}
		subscribeAfter(t, h)
	})
}

// subscribeAfter checks that a subscription to h, which has stopped, ends at
// once with nil.
func subscribeAfter(t *testing.T, h *client.Hub) {
	t.Helper()
	ran := make(chan error, 1)
	go func() {
		ran <- h.Subscribe().Run(natstest.Context(t), func(context.Context, client.Change) error { return nil })
	}()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run of a subscription made after the hub stopped: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a subscription made after the hub stopped is still running 10s on")
	}
}
