package audit_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

var (
	benchEvents   = flag.Int("audit.events", 200_000, "events in the log the audit benchmarks read")
	benchContacts = flag.Int("audit.contacts", 10_000, "contacts in the log the audit benchmarks read")
	benchProfile  = flag.String("audit.cpuprofile", "", "directory to write a CPU profile of each audit benchmark to (setup excluded)")
)

// profile runs fn with a CPU profile written to -audit.cpuprofile/name.pprof,
// when that flag is given: the package's -cpuprofile would mix in the setup.
func profile(b *testing.B, name string, fn func()) {
	if *benchProfile == "" {
		fn()
		return
	}
	if err := os.MkdirAll(*benchProfile, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(*benchProfile, name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	defer pprof.StopCPUProfile()
	fn()
}

// BenchmarkAudit measures replay, verify and rebuild over one log built for it,
// each beside a raw ordered-consumer read of the same log measured in the same
// run: x-raw is the operation's event rate over the raw read's, x-raw-time its
// time over the raw read's. -audit.events sets the log's size (docs/bench.md's
// figures use 1000000).
func BenchmarkAudit(b *testing.B) {
	n := *benchEvents
	s := natstest.Start(b)
	dir := b.TempDir()
	e := enginetest.Start(b, dir, engine.Options{NATSURL: s.ClientURL()})
	_, js := natstest.JetStream(b, s)
	last := fillLog(b, js, n, *benchContacts)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer wcancel()
	if err := e.Projection().WaitApplied(wctx, last); err != nil {
		b.Fatal(err)
	}
	for e.Metrics().Feed.Position < last { // the feed has no event to wait on
		if wctx.Err() != nil {
			b.Fatalf("the feed reached log seq %d of %d", e.Metrics().Feed.Position, last)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The raw read, best of three: what the log can deliver to one reader.
	var raw time.Duration
	for range 3 {
		d := rawRead(b, js, last)
		if raw == 0 || d < raw {
			raw = d
		}
	}
	rawRate := float64(last) / raw.Seconds()
	report := func(b *testing.B, start time.Time) {
		elapsed := time.Since(start)
		perPass := elapsed / time.Duration(b.N)
		rate := float64(last) / perPass.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(rate/rawRate, "x-raw")
		b.ReportMetric(perPass.Seconds()/raw.Seconds(), "x-raw-time")
	}
	b.Logf("log: %d events, %d contacts; raw ordered-consumer read %.0f events/s (%s)", last, *benchContacts, rawRate, raw.Round(time.Millisecond))

	b.Run("raw-read", func(b *testing.B) {
		start := time.Now()
		profile(b, "raw-read", func() {
			for range b.N {
				rawRead(b, js, last)
			}
		})
		report(b, start)
	})
	// What verify cannot do without: reading the log and the feed at once.
	feedLen := feedLength(b, js)
	b.Run("raw-read-log-and-feed", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			both := make(chan error, 1)
			go func() {
				_, err := rawReadStream(js, events.FeedStream, feedLen)
				both <- err
			}()
			rawRead(b, js, last)
			if err := <-both; err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("replay", func(b *testing.B) {
		log := audit.NewLog(js, "")
		out := bufio.NewWriterSize(io.Discard, 64<<10)
		var line []byte
		start := time.Now()
		for range b.N {
			st, err := log.Replay(context.Background(), audit.Query{}, func(e audit.Entry) error {
				line = e.AppendText(line[:0])
				_, err := out.Write(line)
				return err
			})
			if err != nil || st.Events != last {
				b.Fatalf("replay: %d events, %v; want %d", st.Events, err, last)
			}
		}
		report(b, start)
	})
	b.Run("replay-json", func(b *testing.B) {
		log := audit.NewLog(js, "")
		out := bufio.NewWriterSize(io.Discard, 64<<10)
		var line []byte
		start := time.Now()
		for range b.N {
			if _, err := log.Replay(context.Background(), audit.Query{}, func(e audit.Entry) error {
				line = e.AppendJSON(line[:0])
				_, err := out.Write(line)
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("verify", func(b *testing.B) {
		start := time.Now()
		profile(b, "verify", func() {
			for range b.N {
				r, err := e.Verify(context.Background(), nil)
				if err != nil || !r.OK() || r.Seq != last {
					b.Fatalf("verify: %+v, %v", r, err)
				}
			}
		})
		report(b, start)
	})
	b.Run("rebuild", func(b *testing.B) {
		start := time.Now()
		profile(b, "rebuild", func() {
			for range b.N {
				if r, err := e.Rebuild(context.Background(), nil); err != nil || r.Seq != last {
					b.Fatalf("rebuild: %+v, %v", r, err)
				}
			}
		})
		report(b, start)
	})
}

// fillLog appends n events over contacts straight to the log, each with the
// right previous status, and returns the last sequence.
func fillLog(b *testing.B, js jetstream.JetStream, n, contacts int) uint64 {
	b.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), uint64(contacts)))
	statuses := []events.Status{events.Online, events.Online, events.Away, events.Busy, events.Idle,
		events.OnThePhone, events.Invisible, events.Offline}
	current := make([]events.Status, contacts)
	at := time.Now().UTC()
	for i := range n {
		c := rng.IntN(contacts)
		next := statuses[rng.IntN(len(statuses))]
		for next == current[c] {
			next = statuses[rng.IntN(len(statuses))]
		}
		cause := events.CauseUser
		if next == events.Idle {
			cause = events.CauseEndpoint
		}
		id := fmt.Sprintf("user-%d@example.com", c)
		ev := events.Event{Contact: id, Name: fmt.Sprintf("User %d", c), Status: next, Previous: current[c],
			At: at.Add(time.Duration(i) * time.Microsecond), Cause: cause}
		current[c] = next
		if _, err := js.PublishAsync(events.EventSubject(id), ev.Encode()); err != nil {
			b.Fatal(err)
		}
		if i%2_000 == 1_999 { // under the 4000 the library lets wait
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	stream, err := js.Stream(context.Background(), events.LogStream)
	if err != nil {
		b.Fatal(err)
	}
	if got := stream.CachedInfo().State.Msgs; got != uint64(n) {
		b.Fatalf("the log holds %d events, want %d", got, n)
	}
	return stream.CachedInfo().State.LastSeq
}

// rawRead reads the whole log with an ordered consumer and nothing else.
func rawRead(b *testing.B, js jetstream.JetStream, last uint64) time.Duration {
	b.Helper()
	d, err := rawReadStream(js, events.LogStream, last)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// feedLength returns how many entries the feed holds.
func feedLength(b *testing.B, js jetstream.JetStream) uint64 {
	stream, err := js.Stream(context.Background(), events.FeedStream)
	if err != nil {
		b.Fatal(err)
	}
	return stream.CachedInfo().State.Msgs
}

// rawReadStream reads n messages of a stream with an ordered consumer.
func rawReadStream(js jetstream.JetStream, name string, n uint64) (time.Duration, error) {
	ctx := context.Background()
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	got := make(chan struct{})
	var count uint64
	cc, err := cons.Consume(func(jetstream.Msg) {
		count++
		if count == n {
			close(got)
		}
	}, jetstream.PullMaxMessages(5000))
	if err != nil {
		return 0, err
	}
	<-got
	elapsed := time.Since(start)
	cc.Stop()
	return elapsed, nil
}
