package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/internal/retry"
	"github.com/presence-engine/presence/internal/tail"
)

// orderedSource reads the feed with an ordered consumer (a tail.Tail), from a
// position on, and, with until, up to the entry at that feed sequence. While
// the subscriber handles one batch, it reads the next ones and starts reading
// their statuses, so that a subscriber catching up is not held by a read's
// round trip per batch.
//
// The Tail fails when its consumer goes, or when a consumer it made again
// finds another stream than the one it read; and every feedLookEvery the
// source looks at the feed. Either way the feedWatch tells whether the feed
// went back (the subscription ends) or not (a consumer deleted under it: it
// reads on with a new one).
type orderedSource struct {
	s      *Subscriber
	stream jetstream.Stream
	until  uint64 // the last feed sequence to hand over; 0: no end
	passed bool   // the entry at until, or past it, was handed over

	out    chan prepared // from the reading goroutine, in feed order
	stop   context.CancelFunc
	reader sync.WaitGroup
}

// prepared is what the reading goroutine hands over: a batch, or why it ended.
type prepared struct {
	batch
	err error
}

// feedLookEvery is how often a subscriber reading the feed from a consumer
// looks at it, to tell a feed deleted or created again under it: a consumer
// on a feed created again shorter than where it reads delivers nothing.
const feedLookEvery = 2 * time.Second

// openOrdered starts reading the feed where Start says.
func (s *Subscriber) openOrdered(ctx context.Context, stream jetstream.Stream) (*orderedSource, error) {
	from, err := s.from(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.ordered(ctx, stream, from, 0)
}

// ordered starts reading the feed from a position, up to until (0: no end).
// It returns once the consumer exists.
func (s *Subscriber) ordered(ctx context.Context, stream jetstream.Stream, from position, until uint64) (*orderedSource, error) {
	t, err := s.tail(ctx, stream, from)
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	o := &orderedSource{s: s, stream: stream, until: until, out: make(chan prepared, 1), stop: stop}
	o.reader.Add(1)
	go func() {
		defer o.reader.Done()
		o.read(rctx, t, from)
	}()
	return o, nil
}

// tail starts a Tail of the feed's subjects from a position.
func (s *Subscriber) tail(ctx context.Context, stream jetstream.Stream, from position) (*tail.Tail, error) {
	var filter []string // none for every contact: the feed holds nothing else
	if len(s.cfg.Contacts) > 0 {
		filter = s.subjects()
	}
	t, err := tail.Start(ctx, stream, tail.Config{From: from.seq, Since: from.since, Subjects: filter,
		Buffer: s.cfg.Batch, Logger: s.logger, Conn: s.cfg.Conn, Watch: -1})
	if err != nil {
		return nil, fmt.Errorf("subscribe to the feed: %w", err)
	}
	return t, nil
}

// read hands over what t, started from a position, reads, prepared, until ctx
// is done or the feed went back; a Tail that fails on a feed that did not go
// back is started again after the last entry it read.
func (o *orderedSource) read(ctx context.Context, t *tail.Tail, from position) {
	defer func() { t.Stop() }() // the one in use when it returns
	look := time.NewTicker(o.s.lookEvery)
	defer look.Stop()
	var (
		read    handedEntry // the last entry read: a new consumer reads on after it
		restart = retry.Backoff{First: o.s.cfg.RetryWait}
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-look.C:
			if err := o.s.feed.goneBack(ctx); errors.Is(err, ErrFeedWentBack) {
				o.send(ctx, prepared{err: err})
				return
			}
		case <-t.Failed():
			t.Stop()
			if err := o.s.feed.wentBackUnder(ctx, t.Err(), read); err != nil {
				o.send(ctx, prepared{err: err})
				return
			}
			// Paced, in case each new consumer goes at once too.
			if !restart.Wait(ctx) {
				return
			}
			again, ok := o.again(ctx, from)
			if !ok {
				return
			}
			t = again
		case r := <-t.C:
			restart.Reset()
			records := drain([]tail.Record{r}, t.C, o.s.cfg.Batch)
			entries := make([]entry, len(records))
			for i, r := range records {
				entries[i] = entry{data: r.Data, feedSeq: r.Seq}
			}
			from = position{seq: records[len(records)-1].Seq + 1}
			b := o.s.prepare(entries)
			if c := b.changes[len(b.changes)-1]; c.Contact != "" {
				read = entryOf(c)
			}
			if b.lookup != nil {
				o.reader.Add(1)
				go func() { defer o.reader.Done(); b.lookup.prefetch(ctx) }()
			}
			if !o.send(ctx, prepared{batch: b}) {
				return
			}
		}
	}
}

// again starts a Tail of the feed from a position once it can, and reports
// whether it did before ctx ended.
func (o *orderedSource) again(ctx context.Context, from position) (*tail.Tail, bool) {
	pause := retry.Backoff{First: o.s.cfg.RetryWait}
	for {
		t, err := o.s.tail(ctx, o.stream, from)
		if err == nil {
			return t, true
		}
		o.s.logger.Warn("subscriber: cannot read the feed again; retrying", "err", err)
		if !pause.Wait(ctx) {
			return nil, false
		}
	}
}

// send hands p to next, and reports whether it was taken before ctx ended.
func (o *orderedSource) send(ctx context.Context, p prepared) bool {
	select {
	case o.out <- p:
		return true
	case <-ctx.Done():
		return false
	}
}

// errCaughtUp: an orderedSource handed over the entry it was to read up to.
var errCaughtUp = errors.New("client: caught up")

func (o *orderedSource) next(ctx context.Context) (batch, error) {
	if o.passed {
		return batch{}, errCaughtUp
	}
	select {
	case <-ctx.Done():
		return batch{}, ctx.Err()
	case p := <-o.out:
		if p.err != nil {
			return batch{}, p.err
		}
		if o.until != 0 && p.entries[len(p.entries)-1].feedSeq >= o.until {
			o.passed = true
		}
		return p.batch, nil
	}
}

func (o *orderedSource) done(*entry) bool { return true }
func (o *orderedSource) busy(*entry)      {}

// close stops reading, and deletes the consumer: the library leaves an
// ordered consumer on the server for five minutes.
func (o *orderedSource) close() {
	o.stop()
	o.reader.Wait()
}
