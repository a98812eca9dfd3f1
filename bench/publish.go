package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// expectation is the check each publish of publishAll carries.
type expectation int

const (
	expectNothing expectation = iota
	// expectSubject: the expected last sequence of its subject, as the
	// engine's appends do today; only one per subject is then in flight.
	expectSubject
	// expectLast: the stream's expected last sequence, each publish
	// expecting the one before it, as one owner of the log appends
	// (DESIGN.md §2): the server compares it with a counter, and loads no
	// older block.
	expectLast
)

// publishAsync publishes n messages of size bytes over subjects distinct
// subjects as fast as acks come back, with at most maxPending in flight, each
// with the expect check, to a stream that is empty at the start, and returns
// messages per second.
func publishAsync(ctx context.Context, nc *nats.Conn, n, size, subjects int, expect expectation) (float64, error) {
	start, err := publishAll(ctx, nc, n, size, subjects, expect, nil)
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// paced, given to publishAll, spaces its publishes and times their acks, as
// the writers of the engine's latency run are spaced and timed.
type paced struct {
	limiter *rate.Limiter
	acks    *ackTimes
}

// publishAll is publishAsync, returning when the last ack came back and the
// time of the first publish; with pace, spaced and timed by it.
func publishAll(ctx context.Context, nc *nats.Conn, n, size, subjects int, expect expectation, pace *paced) (time.Time, error) {
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
	settle := func(m *nats.Msg, seq uint64) {
		if expect == expectSubject {
			i := rawIndex(m.Subject)
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
			if pace != nil {
				pace.acks.put(ack.Sequence, time.Now(), true)
			}
			settle(m, ack.Sequence)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			err = fmt.Errorf("raw publish: %w", err)
			failed.CompareAndSwap(nil, &err)
			settle(m, 0)
		}))
	if err != nil {
		return time.Time{}, err
	}
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		if err := failed.Load(); err != nil {
			return time.Time{}, *err
		}
		if pace != nil {
			if err := pace.limiter.Wait(ctx); err != nil {
				return time.Time{}, err
			}
		}
		subj := i % subjects
		var opts []jetstream.PublishOpt
		switch expect {
		case expectLast:
			opts = append(opts, jetstream.WithExpectLastSequence(uint64(i)))
		case expectSubject:
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
			return time.Time{}, err
		}
	}
	acked.Wait()
	if err := failed.Load(); err != nil {
		return time.Time{}, *err
	}
	return start, nil
}
