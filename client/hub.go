package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/tail"
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

// Hub fans the feed out to many subscribers in one process over a single
// consumer: each change is read and decoded once, and its current status is
// read once, for every subscriber that asks (Change.Current). Each subscriber
// has its own goroutine and a bounded queue; one that lets its queue fill up is
// cut off (Subscribe returns ErrSlowSubscriber) and never holds up the others.
// A hub hands over the changes from where HubConfig.Start says (by default
// those that reach the feed after it starts), in feed order. Its methods are safe for concurrent use.
type Hub struct {
	cfg    HubConfig
	js     jetstream.JetStream
	logger *slog.Logger
	ready  chan struct{}

	mu      sync.Mutex
	subs    map[*hubSub]struct{}
	stopped bool // Run has returned: nothing more comes

	changes    atomic.Uint64
	deliveries atomic.Uint64
	cutOff     atomic.Uint64
}

// hubChange is a change shared by every subscriber, with its current status read
// at most once.
type hubChange struct {
	Change
	once  sync.Once
	reply Reply
	err   error
}

type hubSub struct {
	queue  chan []*hubChange
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
			"or a log sequence (StartAtSeq), not at a time"))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, err
	}
	return &Hub{cfg: cfg, js: js, logger: cfg.Logger, ready: make(chan struct{}), subs: map[*hubSub]struct{}{}}, nil
}

// Ready returns a channel closed once the hub consumes the feed: every change
// that reaches the feed after that is handed over. It is not closed if Run
// fails before that.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run consumes the feed and hands each batch of changes to every subscriber
// until ctx is done; it then returns nil, and the subscribers' Subscribe calls
// return nil too. It returns an error wrapping ErrFeedWentBack if the feed goes
// back under it (as Subscriber.Run does), after the changes before that point
// were dispatched.
func (h *Hub) Run(ctx context.Context) error {
	defer h.closeAll() // however it ends, starting or not
	err := h.run(ctx)
	if ctx.Err() != nil {
		return nil // stopped, perhaps while starting
	}
	return err
}

func (h *Hub) run(ctx context.Context) error {
	stream, err := h.js.Stream(ctx, events.FeedStream)
	if err != nil {
		return fmt.Errorf("open the feed (stream %s): %w", events.FeedStream, err)
	}
	feed := feedWatch{stream: stream, created: stream.CachedInfo().Created, window: feedCheckWindow, wait: 100 * time.Millisecond}
	from, skipBelow, err := h.from(ctx, stream)
	if err != nil {
		return err
	}
	reader, err := tail.Start(ctx, stream, tail.Config{
		From: from, Buffer: h.cfg.MaxBatch, Logger: h.logger, Conn: h.js.Conn(),
	})
	if err != nil {
		return err
	}
	defer reader.Stop()
	close(h.ready)
	var (
		batch []tail.Record
		last  uint64 // the log sequence of the last change handed over
	)
	for {
		batch, err = reader.Next(ctx, batch, h.cfg.MaxBatch)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// The feed's consumer is gone with a feed deleted, and
			// perhaps created again and derived from another log, or the
			// feed went back: restored from an older copy.
			gerr := feed.goneBack(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(gerr, ErrFeedWentBack) {
				return fmt.Errorf("%w (%v)", gerr, err)
			}
			return fmt.Errorf("read the feed: %w", err)
		}
		changes := make([]*hubChange, 0, len(batch))
		for _, r := range batch {
			c, err := events.DecodeChange(r.Data)
			if err != nil {
				h.logger.Error("hub: skipping a feed entry that does not decode", "seq", r.Seq, "err", err)
				continue
			}
			if c.Seq < skipBelow {
				continue
			}
			if c.Seq <= last {
				if len(changes) > 0 {
					h.changes.Add(uint64(len(changes)))
					h.dispatch(changes)
				}
				return handedAgain("the hub", r.Seq, c.Seq, last)
			}
			last = c.Seq
			changes = append(changes, &hubChange{Change: Change{Contact: c.Contact, Name: c.Name,
				Previous: c.Previous, Seq: c.Seq, At: c.At, FeedSeq: r.Seq}})
		}
		if len(changes) == 0 {
			continue
		}
		h.changes.Add(uint64(len(changes)))
		h.dispatch(changes)
		feed.handing(changes[len(changes)-1].Change)
	}
}

// from translates Start into the first feed sequence to read, and the log
// sequence below which changes are skipped.
func (h *Hub) from(ctx context.Context, stream jetstream.Stream) (feedSeq, skipBelow uint64, err error) {
	switch h.cfg.Start.kind {
	case startAll:
		return 1, 0, nil
	case startSeq:
		seq, err := FeedSeqOf(ctx, stream, h.cfg.Start.seq)
		return seq, h.cfg.Start.seq, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read the feed: %w", err)
	}
	return info.State.LastSeq + 1, 0, nil
}

// dispatch queues a batch for every subscriber, cutting off those whose queue
// is full.
func (h *Hub) dispatch(changes []*hubChange) {
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
	s := &hubSub{queue: make(chan []*hubChange, h.cfg.Queue), cut: make(chan struct{}), cancel: cancel}
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
				ch := c.Change
				ch.reader, ch.memo = h.cfg.Reader, c
				if err := handleWithRetry(ctx, h.logger, ch, handler, 100*time.Millisecond, nil); err != nil {
					break // ctx done: cut off, or stopped
				}
				h.deliveries.Add(1)
			}
		}
	}
}

// current reads the change's current status once, for every subscriber.
func (c *hubChange) current(ctx context.Context, ch *Change) (Reply, error) {
	c.once.Do(func() { c.reply, c.err = ch.reader.Status(ctx, c.Contact, c.Seq) })
	if c.err != nil {
		// A failed read is not kept: the next caller reads again.
		return ch.reader.Status(ctx, c.Contact, c.Seq)
	}
	return c.reply, nil
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
