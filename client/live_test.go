package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// setVisible makes n visible changes over a few contacts and returns their
// feed positions in order.
func setVisible(t *testing.T, r *enginetest.Running, n int) []uint64 {
	t.Helper()
	statuses := []events.Status{events.Online, events.Away, events.Busy}
	var seqs []uint64 // log sequences; their feed positions are returned
	for i := range n {
		res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: fmt.Sprintf("contact-%d", i%4), Status: statuses[(i/4)%len(statuses)]})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed {
			t.Fatalf("set %d changed nothing", i)
		}
		seqs = append(seqs, res.Seq)
	}
	return positionsOf(t, r, seqs...)
}

// TestLiveSubscriberNeedsNoConsumer: an ephemeral subscriber to every contact is
// handed new changes from the engine's repeats on core NATS, each once, in
// order, with a read no older than the change that the repeat carried, and
// keeps no JetStream consumer on the feed while it does.
func TestLiveSubscriberNeedsNoConsumer(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	reader := &countingBatchReader{BatchReader: r.Client(t)}
	// No check for late repeats within the test: on a loaded machine one may
	// come late, and the subscriber would read the feed, rightly.
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: r.Connect(t), Reader: reader, Logger: natstest.Logger(t), LiveCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, col.current)
	}()
	<-sub.Ready()
	want := setVisible(t, r, 40)
	natstest.WaitFor(t, "every change", func() bool { return col.len() >= len(want) })

	feed, err := r.JetStream(t).Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := feed.Info(natstest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("the feed has %d consumers while a live subscriber keeps up, want 0", info.State.Consumers)
	}
	if n := sub.CatchUps(); n != 0 {
		t.Errorf("the subscriber caught up from the feed %d times while keeping up, want 0", n)
	}
	if n := reader.count(); n != 0 {
		t.Errorf("the handler's reads went %d times to the service; the repeats carry the status", n)
	}
	cancel()
	natstest.Stopped(t, "subscriber", done)
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v", got, want)
	}
	for i, ch := range col.changes {
		if col.reads[i].Seq < ch.Seq {
			t.Errorf("change at seq %d read a status of seq %d", ch.Seq, col.reads[i].Seq)
		}
		if ch.FeedSeq != uint64(i+1) {
			t.Errorf("change %d has feed seq %d, want %d", i, ch.FeedSeq, i+1)
		}
	}
}

// TestLiveSubscriberCatchesUp: entries lost on core NATS (in the middle of a run,
// several in a row, and the last one, after which nothing comes) are read from
// the feed: every change is handed over once and in order all the same.
func TestLiveSubscriberCatchesUp(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	const n = 30
	lost := map[uint64]bool{3: true, 10: true, 11: true, 12: true, 20: true, n: true}
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t),
		LiveCheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dropped := make(chan uint64, n)
	sub.DropRepeats(func(seq uint64) bool {
		if lost[seq] {
			dropped <- seq
			return true
		}
		return false
	})
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
	}()
	<-sub.Ready()
	// One change at a time, each handed over before the next is made, so that
	// every loss happens while the subscriber follows the repeats; a run of
	// losses is made at once.
	var want []uint64
	statuses := []events.Status{events.Online, events.Away, events.Busy}
	for i := 1; i <= n; i++ {
		res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: fmt.Sprintf("contact-%d", i%4), Status: statuses[(i/4)%len(statuses)]})
		if err != nil || !res.Changed {
			t.Fatalf("set %d: %+v, %v", i, res, err)
		}
		want = append(want, res.Seq)
		if !lost[uint64(i)] {
			natstest.WaitFor(t, fmt.Sprintf("change %d", i), func() bool { return col.len() == i })
		}
	}
	natstest.WaitFor(t, "the last change, lost, and nothing after it", func() bool { return col.len() == n })
	want = positionsOf(t, r, want...)
	cancel()
	natstest.Stopped(t, "subscriber", done)
	close(dropped)
	var drops []uint64
	for seq := range dropped {
		drops = append(drops, seq)
	}
	// Not an upper bound: a repeat late on a loaded machine is caught up
	// with too.
	if n := sub.CatchUps(); n == 0 {
		t.Errorf("the subscriber never caught up from the feed, with %d entries lost", len(lost))
	}
	if len(drops) != len(lost) {
		t.Errorf("lost %v on core NATS, want all of %v lost (the test did not test)", drops, lost)
	}
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v", got, want)
	}
}

