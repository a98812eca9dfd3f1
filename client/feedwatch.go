package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/retry"
	"github.com/presence-engine/presence/internal/tail"
)

// feedWatch tells whether the feed a subscription follows went back under it:
// deleted, created again, ending before what was handed over, or holding
// another entry where the last one handed over was (restored from an older
// copy, which keeps its creation time). Every source asks it, at the faults of
// its own transport; nothing else decides that. Its methods are safe for
// concurrent use.
type feedWatch struct {
	stream  jetstream.Stream
	created time.Time     // when the feed was created, as the subscription found it
	window  time.Duration // how long a doubtful answer is read again: feedCheckWindow, shorter in tests
	wait    time.Duration // the first pause between reads
	logger  *slog.Logger
	// conn, when set, is the connection the feed is read over: cut off, a
	// read would wait out its whole timeout, so none is made.
	conn *nats.Conn

	mu     sync.Mutex
	handed handedEntry // the last entry handed over, if any
}

// handedEntry tells one feed entry from any other at its feed sequence: by
// its change (contact, name, previous status, time).
type handedEntry struct {
	feedSeq  uint64
	contact  string
	name     string
	previous events.Status
	at       time.Time
}

// entryOf is what tells c's feed entry from another at its feed sequence.
func entryOf(c Change) handedEntry {
	return handedEntry{feedSeq: c.Seq, contact: c.Contact, name: c.Name, previous: c.Previous, at: c.At}
}

// handing records c as the last change handed over.
func (f *feedWatch) handing(c Change) {
	f.mu.Lock()
	f.handed = entryOf(c)
	f.mu.Unlock()
}

func (f *feedWatch) lastHanded() handedEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handed
}

// feedCheckWindow is how long a feed that looks as if it went back, or has no
// leader, is read again: longer than a JetStream leader election.
const feedCheckWindow = 10 * time.Second

// errNoLeader: the feed's replicas are electing a leader.
var errNoLeader = errors.New("the feed (stream " + events.FeedStream + ") has no leader at the moment")

// check returns the feed's last sequence, or an error wrapping
// ErrFeedWentBack if the feed went back: created again, or ending before
// next-1, the last entry handed (0: none to check), or holding another entry
// where the last one handed over was. A feed that ends before, or that answers
// without a leader (from a replica's own copy, while its group elects one), is
// read again for up to window before that counts: a new cluster leader, or a
// replica behind, must not end a subscription.
func (f *feedWatch) check(ctx context.Context, next uint64) (uint64, error) {
	return f.checkHolding(ctx, next, f.lastHanded())
}

// checkHolding is check, with h as the entry the feed must still hold.
func (f *feedWatch) checkHolding(ctx context.Context, next uint64, h handedEntry) (uint64, error) {
	pause := retry.Backoff{First: f.wait, Max: time.Second}
	deadline := time.Now().Add(f.window)
	for {
		if f.conn != nil && !f.conn.IsConnected() {
			return 0, fmt.Errorf("read the feed: not connected to NATS (%s)", f.conn.Status())
		}
		last, now, err := feedLast(ctx, f.stream)
		if err == nil {
			if err = wentBack(f.created, now, last, next); err == nil {
				return last, f.holds(ctx, h)
			}
			if !now.Equal(f.created) {
				return last, err
			}
		} else if !errors.Is(err, errNoLeader) {
			return 0, err
		}
		if time.Now().After(deadline) {
			return last, err
		}
		if !pause.Wait(ctx) {
			return last, ctx.Err()
		}
	}
}

// feedLast returns the feed's last sequence, and when the feed was created.
func feedLast(ctx context.Context, stream jetstream.Stream) (uint64, time.Time, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read the feed: %w", err)
	}
	if info.Cluster != nil && info.Cluster.Leader == "" {
		// Answered by a replica while the feed's group elects a leader:
		// from its own copy, which may be behind.
		return info.State.LastSeq, info.Created, fmt.Errorf("read the feed: %w", errNoLeader)
	}
	return info.State.LastSeq, info.Created, nil
}

// wentBack returns an error wrapping ErrFeedWentBack if the feed, created at
// was and now found created at now and ending at last, no longer holds the
// entry before next that a subscription was handed.
func wentBack(was, now time.Time, last, next uint64) error {
	if !now.Equal(was) {
		return fmt.Errorf("%w: the feed (stream %s) was created again (at %s, was %s)",
			ErrFeedWentBack, events.FeedStream, now.UTC().Format(time.RFC3339Nano), was.UTC().Format(time.RFC3339Nano))
	}
	if last+1 < next {
		return fmt.Errorf("%w: the feed (stream %s) ends at seq %d, before seq %d this subscriber was handed",
			ErrFeedWentBack, events.FeedStream, last, next-1)
	}
	return nil
}

