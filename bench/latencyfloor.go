package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"
)

// floorLiveSubject is where the floor of the latency run repeats its entries,
// the log sequence appended.
const floorLiveSubject = "bench.floor.live."

// latencyFloor is the floor of the latency run: the append floor's work at
// limit publishes a second (n of them), each entry repeated on core NATS once
// stored, to m subscribers on connections of their own, each timing every
// entry from the publish's ack as the latency run times a change from the
// writer's ack. The engine's path has more: the service, the fold's reader,
// and the status the repeat carries, read from the projection once it has
// applied the change.
func latencyFloor(ctx context.Context, nc *nats.Conn, url string, replicas, m, n, size, subjects int, limit float64) (Latency, error) {
	acks := newAckTimes(1, n+1) // the scratch stream starts again at 1
	o := newObserver(m, window{base: 1, size: n + 1}, acks)
	want := int64(m * (n - n/5))
	var got atomic.Int64
	all := make(chan struct{})
	closeSubs, err := subscribeCore(url, m, floorLiveSubject+">", func(i int) nats.MsgHandler {
		return func(msg *nats.Msg) {
			now := time.Now().UnixNano()
			seq, err := strconv.ParseUint(msg.Subject[len(floorLiveSubject):], 10, 64)
			if err != nil {
				return
			}
			o.time(i, seq, now)
			if got.Add(1) == want {
				close(all)
			}
		}
	})
	if err != nil {
		return Latency{}, err
	}
	defer closeSubs()
	pace := &paced{limiter: rate.NewLimiter(rate.Limit(limit), max(1, int(limit/100))), acks: acks}
	_, err = floorPipeline(ctx, nc, url, replicas, n, size, subjects, expectSubject, pace, func(fc *nats.Conn, logSeq string, payload []byte) {
		_ = fc.Publish(floorLiveSubject+logSeq, payload)
	})
	if err != nil {
		return Latency{}, err
	}
	select {
	case <-all:
	case <-ctx.Done():
		return Latency{}, ctx.Err()
	case <-time.After(10 * time.Second):
		return Latency{}, fmt.Errorf("floor of the latency run: %d of %d deliveries", got.Load(), want)
	}
	return o.latency(), nil
}
