package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// setVisible makes n visible changes over a few contacts and returns their log
// sequences in order.
func setVisible(t *testing.T, r *running, n int) []uint64 {
	t.Helper()
	statuses := []events.Status{events.Online, events.Away, events.Busy}
	var seqs []uint64
	for i := range n {
		res, err := r.Writer().Set(ctxT(t), SetRequest{Contact: fmt.Sprintf("contact-%d", i%4), Status: statuses[(i/4)%len(statuses)]})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed {
			t.Fatalf("set %d changed nothing", i)
		}
		seqs = append(seqs, res.Seq)
	}
	return seqs
}

// TestLiveSubscriberNeedsNoConsumer: an ephemeral subscriber to every contact is
// handed new changes from the engine's repeats on core NATS, each once, in
// order, with a read no older than the change that the repeat carried, and
// keeps no JetStream consumer on the feed while it does.
func TestLiveSubscriberNeedsNoConsumer(t *testing.T) {
	r := startEngine(t, "", Options{})
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	reader := &countingBatchReader{BatchReader: r.client(t)}
	// No check for late repeats within the test: on a loaded machine one may
	// come late, and the subscriber would read the feed, rightly.
	sub, err := NewSubscriber(SubscriberConfig{Conn: r.connect(t), Reader: reader, Logger: testLogger(t), LiveCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch Change) error {
			cur, err := ch.Current(ctx)
			if err != nil {
				return err
			}
			col.add(ch, cur)
			return nil
		})
	}()
	<-sub.Ready()
	want := setVisible(t, r, 40)
	waitFor(t, "every change", func() bool { return col.len() >= len(want) })

	feed, err := r.jetStream(t).Stream(ctxT(t), FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := feed.Info(ctxT(t))
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
	wait(t, done)
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
	r := startEngine(t, "", Options{})
	const n = 30
	lost := map[uint64]bool{3: true, 10: true, 11: true, 12: true, 20: true, n: true}
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := NewSubscriber(SubscriberConfig{Conn: r.connect(t), Reader: r.Reader(), Logger: testLogger(t),
		LiveCheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dropped := make(chan uint64, n)
	sub.dropLive = func(seq uint64) bool {
		if lost[seq] {
			dropped <- seq
			return true
		}
		return false
	}
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch Change) error { col.add(ch, Reply{}); return nil })
	}()
	<-sub.Ready()
	// One change at a time, each handed over before the next is made, so that
	// every loss happens while the subscriber follows the repeats; a run of
	// losses is made at once.
	var want []uint64
	statuses := []events.Status{events.Online, events.Away, events.Busy}
	for i := 1; i <= n; i++ {
		res, err := r.Writer().Set(ctxT(t), SetRequest{Contact: fmt.Sprintf("contact-%d", i%4), Status: statuses[(i/4)%len(statuses)]})
		if err != nil || !res.Changed {
			t.Fatalf("set %d: %+v, %v", i, res, err)
		}
		want = append(want, res.Seq)
		if !lost[uint64(i)] {
			waitFor(t, fmt.Sprintf("change %d", i), func() bool { return col.len() == i })
		}
	}
	waitFor(t, "the last change, lost, and nothing after it", func() bool { return col.len() == n })
	cancel()
	wait(t, done)
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
	r := startEngine(t, "", Options{})
	before := setVisible(t, r, 10)
	r.waitFeed(t)
	for _, tt := range []struct {
		name  string
		start Start
		skip  int
	}{
		{"all", StartAll(), 0},
		{"from-seq", StartAtSeq(before[6]), 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var col collector
			ctx, cancel := context.WithCancel(context.Background())
			sub, err := NewSubscriber(SubscriberConfig{Conn: r.connect(t), Reader: r.Reader(), Logger: testLogger(t), Start: tt.start})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- sub.Run(ctx, func(ctx context.Context, ch Change) error { col.add(ch, Reply{}); return nil })
			}()
			<-sub.Ready()
			marker, err := r.Writer().Set(ctxT(t), SetRequest{Contact: "marker-" + tt.name, Status: events.Online})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the marker", func() bool { s := col.seqs(); return len(s) > 0 && s[len(s)-1] == marker.Seq })
			cancel()
			wait(t, done)
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
	r := startEngine(t, "", Options{})
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := NewSubscriber(SubscriberConfig{Conn: r.connect(t), Reader: r.Reader(), Logger: testLogger(t),
		LiveCheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sub.dropLive = func(seq uint64) bool { return seq == 2 }
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch Change) error { col.add(ch, Reply{}); return nil })
	}()
	<-sub.Ready()
	want := setVisible(t, r, 1)
	waitFor(t, "the first change", func() bool { return col.len() == 1 })

	// An old repeat, again and again, while the second change's is lost.
	nc := r.connect(t)
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
				_ = nc.PublishMsg(&nats.Msg{Subject: LivePrefix + "contact-0", Data: []byte(`{}`),
					Header: nats.Header{FeedSeqHeader: []string{"1"}}})
			}
		}
	}()
	res, err := r.Writer().Set(ctxT(t), SetRequest{Contact: "contact-0", Status: events.Away})
	if err != nil || !res.Changed {
		t.Fatalf("second set: %+v, %v", res, err)
	}
	want = append(want, res.Seq)
	waitFor(t, "the second change, its repeat lost among old ones", func() bool { return col.len() == 2 })
	close(stop)
	<-repeating
	cancel()
	wait(t, done)
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v", got, want)
	}
}

