package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fanoutOrdered has m ordered consumers, each on its own connection, read the
// first n messages of the scratch stream at once, and returns deliveries per
// second over all of them.
func fanoutOrdered(ctx context.Context, url string, m, n int) (float64, error) {
	return fanoutConsumers(ctx, url, m, n, nil, nil)
}

// fanoutConsumers has m ordered consumers, each on its own connection, read
// the first n messages of the scratch stream at once, and returns deliveries
// per second over all of them. A delivery counts as it arrives, or, with
// reads, once reads counts it (or fails). started, if not nil, is called as
// the timing starts.
func fanoutConsumers(ctx context.Context, url string, m, n int,
	reads func(ctx context.Context, nc *nats.Conn, count func(int), fail func(error)) func(jetstream.Msg), started func()) (float64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conns := make([]*nats.Conn, m)
	defer closeAll(conns)
	cons := make([]jetstream.Consumer, m)
	for i := range m {
		nc, err := nats.Connect(url)
		if err != nil {
			return 0, err
		}
		conns[i] = nc
		js, err := jetstream.New(nc)
		if err != nil {
			return 0, err
		}
		if cons[i], err = orderedConsumer(ctx, js, rawStream); err != nil {
			return 0, err
		}
	}
	var wg sync.WaitGroup
	var total atomic.Int64
	// Timed as the engine's subscribers catching up are: from when every
	// consumer exists (and may have pulled its first messages), with the
	// handlers held until then.
	gate := make(chan struct{})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	defer open() // a failed start must not leave handlers held
	ccs := make([]jetstream.ConsumeContext, 0, m)
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	for i := range m {
		wg.Add(1)
		var counted atomic.Int64
		count := func(k int) {
			total.Add(int64(k))
			if counted.Add(int64(k)) == int64(n) {
				wg.Done()
			}
		}
		take := func(jetstream.Msg) { count(1) }
		if reads != nil {
			take = reads(ctx, conns[i], count, cancel)
		}
		var got atomic.Int64
		cc, err := cons[i].Consume(func(msg jetstream.Msg) {
			<-gate
			// The stream may hold more than n: what comes after does not count.
			if got.Add(1) <= int64(n) {
				take(msg)
			}
		}, jetstream.PullMaxMessages(256))
		if err != nil {
			return 0, err
		}
		ccs = append(ccs, cc)
	}
	if started != nil {
		started()
	}
	start := time.Now()
	open()
	if err := waitGroup(ctx, &wg); err != nil {
		return 0, fmt.Errorf("fan-out to %d ordered consumers: %d of %d deliveries: %w", m, total.Load(), m*n, context.Cause(ctx))
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}

// fanoutCore has one publisher send n messages of size bytes on a core subject
// to m subscribers, each on its own connection, and returns deliveries per
// second over all of them. Core NATS drops for slow consumers: what arrives is
// what counts, and the run ends when nothing more arrives.
func fanoutCore(ctx context.Context, url string, m, n, size int) (float64, error) {
	const subject = "bench.core"
	var total atomic.Int64
	closeSubs, err := subscribeCore(url, m, subject, func(int) nats.MsgHandler {
		return func(*nats.Msg) { total.Add(1) }
	})
	if err != nil {
		return 0, err
	}
	defer closeSubs()
	pub, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	payload := make([]byte, size)
	start := time.Now()
	for i := range n {
		if err := pub.Publish(subject, payload); err != nil {
			return 0, err
		}
		if i%1000 == 999 {
			// A round trip now and then keeps the publisher from racing
			// ahead of the server.
			if err := pub.Flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := pub.Flush(); err != nil {
		return 0, err
	}
	want := int64(m * n)
	lastChange, seen := time.Now(), int64(-1)
	for total.Load() < want && ctx.Err() == nil {
		if got := total.Load(); got != seen {
			seen, lastChange = got, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break // dropped: count what came
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	if total.Load() < want {
		elapsed -= time.Since(lastChange)
	}
	return float64(total.Load()) / elapsed.Seconds(), nil
}

// subscribeCore has m subscribers take subject on core NATS, each on a
// connection of its own, with no bound on the messages waiting for it;
// handler(i) makes subscriber i's handler. It returns once the server has
// every subscription; close closes their connections.
func subscribeCore(url string, m int, subject string, handler func(i int) nats.MsgHandler) (close func(), err error) {
	conns := make([]*nats.Conn, 0, m)
	close = func() { closeAll(conns) }
	for i := range m {
		nc, err := nats.Connect(url)
		if err != nil {
			close()
			return nil, err
		}
		conns = append(conns, nc)
		sub, err := nc.Subscribe(subject, handler(i))
		if err != nil {
			close()
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.Flush(); err != nil {
			close()
			return nil, err
		}
	}
	return close, nil
}

// waitGroup waits for wg or ctx.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
