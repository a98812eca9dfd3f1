package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// appendFloor is the floor of an engine append: the least the design has the
// server do for each event, done with plain NATS calls and none of the engine's
// own work. The messages are published as publishAsync does with expect (the
// log's appends); one ordered consumer, on a connection of its own, reads them
// back as they land (the log must be read to fold and to derive the feed); for
// four messages in five (the visible changes) it publishes an entry of the same
// size to a second stream with that stream's expected last sequence (the feed,
// exactly once). It returns messages per second, from the first publish until
// the second stream holds every entry. The engine does more per event than
// this: the request and reply of the service, a second reader of the log (the
// fold's and the feed's are apart), and the repeat of each feed entry on core
// NATS, with the contact's current status read from the projection.
//
// With expectLast, the messages are published as one owner of the log appends
// (each expecting the stream's last sequence, DESIGN.md §2): the floor of the
// design's write path.
func appendFloor(ctx context.Context, nc *nats.Conn, url string, replicas, n, size, subjects int, expect expectation) (float64, error) {
	start, err := floorPipeline(ctx, nc, url, replicas, n, size, subjects, expect, nil, nil)
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// floorPipeline is the append floor's work, returning when the second stream
// holds every entry, and the time of the first publish. With pace, the
// publishes are spaced and their acks timed; with repeat, each entry, once
// stored, is handed to it (its log sequence and payload) on the reader's
// connection, as the engine repeats each feed entry on core NATS.
func floorPipeline(ctx context.Context, nc *nats.Conn, url string, replicas, n, size, subjects int, expect expectation,
	pace *paced, repeat func(fc *nats.Conn, logSeq string, payload []byte)) (time.Time, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return time.Time{}, err
	}
	if err := resetRawStream(ctx, js, replicas); err != nil {
		return time.Time{}, err
	}
	if err := resetStream(ctx, js, rawStreamConfig(rawFeedStream, rawFeedSubject, replicas)); err != nil {
		return time.Time{}, err
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), rawFeedStream)
	entries := int64(n - n/5) // the messages whose sequence is not a multiple of five
	var (
		stored    atomic.Int64
		read      atomic.Int64
		all       = make(chan struct{})
		failed    = make(chan error, 1)
		quit      = make(chan struct{}) // ends a handler waiting for room
		sem       = make(chan struct{}, maxPending)
		payload   = make([]byte, size)
		published uint64 // entries published, by the handler only
	)
	defer close(quit)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	stop, err := consumeRaw(ctx, url, func(fc *nats.Conn) (jetstream.MessageHandler, error) {
		fjs, err := jetstream.New(fc, jetstream.WithPublishAsyncMaxPending(2*maxPending),
			jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
				if repeat != nil {
					repeat(fc, m.Subject[len(rawFeedSubject):], m.Data)
				}
				<-sem
				if stored.Add(1) == entries {
					close(all)
				}
			}),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
				<-sem
				fail(fmt.Errorf("raw feed publish: %w", err))
			}))
		if err != nil {
			return nil, err
		}
		return func(msg jetstream.Msg) {
			read.Add(1)
			md, err := msg.Metadata()
			if err != nil {
				fail(err)
				return
			}
			if md.Sequence.Stream%5 == 0 {
				return
			}
			select {
			case sem <- struct{}{}:
			case <-quit:
				return
			}
			subject := rawFeedSubject + strconv.FormatUint(md.Sequence.Stream, 10)
			if _, err := fjs.PublishAsync(subject, payload, jetstream.WithExpectLastSequence(published)); err != nil {
				<-sem
				fail(err)
				return
			}
			published++
		}, nil
	})
	if err != nil {
		return time.Time{}, err
	}
	defer stop()
	start, err := publishAll(ctx, nc, n, size, subjects, expect, pace)
	if err != nil {
		return time.Time{}, err
	}
	select {
	case <-all:
	case err = <-failed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("append floor: %d of %d read, %d of %d entries stored: %w", read.Load(), n, stored.Load(), entries, err)
	}
	return start, nil
}

// consumeRaw reads the scratch stream with an ordered consumer on a connection
// of its own, handing its messages to the handler made for that connection.
func consumeRaw(ctx context.Context, url string, handler func(*nats.Conn) (jetstream.MessageHandler, error)) (stop func(), err error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	cc, err := func() (jetstream.ConsumeContext, error) {
		h, err := handler(nc)
		if err != nil {
			return nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		cc, _, err := consumeOrdered(ctx, js, rawStream, h)
		return cc, err
	}()
	if err != nil {
		nc.Close()
		return nil, err
	}
	return func() { cc.Stop(); nc.Close() }, nil
}
