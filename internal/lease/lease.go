// Package lease holds the key of a key-value bucket for one holder at a time,
// by what NATS offers and no election of its own: the holder is whoever
// created the key; it keeps the key by updating it (at the revision it wrote
// last) before the bucket's TTL removes it, and lets go by deleting it. The
// others watch the key, and race to create it once it is gone: deleted by a
// holder that stopped, or removed by the TTL after a holder that died or was
// cut off stopped updating it.
//
// A holder counts itself the holder only until the TTL, less a refresh, has
// passed since it last wrote the key (as its own clock measures, from before
// each write): a holder cut off from the server lets go of the key a refresh
// before the TTL gives it to another. That rests on clocks that run at about
// the same rate, not on their agreeing. A holder that restarts (the same
// Holder name) and finds the key still its own takes it back at once, rather
// than waiting out the TTL of its former self.
//
// A lease is about who should act, not a proof that no one else does: a
// holder paused past its deadline may act once more before it notices. What it
// guards must refuse the stale holder by a check of its own (the log's
// expected last sequence, for an owner of a partition).
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Lease.
type Config struct {
	// KV is the bucket. Its TTL is how long a key outlives its holder's last
	// update; with LimitMarkerTTL set, the others hear at once that it was
	// removed. Required.
	KV jetstream.KeyValue
	// Key is the key held. Required.
	Key string
	// Holder names this holder: the key's value while it holds it. Required.
	Holder string
	// Refresh is how often the holder updates the key, and how often the
	// others look at it besides watching it. Zero means a third of the
	// bucket's TTL.
	Refresh time.Duration
	// Logger receives what the lease notices. Zero means slog.Default().
	Logger *slog.Logger
	// Eligible, when set, says whether this holder may hold the key: it
	// takes the key only while Eligible says so, and lets go of it once
	// Eligible says no (an owner whose view of the log is not current, or
	// that holds more than its share).
	Eligible func() bool
	// Settle, when set, is called as the holder lets go of the key, after it
	// counts itself the holder no more and before it deletes the key: it
	// returns once what the key guards is settled (an owner's appends in
	// flight answered), so that the next holder starts after them. The
	// holder keeps the key meanwhile, however long it takes.
	Settle func()
}

// Lease competes for one key. Its methods are safe for concurrent use.
type Lease struct {
	cfg Config
	ttl time.Duration

	mu      sync.Mutex
	held    bool
	holder  string        // the key's holder as last seen; "" if none
	changed chan struct{} // closed and replaced when held changes
	expiry  *time.Timer   // lets go of the key at the holder's deadline
}

// New checks cfg and returns a Lease; Run competes for the key.
func New(ctx context.Context, cfg Config) (*Lease, error) {
	if cfg.KV == nil || cfg.Key == "" || cfg.Holder == "" {
		return nil, errors.New("lease: a lease needs a KV, a Key and a Holder")
	}
	status, err := cfg.KV.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease: bucket %s: %w", cfg.KV.Bucket(), err)
	}
	ttl := status.TTL()
	if ttl <= 0 {
		return nil, fmt.Errorf("lease: bucket %s has no TTL: a holder that died would hold %s for ever", cfg.KV.Bucket(), cfg.Key)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = ttl / 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Lease{cfg: cfg, ttl: ttl, changed: make(chan struct{})}, nil
}

// Held reports whether this holder holds the key, as of its last update.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// Holder returns who holds the key, as last seen: "" if no one.
func (l *Lease) Holder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

// Changed returns a channel closed the next time Held changes.
func (l *Lease) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Lease) set(held bool, holder string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holder = holder
	if held == l.held {
		return
	}
	l.held = held
	close(l.changed)
	l.changed = make(chan struct{})
	l.cfg.Logger.Info("lease: "+map[bool]string{true: "holding", false: "not holding"}[held], "key", l.cfg.Key, "holder", holder)
}

// Run competes for the key until ctx is done, then lets go of it if it holds
// it (so that another takes it at once) and returns nil.
func (l *Lease) Run(ctx context.Context) error {
	watcher, err := l.cfg.KV.Watch(ctx, l.cfg.Key, jetstream.UpdatesOnly())
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("lease: watch %s: %w", l.cfg.Key, err)
	}
	defer func() {
		if watcher != nil {
			_ = watcher.Stop()
		}
	}()
	var rev uint64 // the revision this holder wrote last
	tick := time.NewTicker(l.cfg.Refresh)
	defer tick.Stop()
	for {
		switch {
		case l.Held() && !l.eligible():
			l.cfg.Logger.Warn("lease: no longer eligible; letting go of the key", "key", l.cfg.Key)
			l.release(rev)
			rev = 0
		case l.Held():
			rev = l.keep(ctx, rev)
		case l.eligible():
			rev = l.take(ctx)
		}
		if !l.wait(ctx, tick, &watcher) {
			l.release(rev)
			return nil
		}
	}
}

