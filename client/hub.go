package client

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// HubConfig configures a Hub.
type HubConfig struct {
	// Conn reaches the feed. Required.
	Conn *nats.Conn
	// Reader is what Change.Current reads through, typically the LocalReader
	// of a projection replica in this process. Required.
	Reader Reader
	// Logger receives what the hub notices. Zero means slog.Default().
	Logger *slog.Logger
	// Queue is how many batches of changes may wait for one subscriber before
	// it is cut off. Zero means 1024.
	Queue int
	// MaxBatch is the most changes handed on at once. Zero means 512.
	MaxBatch int
	// Start is where the hub begins in the feed: StartNew (the default),
	// StartAll or StartAtSeq. A hub does not start at a time.
	Start Start
}

// withDefaults returns c with its zero fields at their defaults.
func (c HubConfig) withDefaults() HubConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	return c
}

// Hub fans the feed out to many subscribers in one process: it is one
// Subscriber, reading the feed with an ordered consumer, whose changes are
// decoded once and whose current statuses are read once, for every
// subscriber that asks (Change.Current). Each subscriber has its own goroutine
// and a bounded queue; one that lets its queue fill up is cut off (its Run
// returns ErrSlowSubscriber) and never holds up the others. A hub hands over
// the changes from where HubConfig.Start says (by default those that reach the
// feed after it starts), in feed order. Its methods are safe for concurrent
// use.
type Hub struct {
	cfg HubConfig
	sub *Subscriber

	mu      sync.Mutex
	subs    map[*hubSub]struct{}
	stopped bool // Run has returned: nothing more comes

	changes    atomic.Uint64
	deliveries atomic.Uint64
	cutOff     atomic.Uint64
}

type hubSub struct {
	queue  chan []Change
	cut    chan struct{} // closed when cut off
	cancel context.CancelFunc
}

// NewHub returns a Hub; Run starts it.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Conn == nil || cfg.Reader == nil {
		return nil, errors.New("client: a hub needs a Conn and a Reader")
	}
	if cfg.Start.kind == startTime {
		return nil, badRequest(errors.New("hub start: a hub starts from now (StartNew), the start of the feed (StartAll) " +
			"or a feed position (StartAtSeq), not at a time"))
	}
	cfg = cfg.withDefaults()
	sub, err := NewSubscriber(SubscriberConfig{Conn: cfg.Conn, Reader: cfg.Reader, Logger: cfg.Logger,
		Start: cfg.Start, Batch: cfg.MaxBatch, LiveCheck: -1})
	if err != nil {
		return nil, err
	}
	sub.who = "the hub"
	return &Hub{cfg: cfg, sub: sub, subs: map[*hubSub]struct{}{}}, nil
}

// Ready returns a channel closed once the hub consumes the feed: every change
// that reaches the feed after that is handed over. It is not closed if Run
// fails before that.
func (h *Hub) Ready() <-chan struct{} { return h.sub.Ready() }

// Run consumes the feed and hands each batch of changes to every subscriber
// until ctx is done; it then returns nil, and the subscribers' Run calls
// return nil too. It returns an error wrapping ErrFeedWentBack if the feed goes
// back under it (as Subscriber.Run does), after the changes before that point
// were dispatched.
func (h *Hub) Run(ctx context.Context) error {
	defer h.closeAll() // however it ends, starting or not
	var batch []Change
	err := h.sub.deliver(ctx, func(_ context.Context, c Change, _ func()) error {
		batch = append(batch, c)
		return nil
	}, func() {
		if len(batch) > 0 {
			h.changes.Add(uint64(len(batch)))
			h.dispatch(batch)
			batch = nil // the subscribers hold it now
		}
	})
	if ctx.Err() != nil {
		return nil // stopped, perhaps while starting
	}
	return err
}

// dispatch queues a batch for every subscriber, cutting off those whose queue
// is full.
func (h *Hub) dispatch(changes []Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.queue <- changes:
		default:
			delete(h.subs, s)
			close(s.cut)
			s.cancel() // tell a handler that waits: it was cut off
			h.cutOff.Add(1)
		}
	}
}

func (h *Hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.queue)
	}
}

// HubSubscription is one subscriber of a hub. Its methods are safe for
// concurrent use; Run is called once.
type HubSubscription struct {
	h   *Hub
	sub *hubSub
	ctx context.Context // cancelled when cut off
}

// Subscribe registers a subscriber: every change that reaches the hub from now
// on is queued for it, for Run to hand to a handler. Once the hub has stopped,
// its Run returns nil at once.
func (h *Hub) Subscribe() *HubSubscription {
	ctx, cancel := context.WithCancel(context.Background())
	s := &hubSub{queue: make(chan []Change, h.cfg.Queue), cut: make(chan struct{}), cancel: cancel}
	h.mu.Lock()
	if h.stopped {
		close(s.queue) // its Run returns at once
	} else {
		h.subs[s] = struct{}{}
	}
	h.mu.Unlock()
	return &HubSubscription{h: h, sub: s, ctx: ctx}
}

// Run hands every queued change to handler, one at a time, in feed order, until
// ctx is done or the hub stops (it then returns nil), or the subscriber falls so
// far behind that it is cut off (ErrSlowSubscriber; the handler's context is
// cancelled then). A handler error hands the change over again after a pause,
// as with Subscriber. Run unregisters the subscriber when it returns.
func (hs *HubSubscription) Run(ctx context.Context, handler Handler) error {
	h, s := hs.h, hs.sub
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(hs.ctx, cancel)
	defer stop()
	defer func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		s.cancel()
	}()
	cutOff := func() bool {
		select {
		case <-s.cut:
			return true
		default:
			return false
		}
	}
	for {
		if cutOff() {
			return ErrSlowSubscriber
		}
		select {
		case <-ctx.Done():
			if cutOff() {
				return ErrSlowSubscriber
			}
			return nil
		case <-s.cut:
			return ErrSlowSubscriber
		case batch, ok := <-s.queue:
			if !ok {
				return nil
			}
			for _, c := range batch {
				if err := handleWithRetry(ctx, h.cfg.Logger, c, handler, h.sub.cfg.RetryWait, nil); err != nil {
					break // ctx done: cut off, or stopped
				}
				h.deliveries.Add(1)
			}
		}
	}
}

// HubMetrics is a snapshot of a hub's counters.
type HubMetrics struct {
	Changes    uint64 `json:"changes"`    // changes read from the feed
	Deliveries uint64 `json:"deliveries"` // changes handled by subscribers
	CutOff     uint64 `json:"cut_off"`    // subscribers cut off for being too slow
}

// Metrics returns a snapshot of the hub's counters.
func (h *Hub) Metrics() HubMetrics {
	return HubMetrics{Changes: h.changes.Load(), Deliveries: h.deliveries.Load(), CutOff: h.cutOff.Load()}
}
