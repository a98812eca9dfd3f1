package engine

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/lease"
)

// share spreads the partitions of the log over the engines: each engine owns
// at most its share, the partitions divided by the engines that can own them
// (rounded up). An engine counts those by a key of each in the owners' bucket
// (events.EngineKey), which it writes while its projection has caught up,
// deletes as it stops, and which the bucket's TTL removes after an engine
// that died; it watches the keys, so that the count follows at once. An engine holding
// more than its share (another engine came) lets go of its highest
// partitions, one by one, after settling their appends; an engine under its
// share takes free ones. With one partition, the share is always one: the
// first engine ready owns the log.
type share struct {
	kv      jetstream.KeyValue
	id      string
	ready   func() bool
	leases  []*lease.Lease // one a partition, in partition order
	refresh time.Duration
	logger  *slog.Logger
	engines atomic.Int64 // engines counted last, this one included
}

// eligible reports whether this engine may hold partition p: if it holds p,
// whether p is within its share (counting its partitions from the lowest);
// if not, whether it holds fewer than its share.
func (s *share) eligible(p int) bool {
	if !s.ready() {
		return false
	}
	quota := s.quota()
	held := 0
	for q, l := range s.leases {
		if q == p && l.Held() {
			return held < quota
		}
		if l.Held() {
			held++
		}
	}
	return held < quota
}

// quota returns this engine's share.
func (s *share) quota() int {
	n := max(1, int(s.engines.Load()))
	return (len(s.leases) + n - 1) / n
}

// run writes this engine's key every refresh while it can own partitions,
// and counts the engines' keys as they come and go, until ctx is done; then it
// deletes its key, so that the others count it no more at once.
func (s *share) run(ctx context.Context) {
	key := events.EngineKey(s.id)
	tick := time.NewTicker(s.refresh)
	defer tick.Stop()
	live := map[string]bool{}
	var watcher jetstream.KeyWatcher
	defer func() {
		if watcher != nil {
			_ = watcher.Stop()
		}
	}()
	written := false
	put := func() {
		pctx, cancel := context.WithTimeout(ctx, s.refresh)
		defer cancel()
		if !s.ready() {
			// Fallen behind the log, it owns nothing: the others count it
			// no more, and share its partitions out among themselves.
			if written && s.kv.Delete(pctx, key) == nil {
				written = false
			}
			return
		}
		if _, err := s.kv.Put(pctx, key, []byte(s.id)); err != nil && ctx.Err() == nil {
			s.logger.Debug("share: cannot write this engine's key", "key", key, "err", err)
			return
		}
		written = true
	}
	put()
	for {
		if watcher == nil {
			// Its first updates are the keys as they are, then each
			// change: a put, a delete, a removal by the TTL.
			var err error
			if watcher, err = s.kv.Watch(ctx, events.EngineKey(">")); err != nil && ctx.Err() == nil {
				s.logger.Debug("share: cannot watch the engines' keys; keeping the count", "err", err)
			}
			clear(live)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.kv.Delete(dctx, key)
			cancel()
			return
		case <-tick.C:
			put()
		case e, ok := <-lease.Updates(watcher):
			switch {
			case !ok:
				watcher = nil // its connection went: watched again
			case e != nil && e.Operation() == jetstream.KeyValuePut:
				live[e.Key()] = true
			case e != nil:
				delete(live, e.Key())
			}
			if n := int64(len(live)); ok && e != nil && s.engines.Swap(n) != n {
				s.logger.Info("share: engines that can own partitions", "engines", n, "partitions", len(s.leases), "share", s.quota())
			}
		}
	}
}
