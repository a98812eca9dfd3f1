package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/events"
)

// BenchmarkWriterSync measures sets through the owner's writer (from 32
// goroutines over 10k contacts, their appends pipelined) under each
// durability setting of the embedded server, beside raw JetStream synchronous
// publishes from as many goroutines under the same setting, in the same run.
func BenchmarkWriterSync(b *testing.B) {
	for _, sync := range []engine.Sync{{Always: true}, {Interval: 10 * time.Millisecond}, {Interval: 100 * time.Millisecond}, {Interval: time.Second}, {Interval: 2 * time.Minute}} {
		b.Run("sync="+sync.String(), func(b *testing.B) {
			r := enginetest.Start(b, "", engine.Options{Sync: sync})
			w, js := r.Writer(), r.JetStream(b)
			// The raw publishes go to a stream of their own, beside the log.
			if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage}); err != nil {
				b.Fatal(err)
			}
			b.Run("engine", func(b *testing.B) { benchSets(b, w.Set) })
			b.Run("raw", func(b *testing.B) {
				var n atomic.Uint64
				payload := make([]byte, 150)
				b.ReportAllocs()
				b.SetParallelism(32)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						if _, err := js.Publish(context.Background(), fmt.Sprintf("raw.c%d", i%10_000), payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
			})
		})
	}
}

// BenchmarkSetThroughService measures sets through the service from 64
// requests in flight over 10k contacts, on an engine with its embedded server,
// beside the engine's writer called in-process by as many goroutines: what the
// request and reply cost.
func BenchmarkSetThroughService(b *testing.B) {
	r := enginetest.Start(b, "", engine.Options{})
	b.Run("service", func(b *testing.B) { benchSets(b, r.Client(b).Set) })
	b.Run("writer", func(b *testing.B) { benchSets(b, r.Writer().Set) })
}

// benchSets makes b.N sets from 32 goroutines a processor over 10k contacts,
// each set waiting for its answer, and reports sets/s.
func benchSets(b *testing.B, set func(context.Context, client.SetRequest) (client.SetResult, error)) {
	var n atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(32)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			st := events.Online
			if (i/10_000)%2 == 1 {
				st = events.Away
			}
			if _, err := set(context.Background(), client.SetRequest{Contact: fmt.Sprintf("c%d", i%10_000), Status: st}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sets/s")
}