// TestLiveSubscriberStarts: where a live subscription starts, before it follows
// the repeats: at the start of the feed, or at a log sequence in the middle.
func TestLiveSubscriberStarts(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	before := setVisible(t, r, 10)
	r.WaitFeed(t)
	for _, tt := range []struct {
		name  string
		start client.Start
		skip  int
	}{
		{"all", client.StartAll(), 0},
		{"from-seq", client.StartAtSeq(before[6]), 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var col collector
			ctx, cancel := context.WithCancel(context.Background())
			sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t), Start: tt.start})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- sub.Run(ctx, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
			}()
			<-sub.Ready()
			marker, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "marker-" + tt.name, Status: events.Online})
			if err != nil {
				t.Fatal(err)
			}
			natstest.WaitFor(t, "the marker", func() bool { s := col.seqs(); return len(s) > 0 && s[len(s)-1] == marker.Seq })
			cancel()
			natstest.Stopped(t, "subscriber", done)
			want := append(slices.Clone(before[tt.skip:]), marker.Seq)
			var got []uint64 // without the markers of other runs
			for _, seq := range col.seqs() {
				if seq <= before[len(before)-1] || seq == marker.Seq {
					got = append(got, seq)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("handed %v, want %v", got, want)
			}
		})
	}
}

// TestLiveSubscriberChecksThroughRepeats: repeats of what was handed over
// already (as after a feed that went back) do not keep a subscriber from
// looking at the feed when a repeat was lost and nothing new comes.
func TestLiveSubscriberChecksThroughRepeats(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t),
		LiveCheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sub.DropRepeats(func(seq uint64) bool { return seq == 2 })
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
	}()
	<-sub.Ready()
	want := setVisible(t, r, 1)
	natstest.WaitFor(t, "the first change", func() bool { return col.len() == 1 })

	// An old repeat, again and again, while the second change's is lost.
	nc := r.Connect(t)
	stop := make(chan struct{})
	repeating := make(chan struct{})
	go func() {
		defer close(repeating)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = nc.PublishMsg(&nats.Msg{Subject: events.LivePrefix + "contact-0", Data: []byte(`{}`),
					Header: nats.Header{client.FeedSeqHeader: []string{"1"}}})
			}
		}
	}()
	res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "contact-0", Status: events.Away})
	if err != nil || !res.Changed {
		t.Fatalf("second set: %+v, %v", res, err)
	}
	want = append(want, positionsOf(t, r, res.Seq)...)
	natstest.WaitFor(t, "the second change, its repeat lost among old ones", func() bool { return col.len() == 2 })
	close(stop)
	<-repeating
	cancel()
	natstest.Stopped(t, "subscriber", done)
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v", got, want)
	}
}

// runUntilError runs sub, collecting what it hands over, and returns Run's
// result.
func runUntilError(t *testing.T, sub *client.Subscriber, col *collector) <-chan error {
	t.Helper()
	_, done := runCollecting(t, sub, col)
	return done
}

// runCollecting runs sub into col until the test ends or the returned cancel
// is called, once it is ready; the channel gets Run's result.
func runCollecting(t *testing.T, sub *client.Subscriber, col *collector) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
	}()
	select {
	case <-sub.Ready():
	case err := <-done:
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	return cancel, done
}

