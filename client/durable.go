package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/retry"
)

// durableSource fetches changes from a durable consumer of the feed and
// acknowledges each one the subscriber is through with.
//
// Each delivery of the consumer has the next delivery sequence, first
// deliveries in feed order, so a change is handed over only when its delivery
// follows the last one received. One that does not means a delivery was lost
// on the way: a fetch that ran out as it arrived, a connection that dropped.
// The server holds the lost change as pending and would hand it over again
// only after its AckWait, behind the changes that followed it.
//
// A server that restarts (the engine's embedded one, killed) may come back with
// an older state of the consumer than it had: nats-server writes that state to
// disk behind (at most ten times a second), and changes may have been in
// flight. It then hands over again changes this run has handled, at once or,
// those it holds as pending, after their AckWait and after newer ones.
//
// So after every reconnection and every lost delivery the consumer is reset
// to its ack floor, the rest of the fetch is left for after that reset, and a
// change this run has already handled is acknowledged and not handed over
// again: as long as this process runs, each change is handled once, in order,
// whatever happens to the server or on the way.
type durableSource struct {
	s      *Subscriber
	stream jetstream.Stream
	cons   jetstream.Consumer
	name   string

	positioned uint64 // the connection's reconnections when the consumer was last positioned
	delivery   uint64 // the delivery sequence the next delivery must have
	handled    uint64 // feed sequence of the last change this run went through
	lost       bool   // a delivery was lost since the last reset
	checked    bool   // the feed was found to hold the last change handled, since the last reset
	pause      bool   // the feed could not be read: wait before the next reset

	fetch    jetstream.MessageBatch // the fetch in progress, if any
	endFetch context.CancelFunc
	stale    bool // reconnected or lost a delivery: the rest of the fetch waits for the reset
	acked    bool // something was acknowledged: close confirms it
	wait     retry.Backoff
}

// openDurable makes the durable's consumer, or resumes it.
func (s *Subscriber) openDurable(ctx context.Context, stream jetstream.Stream) (source, error) {
	d := &durableSource{s: s, stream: stream, name: s.cfg.Durable, positioned: s.cfg.Conn.Stats().Reconnects,
		wait: retry.Backoff{First: s.cfg.RetryWait}}
	var err error
	if d.cons, d.delivery, err = s.durable(ctx, stream); err != nil {
		return nil, fmt.Errorf("durable subscriber %q: %w", d.name, err)
	}
	return d, nil
}

func (d *durableSource) next(ctx context.Context) (batch, error) {
	for ctx.Err() == nil {
		if d.fetch == nil {
			if err := d.startFetch(ctx); err != nil {
				return batch{}, err
			}
			continue
		}
		m, ok := <-d.fetch.Messages()
		if !ok {
			if err := d.fetchEnded(ctx); err != nil {
				return batch{}, err
			}
			continue
		}
		if d.stale {
			continue
		}
		entries, err := d.admit(ctx, entriesOf(drain([]jetstream.Msg{m}, d.fetch.Messages(), d.s.cfg.Batch)))
		if err != nil {
			return batch{}, err
		}
		if len(entries) > 0 {
			return d.s.prepare(entries), nil
		}
	}
	return batch{}, ctx.Err()
}

// startFetch resets the consumer to its ack floor if it was cut off or lost a
// delivery, and starts the next fetch.
func (d *durableSource) startFetch(ctx context.Context) error {
	if reconnects := d.s.cfg.Conn.Stats().Reconnects; reconnects != d.positioned || d.lost {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := d.stream.ResetConsumer(rctx, d.name)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Connected, a reset that fails may be of a consumer, or a
			// feed, that is gone for good.
			if d.s.cfg.Conn.IsConnected() {
				if err := d.gone(ctx); err != nil {
					return err
				}
			}
			d.s.logger.Warn("subscriber: cannot resume after the last change acknowledged; retrying", "durable", d.name, "err", err)
			d.wait.Wait(ctx)
			return nil
		}
		d.s.logger.Debug("subscriber: resuming after the last change acknowledged", "durable", d.name,
			"reconnected", reconnects != d.positioned, "lost_delivery", d.lost, "feed_seq", res.ResetSeq, "handled", d.handled)
		d.positioned, d.lost, d.delivery, d.checked = reconnects, false, 1, false
	}
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	fetch, err := d.cons.Fetch(d.s.cfg.Batch, jetstream.FetchContext(fctx))
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.s.logger.Warn("subscriber: fetch failed; retrying", "durable", d.name, "err", err)
		d.wait.Wait(ctx)
		return nil
	}
	d.fetch, d.endFetch, d.stale = fetch, cancel, false
	return nil
}

