package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/events"
)

// heartbeatEndpoints is how many endpoints BenchmarkHeartbeats keeps alive.
const heartbeatEndpoints = 10_000

// BenchmarkHeartbeats measures heartbeats through the service (64 requests in
// flight over 10k live endpoints, one a contact) beside raw core NATS
// request/reply to a responder that answers at once, in the same run and on
// the same server: the target is half of raw or more. It reports the engine's
// heap per live endpoint, measured as they sign in.
func BenchmarkHeartbeats(b *testing.B) {
	r := enginetest.Start(b, "", engine.Options{})
	ctx := context.Background()
	c := r.Client(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range heartbeatEndpoints {
		if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: fmt.Sprintf("c%d", i), Endpoint: "desk", Kind: events.KindDesktop,
			Lease: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEndpoint := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / heartbeatEndpoints

	nc := r.Connect(b)
	if _, err := nc.Subscribe("raw.heartbeat.*", func(m *nats.Msg) { _ = m.Respond([]byte(`{"ok":true}`)) }); err != nil {
		b.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	requester := r.Connect(b)
	var rates [2]float64
	for k, name := range []string{"raw", "engine"} {
		b.Run(name, func(b *testing.B) {
			var n atomic.Uint64
			b.SetParallelism(64 / runtime.GOMAXPROCS(0))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1) % heartbeatEndpoints
					var err error
					if k == 0 {
						_, err = requester.Request(fmt.Sprintf("raw.heartbeat.c%d", i), []byte(`{"endpoint":"desk"}`), 5*time.Second)
					} else {
						_, err = c.Heartbeat(ctx, fmt.Sprintf("c%d", i), "desk")
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			rates[k] = float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rates[k], "requests/s")
			if k == 1 {
				b.ReportMetric(perEndpoint, "heap-B/endpoint")
				if rates[0] > 0 {
					b.ReportMetric(rates[1]/rates[0], "x-raw")
				}
			}
		})
	}
}
