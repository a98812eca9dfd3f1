package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// BenchmarkWriterSync measures sets through the writer (synchronous appends from
// 64 goroutines over 10k contacts) under each durability setting of the
// embedded server, beside raw JetStream synchronous publishes with
// expected-last-subject-sequence under the same setting, in the same run.
func BenchmarkWriterSync(b *testing.B) {
	for _, sync := range []engine.Sync{{Always: true}, {Interval: 10 * time.Millisecond}, {Interval: 100 * time.Millisecond}, {Interval: time.Second}, {Interval: 2 * time.Minute}} {
		b.Run("sync="+sync.String(), func(b *testing.B) {
			s, err := engine.StartServer(engine.ServerConfig{Listen: "127.0.0.1:0", StoreDir: b.TempDir(), Sync: sync, Logger: natstest.Logger(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { s.Shutdown(); s.WaitForShutdown() }()
			nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			if err := engine.EnsureStreams(context.Background(), js, engine.StreamOptions{}, natstest.Logger(b)); err != nil {
				b.Fatal(err)
			}
			w, err := engine.NewWriter(engine.WriterConfig{JetStream: js, Logger: natstest.Logger(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Run("engine", func(b *testing.B) {
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
						if _, err := w.Set(context.Background(), client.SetRequest{Contact: fmt.Sprintf("c%d", i%10_000), Status: st}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sets/s")
			})
			b.Run("raw", func(b *testing.B) {
				var n atomic.Uint64
				payload := make([]byte, 150)
				b.ReportAllocs()
				b.SetParallelism(32)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						// A subject of its own per publish: expected sequence 0 always holds.
						subj := fmt.Sprintf("presence.events.raw%d-%d", time.Now().UnixNano(), i)
						if _, err := js.Publish(context.Background(), subj, payload, jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
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