// wantWentBack waits for Run to end with ErrFeedWentBack.
func wantWentBack(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrFeedWentBack) {
			t.Errorf("%s: Run returned %v, want ErrFeedWentBack", what, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: still running 20s after the feed went back", what)
	}
}

// TestSubscriberSeesTheFeedGoBack: when the engine derives the feed again (the
// log was restored from an older copy, or recreated, or the engine upgraded
// from entries of version 1), it deletes the feed and creates it again, so
// that its sequences stay feed positions. An ephemeral subscription says so
// (ErrFeedWentBack) instead of handing over what the feed now holds as if it
// followed what it was handed, through the repeats, from a consumer, durable
// (its consumer went with the feed) and through a hub: when the engine
// derived the same changes again at the same positions, and when the feed
// holds other changes.
func TestSubscriberSeesTheFeedGoBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		// goBack makes the feed be created again, as the engine does when
		// it derives it again; next is the feed sequence the subscribers
		// expect next.
		goBack func(t *testing.T, r *enginetest.Running, js jetstream.JetStream, next uint64)
	}{
		{"derived again by the engine", func(t *testing.T, r *enginetest.Running, js jetstream.JetStream, _ uint64) {
			// The feed deleted: the engine finds it missing at its next
			// entry, creates it and derives it again from the log's
			// start, the same entries at the same positions, and more.
			if err := js.DeleteStream(natstest.Context(t), events.FeedStream); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "after", Status: events.Online}); err != nil {
				t.Fatal(err)
			}
			natstest.WaitFor(t, "the engine to derive the feed again", func() bool {
				feed, err := js.Stream(natstest.Context(t), events.FeedStream)
				return err == nil && feed.CachedInfo().State.Msgs >= 6
			})
		}},
		{"created again with other changes", func(t *testing.T, _ *enginetest.Running, js jetstream.JetStream, next uint64) {
			// Derived from a log recreated and grown again: as many
			// entries as before and more, of other changes.
			if err := js.DeleteStream(natstest.Context(t), events.FeedStream); err != nil {
				t.Fatal(err)
			}
			if err := engine.EnsureStreams(natstest.Context(t), js, engine.StreamOptions{}, natstest.Logger(t)); err != nil {
				t.Fatal(err)
			}
			for range next {
				c := events.Change{Contact: "other", Previous: events.Unknown, At: time.Now().UTC()}
				if _, err := js.Publish(natstest.Context(t), events.ChangeSubject(c.Contact), c.Encode()); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := enginetest.Start(t, "", engine.Options{})
			subs := map[string]client.SubscriberConfig{
				"live":     {LiveCheck: 20 * time.Millisecond},
				"consumer": {LiveCheck: -1},
				"durable":  {Durable: "goes-back"}, // its consumer goes with the feed
			}
			cols := map[string]*collector{}
			dones := map[string]<-chan error{}
			for name, cfg := range subs {
				cfg.Conn, cfg.Reader, cfg.Logger = r.Connect(t), r.Reader(), natstest.Logger(t)
				sub, err := client.NewSubscriber(cfg)
				if err != nil {
					t.Fatal(err)
				}
				cols[name] = &collector{}
				dones[name] = runUntilError(t, sub, cols[name])
			}
			{
				hub, err := client.NewHub(client.HubConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t)})
				if err != nil {
					t.Fatal(err)
				}
				col, hs := &collector{}, hub.Subscribe()
				hctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				go func() {
					_ = hs.Run(hctx, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
				}()
				done := make(chan error, 1)
				go func() { done <- hub.Run(hctx) }()
				<-hub.Ready()
				cols["hub"], dones["hub"] = col, done
			}
			want := setVisible(t, r, 5)
			for name, col := range cols {
				natstest.WaitFor(t, name+" to be handed every change", func() bool { return col.len() == len(want) })
			}
			js := r.JetStream(t)
			tc.goBack(t, r, js, uint64(len(want)+1))
			for name, done := range dones {
				wantWentBack(t, name, done)
				if got := cols[name].seqs(); !slices.Equal(got, want) {
					t.Errorf("%s was handed %v, want %v and nothing after", name, got, want)
				}
			}
		})
	}
}

