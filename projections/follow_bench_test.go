package projections

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkFollow folds a pre-filled log of 100k events over 10k contacts into
// a fresh projection, beside a raw ordered read of the same log with the same
// consumer settings, in the same run: events/s and their ratio.
func BenchmarkFollow(b *testing.B) {
	js, stream := startLog(b)
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(1, 2)), 10_000, 100_000)
	publish(b, js, h, 0)
	n := int(h.last())
	b.ReportAllocs()
	b.ResetTimer()
	var rawTotal, foldTotal time.Duration
	for range b.N {
		start := time.Now()
		if err := rawRead(stream, n); err != nil {
			b.Fatal(err)
		}
		rawTotal += time.Since(start)

		p := openAt(b, nil, b.TempDir())
		f, err := NewFollower(FollowerConfig{Projection: p, JetStream: js, Stream: stream.CachedInfo().Config.Name, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start = time.Now()
		go func() { done <- f.Run(ctx) }()
		if err := p.WaitApplied(context.Background(), h.last()); err != nil {
			b.Fatal(err)
		}
		foldTotal += time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	raw := float64(n*b.N) / rawTotal.Seconds()
	fold := float64(n*b.N) / foldTotal.Seconds()
	b.ReportMetric(fold, "events/s")
	b.ReportMetric(raw, "raw-msgs/s")
	b.ReportMetric(fold/raw, "ratio")
}

// rawRead reads the first n messages of the stream with an ordered consumer,
// as the follower's Tail does.
func rawRead(stream jetstream.Stream, n int) error {
	cons, err := stream.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	done := make(chan struct{})
	got := 0
	cc, err := cons.Consume(func(jetstream.Msg) {
		if got++; got == n {
			close(done)
		}
	}, jetstream.PullMaxMessages(5000))
	if err != nil {
		return err
	}
	<-done
	cc.Stop()
	return nil
}
