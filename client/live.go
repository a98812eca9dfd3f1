package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
)

// liveSource hands over the entries the engine repeats on core NATS
// (events.LivePrefix), with no JetStream consumer while it keeps up. It reads
// the feed itself (an orderedSource, for a while) to catch up: from where the
// subscription starts, whenever the feed sequences of the repeats skip one (a
// repeat lost on the way, or dropped because the subscriber was slow), and
// when it has been handed nothing for LiveCheck while the feed holds more.
type liveSource struct {
	s          *Subscriber
	stream     jetstream.Stream
	sub        *nats.Subscription
	repeats    chan *nats.Msg
	check      *time.Ticker
	positioned uint64         // the connection's reconnections when it last knew where it was
	want       uint64         // the feed sequence of the next entry to hand over
	catchUp    *orderedSource // reading the feed, if it is
	behind     bool           // catch up before the next repeat
	handed     bool           // something was handed over since the last check
}

// liveBuffer is how many repeats a subscriber keeps waiting: past it they are
// dropped, and it catches up from the feed.
const liveBuffer = 8192

// openLive subscribes to the repeats, and reads the feed first from where
// Start says. A user that may not follow the repeats reads the feed from an
// ordered consumer instead.
func (s *Subscriber) openLive(ctx context.Context, stream jetstream.Stream) (source, error) {
	l := &liveSource{s: s, stream: stream, positioned: s.cfg.Conn.Stats().Reconnects,
		repeats: make(chan *nats.Msg, liveBuffer), handed: true}
	sub, err := s.cfg.Conn.ChanSubscribe(events.LivePrefix+">", l.repeats)
	if err != nil {
		return nil, fmt.Errorf("subscribe to the feed: %w", err)
	}
	l.sub = sub
	// What the feed holds after this is repeated to this subscription.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.cfg.Conn.FlushWithContext(fctx)
	cancel()
	if err != nil {
		l.close()
		return nil, fmt.Errorf("subscribe to the feed: %w", err)
	}
	if err := s.cfg.Conn.LastError(); errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), events.LivePrefix) {
		s.logger.Warn("subscriber: this user may not follow the feed on core NATS; reading it from a consumer instead",
			"subject", events.LivePrefix+">", "err", err)
		l.close()
		return s.openOrdered(ctx, stream)
	}
	last, err := s.feed.end(ctx)
	if err != nil {
		l.close()
		return nil, err
	}
	l.want = last + 1
	if s.cfg.Start.kind != startNew {
		from, err := s.from(ctx, stream)
		if err != nil {
			l.close()
			return nil, err
		}
		if from.since.IsZero() {
			l.want = max(from.seq, 1)
		}
		if last > 0 && (!from.since.IsZero() || l.want <= last) {
			// The first catch-up reads from the start asked for.
			if l.catchUp, err = s.ordered(ctx, stream, from, last); err != nil {
				l.close()
				return nil, err
			}
		}
	}
	l.check = time.NewTicker(s.cfg.LiveCheck)
	return l, nil
}

func (l *liveSource) next(ctx context.Context) (batch, error) {
	for {
		if l.behind && l.catchUp == nil {
			l.behind = false
			if err := l.startCatchUp(ctx); err != nil {
				return batch{}, err
			}
		}
		if l.catchUp != nil {
			b, err := l.catchUp.next(ctx)
			if errors.Is(err, errCaughtUp) {
				l.catchUp.close()
				l.catchUp = nil
				continue
			}
			if err != nil {
				return batch{}, err
			}
			l.want = max(l.want, b.entries[len(b.entries)-1].feedSeq+1)
			l.handed = true
			return b, nil
		}
		select {
		case <-ctx.Done():
			return batch{}, ctx.Err()
		case <-l.check.C:
			// Handed nothing since the last check: the feed may hold more
			// than the repeats brought (their last ones lost).
			if !l.handed {
				l.behind = true
			}
			l.handed = false
		case m := <-l.repeats:
			if reconnects := l.s.cfg.Conn.Stats().Reconnects; reconnects != l.positioned {
				// Connected again, perhaps to a server that came back on an
				// older copy of its store, whose feed grows again with other
				// entries: its repeats would be handed over from where this
				// subscriber was, as if they followed what it was handed.
				if err := l.s.feed.same(ctx, l.want); err != nil {
					return batch{}, err
				}
				l.positioned = reconnects
			}
			var (
				entries []entry
				foreign bool
			)
			entries, l.behind, foreign = l.entries(drain([]*nats.Msg{m}, l.repeats, l.s.cfg.Batch))
			if foreign {
				// Repeats of another feed than the one this subscriber
				// found: the engine derived the feed again (created
				// anew, numbered from 1 again) under it, or they are late
				// ones of a feed before that one.
				if err := l.s.feed.same(ctx, l.want); err != nil {
					return batch{}, err
				}
			}
			// Only what is handed over counts: repeats from before a feed
			// that went back (recreated) must not keep the check away.
			if len(entries) > 0 {
				l.handed = true
				return l.s.prepare(entries), nil
			}
		}
	}
}

// entries reads the repeats that follow what was handed over, each with the
// status it carries, and reports whether one is missing before the rest, and
// whether some are of another feed than the subscriber's (which it steps
// over).
func (l *liveSource) entries(repeats []*nats.Msg) (out []entry, gap, foreign bool) {
	for _, m := range repeats {
		seq, err := strconv.ParseUint(m.Header.Get(FeedSeqHeader), 10, 64)
		if l.s.dropLive != nil && l.s.dropLive(seq) {
			continue
		}
		if h := m.Header.Get(FeedCreatedHeader); h != "" {
			if created, err := time.Parse(time.RFC3339Nano, h); err == nil && !created.Equal(l.s.feed.created) {
				foreign = true
				continue
			}
		}
		switch {
		case err != nil || seq < l.want:
			continue // a repeat of what was handed over, or not an entry
		case seq > l.want:
			return out, true, foreign
		}
		e := entry{data: m.Data, feedSeq: seq}
		if h := m.Header.Get(CurrentHeader); h != "" {
			var r Reply
			if r.UnmarshalJSON([]byte(h)) == nil {
				e.current = &r
			}
		}
		out = append(out, e)
		l.want++
	}
	return out, false, foreign
}

// startCatchUp reads the feed from the next entry to its end, if it holds
// more than was handed over.
func (l *liveSource) startCatchUp(ctx context.Context) error {
	last, err := l.s.feed.check(ctx, l.want)
	if errors.Is(err, ErrFeedWentBack) {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil && last >= l.want {
		l.s.catchUps.Add(1)
		l.s.logger.Debug("subscriber: catching up from the feed", "from_feed_seq", l.want, "to_feed_seq", last)
		l.catchUp, err = l.s.ordered(ctx, l.stream, position{seq: l.want}, last)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.s.logger.Warn("subscriber: cannot catch up with the feed; retrying", "err", err)
	}
	return nil
}

func (l *liveSource) done(*entry) bool { return true }
func (l *liveSource) busy(*entry)      {}

func (l *liveSource) close() {
	if l.catchUp != nil {
		l.catchUp.close()
	}
	if l.check != nil {
		l.check.Stop()
	}
	_ = l.sub.Unsubscribe()
}
