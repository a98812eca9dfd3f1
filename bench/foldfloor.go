package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/projections"
)

// foldFloor is the floor of the fold: the first n messages of a stream read
// with an ordered consumer, as orderedRead does, and each written to a fresh
// Pebble store in dir under its subject, in batches of up to 4096 committed
// without sync, each with the sequence of its last message (the checkpoint the
// design has the projection write with its states), as the fold commits, the
// writing beside the reading. None of the fold's own work (decoding, the state)
// is in it. It returns messages per second.
func foldFloor(ctx context.Context, js jetstream.JetStream, stream string, n int, dir string, logger *slog.Logger) (float64, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: projections.PebbleLogger(logger)})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	// Not a tail.Tail (internal/tail, the fold's reader): its records carry
	// no subject, the key of the write that stands for the fold's.
	type kv struct {
		key, value []byte
		seq        uint64
	}
	c := make(chan kv, 16384)
	quit := make(chan struct{})
	defer close(quit)
	cc, start, err := consumeOrdered(ctx, js, stream, func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return // counted as missing: the wait below ends with ctx
		}
		select {
		case c <- kv{[]byte(msg.Subject()), msg.Data(), md.Sequence.Stream}:
		case <-quit:
		}
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	checkpoint := []byte("checkpoint")
	var seq [8]byte
	for written := 0; written < n; {
		b := db.NewBatch()
		var last uint64
		for k := 0; k < 4096 && written < n; k++ {
			var m kv
			if k == 0 {
				select {
				case m = <-c:
				case <-ctx.Done():
					b.Close()
					return 0, fmt.Errorf("fold floor of %s: %d of %d messages: %w", stream, written, n, ctx.Err())
				}
			} else {
				var ok bool
				select {
				case m, ok = <-c:
				default:
				}
				if !ok {
					break
				}
			}
			if err := b.Set(m.key, m.value, nil); err != nil {
				b.Close()
				return 0, err
			}
			last = m.seq
			written++
		}
		binary.BigEndian.PutUint64(seq[:], last)
		if err := b.Set(checkpoint, seq[:], nil); err != nil {
			b.Close()
			return 0, err
		}
		err := b.Commit(pebble.NoSync)
		b.Close()
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