// wait returns true at the next tick, or at once when the key goes while this
// holder does not hold it; false once ctx is done.
func (l *Lease) wait(ctx context.Context, tick *time.Ticker, watcher *jetstream.KeyWatcher) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			return true
		case e, ok := <-Updates(*watcher):
			if !ok {
				*watcher = nil // its connection went: the ticker alone tells
				continue
			}
			switch {
			case e == nil:
			case e.Operation() == jetstream.KeyValuePut:
				l.saw(string(e.Value()))
			case !l.Held():
				l.saw("")
				return true // deleted, or removed by the TTL: take it at once
			}
		}
	}
}

// saw records who holds the key, as the watch tells, unless this holder
// holds it.
func (l *Lease) saw(holder string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		l.holder = holder
	}
}

// Updates returns w's updates; nil (never ready, for a select) if w is nil,
// as a watch is whose connection went.
func Updates(w jetstream.KeyWatcher) <-chan jetstream.KeyValueEntry {
	if w == nil {
		return nil
	}
	return w.Updates()
}

func (l *Lease) eligible() bool { return l.cfg.Eligible == nil || l.cfg.Eligible() }

// take creates the key if no one holds it, and returns the revision written.
func (l *Lease) take(ctx context.Context) uint64 {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Refresh)
	defer cancel()
	at := time.Now()
	e, err := l.cfg.KV.Get(ctx, l.cfg.Key)
	switch {
	case err == nil && string(e.Value()) == l.cfg.Holder:
		// Still this holder's: written before a restart, or not updated
		// before the deadline. Taken back if no one took it meanwhile.
		rev, err := l.cfg.KV.Update(ctx, l.cfg.Key, []byte(l.cfg.Holder), e.Revision())
		if err != nil {
			l.cfg.Logger.Debug("lease: cannot take back the key", "key", l.cfg.Key, "err", err)
			return 0
		}
		l.extend(at)
		l.set(true, l.cfg.Holder)
		return rev
	case err == nil:
		l.set(false, string(e.Value()))
		return 0
	case !errors.Is(err, jetstream.ErrKeyNotFound), ctx.Err() != nil:
		l.cfg.Logger.Debug("lease: cannot read the key", "key", l.cfg.Key, "err", err)
		return 0
	}
	at = time.Now()
	rev, err := l.cfg.KV.Create(ctx, l.cfg.Key, []byte(l.cfg.Holder))
	if err != nil {
		// Another was first, or the server cannot say: looked at again.
		l.cfg.Logger.Debug("lease: cannot take the key", "key", l.cfg.Key, "err", err)
		return 0
	}
	l.extend(at)
	l.set(true, l.cfg.Holder)
	return rev
}

// keep updates the key at the revision written last. A revision that does not
// match (another holds it now) lets go of it; so does the deadline, if no
// update succeeds before it (extend).
func (l *Lease) keep(ctx context.Context, rev uint64) uint64 {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Refresh)
	defer cancel()
	at := time.Now()
	next, err := l.cfg.KV.Update(ctx, l.cfg.Key, []byte(l.cfg.Holder), rev)
	if err == nil {
		l.extend(at)
		return next
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		l.cfg.Logger.Warn("lease: lost the key", "key", l.cfg.Key, "err", err)
		l.set(false, "")
		return 0
	}
	l.cfg.Logger.Debug("lease: cannot update the key; trying again", "key", l.cfg.Key, "err", err)
	return rev
}

// extend holds the key until the TTL less a refresh after at, when the key was
// last written, unless it is written again before.
func (l *Lease) extend(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := time.Until(at.Add(l.ttl - l.cfg.Refresh))
	if l.expiry == nil {
		l.expiry = time.AfterFunc(d, l.expire)
	} else {
		l.expiry.Reset(d)
	}
}

// expire lets go of the key at the deadline extend set.
func (l *Lease) expire() {
	if l.Held() {
		l.cfg.Logger.Warn("lease: the key was not updated in time; letting go of it", "key", l.cfg.Key)
		l.set(false, "")
	}
}

// settle calls Settle, keeping the key meanwhile (at each refresh, at the
// revision written last), so that the TTL does not give it to another before
// what it guards is settled. It returns the revision written last; 0 if the
// key was lost meanwhile.
func (l *Lease) settle(rev uint64) uint64 {
	if l.cfg.Settle == nil {
		return rev
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.cfg.Settle()
	}()
	tick := time.NewTicker(l.cfg.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return rev
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Refresh)
			next, err := l.cfg.KV.Update(ctx, l.cfg.Key, []byte(l.cfg.Holder), rev)
			cancel()
			switch {
			case err == nil:
				rev = next
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
				l.cfg.Logger.Warn("lease: lost the key while settling", "key", l.cfg.Key, "err", err)
				<-done
				return 0
			}
		}
	}
}

// release deletes the key at the revision written last, so that another takes
// it at once: this holder counts itself the holder no more before it does.
func (l *Lease) release(rev uint64) {
	l.mu.Lock()
	if l.expiry != nil {
		l.expiry.Stop()
	}
	l.mu.Unlock()
	l.set(false, "")
	if rev == 0 {
		return
	}
	rev = l.settle(rev)
	if rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.cfg.KV.Delete(ctx, l.cfg.Key, jetstream.LastRevision(rev)); err != nil {
		l.cfg.Logger.Debug("lease: cannot let go of the key; it expires by itself", "key", l.cfg.Key, "err", err)
	}
}