// stalledReader never answers within its caller's deadline: a projection
// that does not move.
type stalledReader struct{}

func (stalledReader) Status(ctx context.Context, _ string, _ uint64) (Reply, error) {
	<-ctx.Done()
	return Reply{}, ctx.Err()
}

// TestFeedIsNotHeldUpByItsRepeats: when the status its repeats carry cannot
// be read (the projection stalled), the feed still derives every entry at its
// own pace; the repeats it cannot keep up with are dropped (and counted), and
// those it makes carry no status.
func TestFeedIsNotHeldUpByItsRepeats(t *testing.T) {
	s := natstest.Start(t)
	nc, js := natstest.JetStream(t, s)
	if err := EnsureStreams(ctxT(t), js, StreamOptions{}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	const n = 60
	var last uint64
	for i := range n {
		e := events.Event{Contact: fmt.Sprintf("c%d", i), Status: events.Online, Previous: events.Unknown,
			At: time.Now().UTC(), Cause: events.CauseUser}
		ack, err := js.Publish(ctxT(t), events.EventSubject(e.Contact), e.Encode())
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	repeats, err := nc.SubscribeSync(LivePrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFeed(FeedConfig{Conn: nc, Logger: testLogger(t), MaxInFlight: 4, Current: stalledReader{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	waitFor(t, fmt.Sprintf("the feed to hold all %d entries", n), func() bool { return f.Position() == last })
	m := f.Metrics()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.Published != n || m.RepeatsDropped == 0 {
		t.Errorf("published %d entries and dropped %d repeats; want %d published, and repeats dropped", m.Published, m.RepeatsDropped, n)
	}
	msg, err := repeats.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no repeat at all: %v", err)
	}
	if h := msg.Header.Get(CurrentHeader); h != "" {
		t.Errorf("a repeat carries status %s that could not be read", h)
	}
	checkFeed(t, js)
}

// runUntilError runs sub, collecting what it hands over, and returns Run's
// result.
func runUntilError(t *testing.T, sub *Subscriber, col *collector) <-chan error {
	t.Helper()
	_, done := runCollecting(t, sub, col)
	return done
}

// runCollecting runs sub into col until the test ends or the returned cancel
// is called, once it is ready; the channel gets Run's result.
func runCollecting(t *testing.T, sub *Subscriber, col *collector) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch Change) error { col.add(ch, Reply{}); return nil })
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
		if !errors.Is(err, ErrFeedWentBack) {
			t.Errorf("%s: Run returned %v, want ErrFeedWentBack", what, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: still running 20s after the feed went back", what)
	}
}

// TestSubscriberSeesTheFeedGoBack: when the engine derives the feed again (the
// log was restored from an older copy, or recreated), an ephemeral subscription
// says so (ErrFeedWentBack) instead of handing over what the feed now holds as
// if it followed what it was handed: through the repeats, from a consumer and
// through a hub, when the feed was purged and when it was created again.
func TestSubscriberSeesTheFeedGoBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		// goBack makes the feed hold other changes than before, as after a
		// log restored or recreated; next is the feed sequence the
		// subscribers expect next.
		goBack func(t *testing.T, js jetstream.JetStream, feed jetstream.Stream, next uint64)
	}{
		{"purged", func(t *testing.T, js jetstream.JetStream, feed jetstream.Stream, _ uint64) {
			// Derived again from the start of a log restored from a copy:
			// the first change comes again.
			first, err := feed.GetMsg(ctxT(t), 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := feed.Purge(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctxT(t), first.Subject, first.Data); err != nil {
				t.Fatal(err)
			}
		}},
		{"created again", func(t *testing.T, js jetstream.JetStream, _ jetstream.Stream, next uint64) {
			// Derived from a log recreated and grown again: as many
			// entries as before and more, of other changes.
			if err := js.DeleteStream(ctxT(t), FeedStream); err != nil {
				t.Fatal(err)
			}
			if err := EnsureStreams(ctxT(t), js, StreamOptions{}, testLogger(t)); err != nil {
				t.Fatal(err)
			}
			for i := range next {
				c := events.Change{Contact: "other", Previous: events.Unknown, Seq: 1000 + i, At: time.Now().UTC()}
				if _, err := js.Publish(ctxT(t), events.ChangeSubject(c.Contact), c.Encode()); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startEngine(t, "", Options{})
			subs := map[string]SubscriberConfig{
				"live":     {LiveCheck: 20 * time.Millisecond},
				"consumer": {LiveCheck: -1},
			}
			if tc.name == "created again" {
				// A durable goes on after its acked position on a feed
				// purged (the README says so), but its consumer goes with
				// a feed deleted.
				subs["durable"] = SubscriberConfig{Durable: "goes-back"}
			}
			cols := map[string]*collector{}
			dones := map[string]<-chan error{}
			for name, cfg := range subs {
				cfg.Conn, cfg.Reader, cfg.Logger = r.connect(t), r.Reader(), testLogger(t)
				sub, err := NewSubscriber(cfg)
				if err != nil {
					t.Fatal(err)
				}
				cols[name] = &collector{}
				dones[name] = runUntilError(t, sub, cols[name])
			}
			{
				hub, err := NewHub(HubConfig{Conn: r.connect(t), Reader: r.Reader(), Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				col, hs := &collector{}, hub.Subscribe()
				hctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				go func() {
					_ = hs.Run(hctx, func(ctx context.Context, ch Change) error { col.add(ch, Reply{}); return nil })
				}()
				done := make(chan error, 1)
				go func() { done <- hub.Run(hctx) }()
				<-hub.Ready()
				cols["hub"], dones["hub"] = col, done
			}
			want := setVisible(t, r, 5)
			for name, col := range cols {
				waitFor(t, name+" to be handed every change", func() bool { return col.len() == len(want) })
			}
			js := r.jetStream(t)
			feed, err := js.Stream(ctxT(t), FeedStream)
			if err != nil {
				t.Fatal(err)
			}
			tc.goBack(t, js, feed, uint64(len(want)+1))
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
		for name, cfg := range map[string]SubscriberConfig{
			"live":     {},
			"consumer": {LiveCheck: -1},
			"durable":  {Durable: "from-then"},
		} {
			t.Run(feed+"/"+name, func(t *testing.T) {
				t.Parallel()
				r := startEngine(t, "", Options{})
				set := func(contact string) {
					if _, err := r.Writer().Set(ctxT(t), SetRequest{Contact: contact, Status: events.Online}); err != nil {
						t.Fatal(err)
					}
				}
				if feed == "not empty" {
					for i := range 3 {
						set(fmt.Sprintf("before-%d", i))
					}
					r.waitFeed(t)
				}
				// Long enough for the subscription to start twice and the
				// early changes to be made before it, on a loaded machine.
				from := time.Now().Add(4 * time.Second)
				var col collector
				cfg.Conn, cfg.Reader, cfg.Logger, cfg.Start = r.connect(t), r.Reader(), testLogger(t), StartAtTime(from)
				run := func() (context.CancelFunc, <-chan error) {
					sub, err := NewSubscriber(cfg)
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
				r.waitFeed(t)
				stop()
				wait(t, done)
				_, done = run()
				for i := 2; i < 4; i++ {
					set(fmt.Sprintf("early-%d", i))
				}
				if time.Now().After(from) {
					t.Fatalf("the early changes were made after the time to start at: the machine is too slow for this test")
				}
				waitFor(t, "the time to start at", func() bool { return time.Now().After(from) })
				for i := range 4 {
					set(fmt.Sprintf("late-%d", i))
				}
				r.waitFeed(t)
				var want []uint64
				early := 0
				for _, f := range readFeed(t, r.jetStream(t)) {
					if f.Change.At.Before(from) {
						early++
					} else {
						want = append(want, f.Change.Seq)
					}
				}
				if early == 0 || len(want) == 0 {
					t.Fatalf("%d changes made before the time to start at and %d after: the test needs both", early, len(want))
				}
				waitFor(t, "the changes after the time to start at", func() bool { return col.len() >= len(want) })
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
	r := startEngine(t, "", Options{})
	from := time.Now().Add(time.Second)
	var col collector
	cfg := SubscriberConfig{Conn: r.connect(t), Reader: r.Reader(), Logger: testLogger(t), Durable: "from-then", Start: StartAtTime(from)}
	ctx, cancel := context.WithCancel(context.Background())
	done := runSubscriber(t, ctx, cfg, func(ctx context.Context, ch Change) error { col.add(ch, Reply{}); return nil })
	waitFor(t, "the time to start at", func() bool { return time.Now().After(from) })
	late, err := r.Writer().Set(ctxT(t), SetRequest{Contact: "late", Status: events.Online})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change after the time to start at", func() bool { return col.len() == 1 })
	cancel()
	wait(t, done)

	behind, err := NewWriter(WriterConfig{JetStream: r.jetStream(t), Logger: testLogger(t),
		Now: func() time.Time { return from.Add(-time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{late.Seq}
	// Twice: the second time, the last change the durable acknowledged is
	// one stamped before the start time itself.
	for i := range 2 {
		if i == 0 {
			after, err := r.Writer().Set(ctxT(t), SetRequest{Contact: "after", Status: events.Busy})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, after.Seq)
		}
		skewed, err := behind.Set(ctxT(t), SetRequest{Contact: fmt.Sprintf("skewed-%d", i), Status: events.Away})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, skewed.Seq)
		ctx, cancel := context.WithCancel(context.Background())
		done := runSubscriber(t, ctx, cfg, func(ctx context.Context, ch Change) error { col.add(ch, Reply{}); return nil })
		r.waitFeed(t)
		waitFor(t, "the changes since the restart (one stamped before the start time stepped over?)", func() bool { s := col.seqs(); return len(s) > 0 && s[len(s)-1] == want[len(want)-1] })
		cancel()
		wait(t, done)
	}
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v: run again, the durable stepped over a change stamped before its start time "+
			"after it had handed one from then on", got, want)
	}
}

// foldingReader reads a real projection that moves only when told: before a
// read that may wait (its ctx not done yet), fold (if set) brings it up to the
// change read for, as a projection a moment behind would get there while the
// read waits.
type foldingReader struct {
	LocalReader
	fold atomic.Pointer[func(seq uint64)]
}

func (r *foldingReader) Status(ctx context.Context, contact string, minSeq uint64) (Reply, error) {
	if f := r.fold.Load(); f != nil && ctx.Err() == nil {
		(*f)(minSeq)
	}
	return r.LocalReader.Status(ctx, contact, minSeq)
}

// TestRepeatsAreNotHeldBehindAStalledProjection: while the projection does not
// move, the repeats go out at the feed's pace, without the status they cannot
// have (one wait, not one per entry: 30 waits would trail the feed by 30 of
// them); once the projection is past the change the repeater waited for in
// vain (though not past those after it), the repeats wait for it again and
// carry the status.
func TestRepeatsAreNotHeldBehindAStalledProjection(t *testing.T) {
	s := natstest.Start(t)
	nc, js := natstest.JetStream(t, s)
	if err := EnsureStreams(ctxT(t), js, StreamOptions{}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	p, err := projections.Open(t.TempDir(), projections.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	reader := &foldingReader{LocalReader: LocalReader{Projection: p}}
	repeats, err := nc.SubscribeSync(LivePrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFeed(FeedConfig{Conn: nc, Logger: testLogger(t), Current: reader})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	set := func(contact string) uint64 {
		e := events.Event{Contact: contact, Status: events.Online, Previous: events.Unknown, At: time.Now().UTC(), Cause: events.CauseUser}
		ack, err := js.Publish(ctxT(t), events.EventSubject(e.Contact), e.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	const n = 30
	first := set("c0") // the repeat the repeater waits for in vain
	for i := 1; i < n; i++ {
		set(fmt.Sprintf("c%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := range n {
		msg, err := repeats.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("%d of %d repeats within 10s of a stalled projection: they wait for it one by one (%v)", i, n, err)
		}
		if h := msg.Header.Get(CurrentHeader); h != "" {
			t.Errorf("repeat %s carries status %s that the stalled projection does not have", msg.Header.Get(FeedSeqHeader), h)
		}
	}

	logStream, err := js.Stream(ctxT(t), LogStream)
	if err != nil {
		t.Fatal(err)
	}
	fold := func(seq uint64) {
		if err := p.FoldLog(ctx, logStream, seq, nil); err != nil {
			t.Errorf("fold the log to seq %d: %v", seq, err)
		}
	}
	// The projection gets past the first change only: the next repeat waits,
	// and the projection reaches it meanwhile.
	fold(first)
	reader.fold.Store(&fold)
	set("back")
	msg, err := repeats.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no repeat once the projection is back: %v", err)
	}
	var cur Reply
	if err := cur.UnmarshalJSON([]byte(msg.Header.Get(CurrentHeader))); err != nil || cur.Contact != "back" || cur.Status != events.Online {
		t.Errorf("the repeat once the projection is past the change waited for carries %q (%v), want back's status, online: "+
			"the repeater did not wait for the projection again", msg.Header.Get(CurrentHeader), err)
	}
	if m := f.Metrics(); m.RepeatsDropped != 0 {
		t.Errorf("%d repeats dropped, want none: the repeater keeps up", m.RepeatsDropped)
	}
}

// TestDurableEndsWhenTheFeedIsDeleted: a durable whose feed is deleted, and not
// made again, ends with ErrFeedWentBack once that has lasted, instead of
// fetching from a consumer that is gone for ever.
func TestDurableEndsWhenTheFeedIsDeleted(t *testing.T) {
	r := startEngine(t, "", Options{})
	sub, err := NewSubscriber(SubscriberConfig{Conn: r.connect(t), Reader: r.Reader(), Logger: testLogger(t), Durable: "deleted"})
	if err != nil {
		t.Fatal(err)
	}
	sub.feed.window = 300 * time.Millisecond
	var col collector
	done := runUntilError(t, sub, &col)
	want := setVisible(t, r, 3)
	waitFor(t, "the durable to be handed every change", func() bool { return col.len() == len(want) })
	if err := r.jetStream(t).DeleteStream(ctxT(t), FeedStream); err != nil {
		t.Fatal(err)
	}
	wantWentBack(t, "durable", done)
}

// TestCaughtUpSubscriberLeavesNoConsumer: a subscriber of every contact that
// starts earlier reads the feed with a consumer to catch up, and deletes that
// consumer once it has: live, it keeps none on the server.
func TestCaughtUpSubscriberLeavesNoConsumer(t *testing.T) {
	r := startEngine(t, "", Options{})
	want := setVisible(t, r, 12)
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := NewSubscriber(SubscriberConfig{Conn: r.connect(t), Reader: r.client(t), Logger: testLogger(t),
		Start: StartAll(), LiveCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(ctx, func(ctx context.Context, ch Change) error {
			cur, err := ch.Current(ctx)
			if err != nil {
				return err
			}
			col.add(ch, cur)
			return nil
		})
	}()
	waitFor(t, "the changes from before", func() bool { return col.len() >= len(want) })
	<-sub.Ready()
	want = append(want, setVisible(t, r, 8)...)
	waitFor(t, "the changes after", func() bool { return col.len() >= len(want) })

	feed, err := r.jetStream(t).Stream(ctxT(t), FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := feed.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("the feed has %d consumers once the subscriber caught up, want 0", info.State.Consumers)
	}
	cancel()
	wait(t, done)
	if got := col.seqs(); !slices.Equal(got, want) {
		t.Errorf("handed %v, want %v", got, want)
	}
}