// fetchEnded looks at how the fetch ended, once all of it was received.
func (d *durableSource) fetchEnded(ctx context.Context) error {
	err := d.fetch.Error()
	d.endFetch()
	d.fetch = nil
	if d.pause {
		d.pause = false
		d.wait.Wait(ctx)
		return nil
	}
	if err == nil || errors.Is(err, context.DeadlineExceeded) || d.stale || ctx.Err() != nil {
		d.wait.Reset()
		return nil
	}
	// The fetch failed at once (no responders: no such consumer) or on the
	// way: without a pause it would be tried again at full speed. A server
	// shutting down says so as it goes: asking it whether the consumer is
	// gone would wait out the request's whole timeout.
	if !errors.Is(err, jetstream.ErrServerShutdown) {
		if err := d.gone(ctx); err != nil {
			return err
		}
	}
	d.s.logger.Warn("subscriber: fetch failed; retrying", "durable", d.name, "err", err)
	d.wait.Wait(ctx)
	return nil
}

// admit returns the entries of a fetch that may be handed over: up to the
// first whose delivery does not follow the one before (the rest waits for a
// reset), and without those this run went through already (handed over again
// after a reset: acknowledged again, once the feed is found to still hold the
// last one).
func (d *durableSource) admit(ctx context.Context, entries []entry) ([]entry, error) {
	out := entries[:0]
	for _, e := range entries {
		if d.s.cfg.Conn.Stats().Reconnects != d.positioned {
			d.stale = true
		} else if e.delivery != d.delivery {
			d.s.logger.Info("subscriber: a delivery was lost on the way; resuming after the last change acknowledged",
				"durable", d.name, "delivery", e.delivery, "expected", d.delivery, "feed_seq", e.feedSeq)
			d.stale, d.lost = true, true
		}
		if d.stale {
			// The rest of the fetch is left to end as it would: cut short,
			// the pull request could still take deliveries after the
			// reset, and lose them.
			break
		}
		d.delivery++
		if e.feedSeq > d.handled {
			out = append(out, e)
			continue
		}
		if !d.checked {
			// Handed over again after a reset: by a server that lost the
			// ack, or one restored from an older copy, whose feed may end
			// before the entry handed over last, or hold another there (now
			// or once it grows again). Once a reset, the feed is read there
			// before stepping over.
			_, err := d.s.feed.check(ctx, d.handled+1)
			if errors.Is(err, ErrFeedWentBack) {
				return nil, fmt.Errorf("durable subscriber %q: %w", d.name, err)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				// Cannot tell yet: nothing is stepped over until it can.
				d.s.logger.Warn("subscriber: cannot read the feed; retrying", "durable", d.name, "err", err)
				d.stale, d.lost, d.pause = true, true, true
				break
			}
			d.checked = true
		}
		d.ack(&e)
	}
	return out, nil
}

// done acknowledges e, and reports whether the connection stayed where the
// consumer was positioned: if not, the rest of the fetch waits for a reset.
func (d *durableSource) done(e *entry) bool {
	d.handled = max(d.handled, e.feedSeq)
	d.ack(e)
	if d.s.cfg.Conn.Stats().Reconnects != d.positioned {
		d.stale = true
		return false
	}
	return true
}

func (d *durableSource) ack(e *entry) {
	if err := e.msg.Ack(); err != nil {
		d.s.logger.Warn("subscriber: ack failed", "durable", d.name, "err", err)
	}
	d.acked = true
}

// busy keeps the server from handing e over again while its handler is
// tried again.
func (d *durableSource) busy(e *entry) { _ = e.msg.InProgress() }

// close ends the fetch in progress and makes sure the server has every ack
// before the next run starts: acks travel in order on the connection, so a
// round trip after the last one confirms them all.
func (d *durableSource) close() {
	if d.fetch != nil {
		d.endFetch()
	}
	if d.acked {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.s.cfg.Conn.FlushWithContext(ctx); err != nil {
			d.s.logger.Warn("subscriber: cannot confirm the last acknowledgements; the next run may be handed their changes again",
				"durable", d.name, "err", err)
		}
		cancel()
	}
}

// gone returns an error if the durable's consumer, and the position it held,
// is gone for good: the feed was created again (wrapping ErrFeedWentBack), or
// the consumer was deleted. Carrying on would mean making a new one, which
// starts where Start says, not where this one was.
func (d *durableSource) gone(ctx context.Context) error {
	if !d.s.cfg.Conn.IsConnected() {
		return nil // cannot tell: the fetch fails while cut off, and is tried again
	}
	err := d.s.feed.gone(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, ErrFeedWentBack) {
		return fmt.Errorf("durable subscriber %q: %w; its consumer, and the position it held, went with the old feed",
			d.name, err)
	}
	if _, err := d.stream.Consumer(ctx, d.name); errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("durable subscriber %q: its consumer was deleted from the feed (stream %s), and the position it held with it; "+
			"running it again makes a new one, starting where its Start says", d.name, events.FeedStream)
	}
	return nil
}

