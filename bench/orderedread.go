package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// orderedRead reads the first n messages of a stream with one ordered consumer
// (the engine's settings: PullMaxMessages 5000) and returns messages per second.
func orderedRead(ctx context.Context, js jetstream.JetStream, stream string, n int) (float64, error) {
	done := make(chan struct{})
	var got atomic.Int64
	cc, start, err := consumeOrdered(ctx, js, stream, func(jetstream.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
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

// consumeOrdered reads a stream with one ordered consumer, with the engine's
// settings (PullMaxMessages 5000), handing its messages to h. It returns when
// the reading began, once the consumer existed: the time a rate counts from.
func consumeOrdered(ctx context.Context, js jetstream.JetStream, stream string, h jetstream.MessageHandler) (jetstream.ConsumeContext, time.Time, error) {
	cons, err := orderedConsumer(ctx, js, stream)
	if err != nil {
		return nil, time.Time{}, err
	}
	start := time.Now()
	cc, err := cons.Consume(h, jetstream.PullMaxMessages(5000))
	return cc, start, err
}

// orderedConsumer makes an ordered consumer of a stream, from its start.
func orderedConsumer(ctx context.Context, js jetstream.JetStream, stream string) (jetstream.Consumer, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
}