// TestSubscriberStartsAtATimeToCome: a subscription asked to start at a time
// still to come is handed the changes from that time on, not those made
// between its start and that time: on an empty feed, where there is nothing
// stored to start a consumer at, and on a feed that holds no entry from that
// time yet, where the consumer starts at the feed's end; live, from a
// consumer and durable.
func TestSubscriberStartsAtATimeToCome(t *testing.T) {
	for _, feed := range []string{"empty", "not empty"} {
		for name, cfg := range map[string]client.SubscriberConfig{
			"live":     {},
			"consumer": {LiveCheck: -1},
			"durable":  {Durable: "from-then"},
		} {
			t.Run(feed+"/"+name, func(t *testing.T) {
				t.Parallel()
				r := enginetest.Start(t, "", engine.Options{})
				set := func(contact string) {
					if _, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: contact, Status: events.Online}); err != nil {
						t.Fatal(err)
					}
				}
				if feed == "not empty" {
					for i := range 3 {
						set(fmt.Sprintf("before-%d", i))
					}
					r.WaitFeed(t)
				}
				// Long enough for the subscription to start twice and the
				// early changes to be made before it, on a loaded machine.
				from := time.Now().Add(4 * time.Second)
				var col collector
				cfg.Conn, cfg.Reader, cfg.Logger, cfg.Start = r.Connect(t), r.Reader(), natstest.Logger(t), client.StartAtTime(from)
				run := func() (context.CancelFunc, <-chan error) {
					sub, err := client.NewSubscriber(cfg)
					if err != nil {
						t.Fatal(err)
					}
					return runCollecting(t, sub, &col)
				}
				// Stopped and run again before the time: a durable then
				// resumes its consumer, which must still step over them.
				stop, done := run()
				for i := range 2 {
					set(fmt.Sprintf("early-%d", i))
				}
				r.WaitFeed(t)
				stop()
				natstest.Stopped(t, "subscriber", done)
				_, done = run()
				for i := 2; i < 4; i++ {
					set(fmt.Sprintf("early-%d", i))
				}
				if time.Now().After(from) {
					t.Fatalf("the early changes were made after the time to start at: the machine is too slow for this test")
				}
				natstest.WaitFor(t, "the time to start at", func() bool { return time.Now().After(from) })
				for i := range 4 {
					set(fmt.Sprintf("late-%d", i))
				}
				r.WaitFeed(t)
				var want []uint64
				early := 0
				for _, f := range enginetest.ReadFeed(t, r.JetStream(t)) {
					if f.Change.At.Before(from) {
						early++
					} else {
						want = append(want, f.FeedSeq)
					}
				}
				if early == 0 || len(want) == 0 {
					t.Fatalf("%d changes made before the time to start at and %d after: the test needs both", early, len(want))
				}
				natstest.WaitFor(t, "the changes after the time to start at", func() bool { return col.len() >= len(want) })
				if got := col.seqs(); !slices.Equal(got, want) {
					t.Errorf("handed %v, want %v (the changes at or after %s)", got, want, from.Format(time.RFC3339Nano))
				}
				select {
				case err := <-done:
					t.Fatalf("Run ended: %v", err)
				default:
				}
			})
		}
	}
}

