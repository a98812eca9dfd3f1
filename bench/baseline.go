package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The raw baselines run on the engine's server, on a stream of their own.
const (
	rawStream  = "BENCH_RAW"
	rawSubject = "bench.raw."
	// maxPending bounds the async publishes in flight, as a semaphore released
	// by the acks: the library's own limit stalls rather than waits.
	maxPending = 4096
)

// rawStreamConfig is the scratch stream: file storage, like the log.
func rawStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: rawStream, Subjects: []string{rawSubject + ">"}, Storage: jetstream.FileStorage,
		Replicas: replicas, MaxMsgs: -1, MaxBytes: -1}
}

// resetRawStream deletes and creates the scratch stream.
func resetRawStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if err := js.DeleteStream(ctx, rawStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := js.CreateStream(ctx, rawStreamConfig(replicas))
		if err == nil || time.Now().After(deadline) {
			return err
		}
		// A just-deleted stream can take a moment to go (10049).
		time.Sleep(50 * time.Millisecond)
	}
}

// publishAsync publishes n messages of size bytes over subjects distinct
// subjects as fast as acks come back, with at most maxPending in flight, and
// returns messages per second. With expect, each carries the expected last
// sequence of its subject, as the engine's appends do; only one per subject is
// then in flight.
func publishAsync(ctx context.Context, nc *nats.Conn, n, size, subjects int, expect bool) (float64, error) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'x'
	}
	sem := make(chan struct{}, maxPending)
	var (
		mu       sync.Mutex
		last     = make([]uint64, subjects) // last sequence of each subject
		inFlight = make([]bool, subjects)
		freed    = sync.NewCond(&mu)
		failed   atomic.Pointer[error]
		acked    sync.WaitGroup
	)
	subjectOf := func(m *nats.Msg) int {
		i, _ := strconv.Atoi(m.Subject[len(rawSubject):])
		return i
	}
	settle := func(m *nats.Msg, seq uint64) {
		if expect {
			i := subjectOf(m)
			mu.Lock()
			if seq > 0 {
				last[i] = seq
			}
			inFlight[i] = false
			freed.Broadcast()
			mu.Unlock()
		}
		<-sem
		acked.Done()
	}
	// The handlers run on the library's reply goroutine: they must not block.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*maxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
			settle(m, ack.Sequence)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			err = fmt.Errorf("raw publish: %w", err)
			failed.CompareAndSwap(nil, &err)
			settle(m, 0)
		}))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err := failed.Load(); err != nil {
			return 0, *err
		}
		subj := i % subjects
		var opts []jetstream.PublishOpt
		if expect {
			mu.Lock()
			for inFlight[subj] {
				freed.Wait()
			}
			inFlight[subj] = true
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(last[subj]))
			mu.Unlock()
		}
		sem <- struct{}{}
		acked.Add(1)
		if _, err := js.PublishAsync(rawSubject+strconv.Itoa(subj), payload, opts...); err != nil {
			return 0, err
		}
	}
	acked.Wait()
	if err := failed.Load(); err != nil {
		return 0, *err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// orderedRead reads the first n messages of a stream with one ordered consumer
// (the engine's settings: PullMaxMessages 5000) and returns messages per second.
func orderedRead(ctx context.Context, js jetstream.JetStream, stream string, n int) (float64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	done := make(chan struct{})
	var got atomic.Int64
	start := time.Now()
	cc, err := cons.Consume(func(jetstream.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(5000))
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("ordered read of %s: %d of %d messages: %w", stream, got.Load(), n, ctx.Err())
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fanoutOrdered has m ordered consumers, each on its own connection, read the
// first n messages of the scratch stream at once, and returns deliveries per
// second over all of them.
func fanoutOrdered(ctx context.Context, url string, m, n int) (float64, error) {
	conns := make([]*nats.Conn, m)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
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
		s, err := js.Stream(ctx, rawStream)
		if err != nil {
			return 0, err
		}
		if cons[i], err = s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{}); err != nil {
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
	ccs := make([]jetstream.ConsumeContext, m)
	for i := range m {
		wg.Add(1)
		var got atomic.Int64
		cc, err := cons[i].Consume(func(jetstream.Msg) {
			<-gate
			// The stream may hold more than n: what comes after does not count.
			if k := got.Add(1); k <= int64(n) {
				total.Add(1)
				if k == int64(n) {
					wg.Done()
				}
			}
		}, jetstream.PullMaxMessages(256))
		if err != nil {
			return 0, err
		}
		ccs[i] = cc
	}
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	start := time.Now()
	open()
	if err := waitGroup(ctx, &wg); err != nil {
		return 0, fmt.Errorf("fan-out to %d ordered consumers: %d of %d deliveries: %w", m, total.Load(), m*n, err)
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}

// fanoutCore has one publisher send n messages of size bytes on a core subject
// to m subscribers, each on its own connection, and returns deliveries per
// second over all of them. Core NATS drops for slow consumers: what arrives is
// what counts, and the run ends when nothing more arrives.
func fanoutCore(ctx context.Context, url string, m, n, size int) (float64, error) {
	const subject = "bench.core"
	conns := make([]*nats.Conn, 0, m+1)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	var total atomic.Int64
	for range m {
		nc, err := nats.Connect(url)
		if err != nil {
			return 0, err
		}
		conns = append(conns, nc)
		sub, err := nc.Subscribe(subject, func(*nats.Msg) { total.Add(1) })
		if err != nil {
			return 0, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.Flush(); err != nil {
			return 0, err
		}
	}
	pub, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	conns = append(conns, pub)
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