// holds returns an error wrapping ErrFeedWentBack if the feed holds another
// entry where h was; nil if it holds that one, or none there (removed by the
// feed's limits: a feed that ends before it is for wentBack to tell), or h is
// none, or the user may not get messages of the feed (as with the permissions
// of an older `presence auth`: nothing to compare, ever); another error if it
// cannot tell yet.
func (f *feedWatch) holds(ctx context.Context, h handedEntry) error {
	if h.feedSeq == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := f.stream.GetMsg(ctx, h.feedSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound), err != nil && tail.GetRefused(f.conn, events.FeedStream):
		return nil
	case err != nil:
		return fmt.Errorf("read the feed's entry at seq %d: %w", h.feedSeq, err)
	}
	if c, err := events.DecodeChange(msg.Data); err != nil || c.Contact != h.contact || c.Name != h.name || c.Previous != h.previous ||
		!c.At.Equal(h.at) {
		return fmt.Errorf("%w: the feed (stream %s) holds another entry at feed seq %d than the one this subscriber had there, "+
			"the change of %s at %s: it was restored from an older copy", ErrFeedWentBack, events.FeedStream, h.feedSeq,
			events.Quote(h.contact), h.at.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// gone returns an error wrapping ErrFeedWentBack if the feed was deleted (not
// found for window: a replica still loading the stream may say so for a
// moment) or created again, nil if it is the feed it was, or the error that
// kept it from telling.
func (f *feedWatch) gone(ctx context.Context) error {
	_, err := f.check(ctx, 0)
	pause := retry.Backoff{First: f.wait, Max: time.Second}
	for deadline := time.Now().Add(f.window); errors.Is(err, jetstream.ErrStreamNotFound) && time.Now().Before(deadline); {
		if !pause.Wait(ctx) {
			return ctx.Err()
		}
		_, err = f.check(ctx, 0)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: the feed (stream %s) was deleted", ErrFeedWentBack, events.FeedStream)
	}
	return err
}

// goneBack returns an error wrapping ErrFeedWentBack if the feed went back
// under what was handed over: deleted (for window), created again, ending
// before the last entry handed or holding another there; nil if not, or the
// error that kept it from telling.
func (f *feedWatch) goneBack(ctx context.Context) error {
	_, err := f.check(ctx, f.lastHanded().feedSeq+1)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return f.gone(ctx)
	}
	return err
}

// end returns the feed's last sequence, as its leader says: where the feed
// ends decides where a subscription starts, so it waits for a leader while
// there is none.
func (f *feedWatch) end(ctx context.Context) (uint64, error) {
	pause := retry.Backoff{First: f.wait}
	for {
		last, err := f.check(ctx, 0)
		if !errors.Is(err, errNoLeader) {
			return last, err
		}
		f.logger.Warn("subscriber: the feed has no leader; waiting for one")
		if !pause.Wait(ctx) {
			return 0, ctx.Err()
		}
	}
}

// same returns nil once it has read that the feed is the one the
// subscription found and holds the entry before next, an error wrapping
// ErrFeedWentBack if not, or ctx's error.
func (f *feedWatch) same(ctx context.Context, next uint64) error {
	return f.known(ctx, func() error {
		_, err := f.check(ctx, next)
		return err
	})
}

// wentBackUnder tells, once it can, whether the feed went back under a Tail
// of it that failed with cause, having read up to the entry read: an error
// wrapping ErrFeedWentBack if the Tail found another stream, or the feed was
// deleted or created again, or no longer holds the entry handed over last or
// the one read last (a new consumer reads on after it); nil if the feed is
// the one it was (its consumer alone went); or ctx's error.
func (f *feedWatch) wentBackUnder(ctx context.Context, cause error, read handedEntry) error {
	if errors.Is(cause, tail.ErrStreamChanged) {
		return fmt.Errorf("%w: %w", ErrFeedWentBack, cause)
	}
	err := f.known(ctx, func() error {
		err := f.goneBack(ctx)
		if err == nil && read.feedSeq > 0 {
			_, err = f.checkHolding(ctx, read.feedSeq+1, read)
		}
		return err
	})
	switch {
	case errors.Is(err, ErrFeedWentBack):
		return fmt.Errorf("%w (%v)", err, cause)
	case err == nil:
		f.logger.Warn("subscriber: the feed's consumer went; reading on with a new one", "err", cause)
	}
	return err
}

// known calls look again and again while it cannot tell, pausing between
// tries, and returns once it can: nil, an error wrapping ErrFeedWentBack, or
// ctx's error.
func (f *feedWatch) known(ctx context.Context, look func() error) error {
	pause := retry.Backoff{First: f.wait}
	for {
		err := look()
		if err == nil || errors.Is(err, ErrFeedWentBack) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.logger.Warn("subscriber: cannot read the feed; retrying", "err", err)
		if !pause.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// handedAgain is the error of who (a subscriber, a hub) being handed feed
// entry feedSeq, not after the one at feed seq last it handed over already:
// the feed went back.
func handedAgain(who string, feedSeq, last uint64) error {
	return fmt.Errorf("%w: handed feed entry %d, and %s handed over feed entry %d already: "+
		"the feed was derived again (the log restored or recreated, or the engine upgraded)", ErrFeedWentBack, feedSeq, who, last)
}
