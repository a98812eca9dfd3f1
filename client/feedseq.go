package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
)

// feedSeqOf returns the feed sequence of the first entry whose log sequence is at
// least logSeq (one past the feed's end if there is none). The feed is in log
// order, and its entries' log sequences grow about evenly with their feed
// sequences (by one, and the hidden changes between), so it guesses where the
// entry is from the entries it has read and reads a handful of entries where a
// bisection would read twenty: each read of an entry far from the last one
// can cost the server a block read from disk.
//
// An entry removed from the feed's start while it reads (the feed's limits) has
// it start again, a few times.
func feedSeqOf(ctx context.Context, feed jetstream.Stream, logSeq uint64) (uint64, error) {
	for tries := 1; ; tries++ {
		seq, err := findFeedSeq(ctx, feed, logSeq)
		if !errors.Is(err, jetstream.ErrMsgNotFound) || tries == 3 {
			return seq, err
		}
	}
}

func findFeedSeq(ctx context.Context, feed jetstream.Stream, logSeq uint64) (uint64, error) {
	info, err := feed.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the feed: %w", err)
	}
	if info.State.Msgs == 0 {
		return info.State.LastSeq + 1, nil
	}
	logSeqAt := func(feedSeq uint64) (uint64, error) {
		msg, err := feed.GetMsg(ctx, feedSeq)
		if err != nil {
			return 0, fmt.Errorf("read the feed at seq %d: %w", feedSeq, err)
		}
		c, err := events.DecodeChange(msg.Data)
		if err != nil {
			return 0, fmt.Errorf("feed entry %d: %w", feedSeq, err)
		}
		return c.Seq, nil
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq
	hiLog, err := logSeqAt(hi)
	if err != nil || hiLog < logSeq {
		return hi + 1, err
	}
	if lo == hi {
		return hi, nil
	}
	loLog, err := logSeqAt(lo)
	if err != nil || loLog >= logSeq {
		return lo, err
	}
	// The entry at lo comes before logSeq, the one at hi does not: the
	// answer is in (lo, hi]. A guess that narrows it by less than half is
	// followed by a bisection, so that it never takes more reads than
	// twice a bisection's.
	bisect := false
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if !bisect {
			mid = lo + uint64(float64(hi-lo)*float64(logSeq-loLog)/float64(hiLog-loLog))
			mid = min(max(mid, lo+1), hi-1)
		}
		width := hi - lo
		at, err := logSeqAt(mid)
		if err != nil {
			return 0, err
		}
		if at >= logSeq {
			hi, hiLog = mid, at
		} else {
			lo, loLog = mid, at
		}
		bisect = !bisect && hi-lo > width/2
	}
	return hi, nil
}