// TestDurableStartedAtATimeStepsOverOnlyUntilThen: a durable made to start at
// a time still to come, run again once it has handed a change from that time
// on, steps over nothing more: a change stamped earlier (another engine's clock
// behind) is handed like any other.
func TestDurableStartedAtATimeStepsOverOnlyUntilThen(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	from := time.Now().Add(time.Second)
	var col collector
	cfg := client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t), Durable: "from-then", Start: client.StartAtTime(from)}
	ctx, cancel := context.WithCancel(context.Background())
	done := runSubscriber(t, ctx, cfg, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
	natstest.WaitFor(t, "the time to start at", func() bool { return time.Now().After(from) })
	late, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "late", Status: events.Online})
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the change after the time to start at", func() bool { return col.len() == 1 })
	cancel()
	natstest.Stopped(t, "subscriber", done)

	behind := &enginetest.LogWriter{JS: r.JetStream(t), Now: func() time.Time { return from.Add(-time.Minute) }}
	want := []uint64{late.Seq} // log sequences, compared as feed positions
	// Twice: the second time, the last change the durable acknowledged is
	// one stamped before the start time itself.
	for i := range 2 {
		if i == 0 {
			after, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: "after", Status: events.Busy})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, after.Seq)
		}
		skewed, err := behind.Set(natstest.Context(t), client.SetRequest{Contact: fmt.Sprintf("skewed-%d", i), Status: events.Away})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, skewed.Seq)
		ctx, cancel := context.WithCancel(context.Background())
		done := runSubscriber(t, ctx, cfg, func(ctx context.Context, ch client.Change) error { col.add(ch, client.Reply{}); return nil })
		r.WaitFeed(t)
		last := positionsOf(t, r, want[len(want)-1])[0]
		natstest.WaitFor(t, "the changes since the restart (one stamped before the start time stepped over?)", func() bool { s := col.seqs(); return len(s) > 0 && s[len(s)-1] == last })
		cancel()
		natstest.Stopped(t, "subscriber", done)
	}
	want = positionsOf(t, r, want...)
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v: run again, the durable stepped over a change stamped before its start time "+
			"after it had handed one from then on", got, want)
	}
}

// TestDurableEndsWhenTheFeedIsDeleted: a durable whose feed is deleted, and not
// made again, ends with ErrFeedWentBack once that has lasted, instead of
// fetching from a consumer that is gone for ever.
func TestDurableEndsWhenTheFeedIsDeleted(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t), Durable: "deleted"})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetFeedWindow(300 * time.Millisecond)
	var col collector
	done := runUntilError(t, sub, &col)
	want := setVisible(t, r, 3)
	natstest.WaitFor(t, "the durable to be handed every change", func() bool { return col.len() == len(want) })
	if err := r.JetStream(t).DeleteStream(natstest.Context(t), events.FeedStream); err != nil {
		t.Fatal(err)
	}
	wantWentBack(t, "durable", done)
}

// TestCaughtUpSubscriberLeavesNoConsumer: a subscriber of every contact that
// starts earlier reads the feed with a consumer to catch up, and deletes that
// consumer once it has: live, it keeps none on the server.
func TestCaughtUpSubscriberLeavesNoConsumer(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	want := setVisible(t, r, 12)
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Client(t), Logger: natstest.Logger(t),
		Start: client.StartAll(), LiveCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, col.current)
	}()
	natstest.WaitFor(t, "the changes from before", func() bool { return col.len() >= len(want) })
	<-sub.Ready()
	want = append(want, setVisible(t, r, 8)...)
	natstest.WaitFor(t, "the changes after", func() bool { return col.len() >= len(want) })

	feed, err := r.JetStream(t).Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := feed.Info(natstest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("the feed has %d consumers once the subscriber caught up, want 0", info.State.Consumers)
	}
	cancel()
	natstest.Stopped(t, "subscriber", done)
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v", got, want)
	}
}

// countingBatchReader counts what reaches the service.
type countingBatchReader struct {
	client.BatchReader
	mu    sync.Mutex
	calls int
}

func (c *countingBatchReader) Status(ctx context.Context, contact string, minSeq uint64) (client.Reply, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.BatchReader.Status(ctx, contact, minSeq)
}

func (c *countingBatchReader) Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]client.Reply, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.BatchReader.Statuses(ctx, contacts, minSeq)
}

func (c *countingBatchReader) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}