// durable returns the subscription's consumer. A new one starts where Start
// says. One that exists resumes right after the last change acknowledged in
// order: when changes were handed to an earlier run and not acknowledged (it was
// stopped mid-batch, or crashed), it is reset to there, so the next change handed
// over is always the one after, never a later one while an earlier waits for
// redelivery. Changed contacts update its filter in place. It also returns the
// delivery sequence the consumer's next delivery will have.
func (s *Subscriber) durable(ctx context.Context, stream jetstream.Stream) (jetstream.Consumer, uint64, error) {
	cons, err := stream.Consumer(ctx, s.cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		from, err := s.from(ctx, stream)
		if err != nil {
			return nil, 0, err
		}
		cfg := jetstream.ConsumerConfig{
			Durable:        s.cfg.Durable,
			Description:    "presence subscriber",
			FilterSubjects: s.subjects(),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        s.cfg.AckWait,
			MaxAckPending:  s.cfg.Batch,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
		}
		switch {
		case !from.since.IsZero():
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &from.since
		case from.seq > 1:
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from.seq
		}
		if s.skipBelow > 0 {
			cfg.Metadata = map[string]string{startSeqKey: strconv.FormatUint(s.skipBelow, 10)}
		}
		cons, err := stream.CreateConsumer(ctx, cfg)
		return cons, 1, err
	}
	if err != nil {
		return nil, 0, err
	}
	info := cons.CachedInfo()
	if s.cfg.Start.kind != startNew {
		s.logger.Warn("subscriber: the durable subscription exists, and resumes where it stopped: a start applies only to a new one",
			"durable", s.cfg.Durable)
	}
	if v, ok := info.Config.Metadata[startSeqKey]; ok {
		// Made to start at a feed position, perhaps one the feed had not
		// reached: what comes before it is stepped over in every run, not
		// in the first alone. Past it, nothing comes before it.
		seq, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("consumer %s: metadata %s=%s is not a feed position", s.cfg.Durable, startSeqKey, events.Quote(v))
		}
		s.skipBelow = seq
	}
	if t := info.Config.OptStartTime; info.Config.DeliverPolicy == jetstream.DeliverByStartTimePolicy && t != nil && t.After(info.Created) {
		// Made to start at a time still to come: until a change from that
		// time on, it steps over those before, in this run as in the first,
		// unless it has acknowledged one stored from that time on already.
		before, err := ackedBefore(ctx, stream, info.AckFloor.Stream, *t)
		if err != nil {
			return nil, 0, err
		}
		if before {
			s.notBefore = *t
		}
	}
	if filters := s.subjects(); !slices.Equal(info.Config.FilterSubjects, filters) {
		s.logger.Warn("subscriber: the durable subscription now follows other contacts than before, from where it stopped",
			"durable", s.cfg.Durable, "was", followed(info.Config.FilterSubjects), "now", followed(filters))
		cfg := info.Config
		cfg.FilterSubject, cfg.FilterSubjects = "", filters
		if cons, err = stream.UpdateConsumer(ctx, cfg); err != nil {
			return nil, 0, err
		}
	}
	if info.NumAckPending > 0 || info.NumRedelivered > 0 {
		s.logger.Debug("subscriber: resuming after the last change acknowledged", "durable", s.cfg.Durable,
			"unacknowledged", info.NumAckPending)
		if _, err := stream.ResetConsumer(ctx, s.cfg.Durable); err != nil {
			return nil, 0, err
		}
		return cons, 1, nil // a reset starts the delivery sequence again
	}
	return cons, info.Delivered.Consumer + 1, nil
}

// startSeqKey is the metadata of a durable's consumer that keeps the feed
// position it was made to start at (StartAtSeq). (It was presence_start_seq
// when that was a log sequence; the consumers that had it went with the feed
// of version 1 entries.)
const startSeqKey = "presence_start_position"

// followed says which contacts a consumer's filters follow.
func followed(filters []string) string {
	if len(filters) == 0 || slices.Equal(filters, []string{events.ChangesPrefix + ">"}) {
		return "every contact"
	}
	return strings.Join(filters, " ")
}

// ackedBefore reports whether the entry at feed sequence acked (0: none) was
// stored before t. The feed is in the order it was stored: once an entry stored
// from t on was acknowledged, none stored before t is still to come. (A
// change's own time may be earlier than when it was stored, by another
// engine's clock: it is not what counts here.)
func ackedBefore(ctx context.Context, stream jetstream.Stream, acked uint64, t time.Time) (bool, error) {
	if acked == 0 {
		return true, nil
	}
	msg, err := stream.GetMsg(ctx, acked)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil // gone from the feed: what follows is compared instead
	}
	if err != nil {
		return false, fmt.Errorf("read the feed at seq %d: %w", acked, err)
	}
	return msg.Time.Before(t), nil
}
