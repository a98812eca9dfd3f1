package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/retry"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Conn reaches the feed. Required.
	Conn *nats.Conn
	// Reader is what Change.Current reads through: the engine's LocalReader
	// in-process, or a Client anywhere. Required.
	Reader Reader
	// Durable names a subscription that survives restarts: a JetStream durable
	// consumer, each change acknowledged once handled, resuming where it stopped.
	// Zero means an ephemeral subscription (no acks).
	Durable string
	// Start is where a subscription begins when it has no stored position; a
	// durable that exists resumes instead. Zero means StartNew.
	Start Start
	// Contacts limits the subscription to these contacts. Zero means all.
	Contacts []string
	// Logger receives what the subscriber notices. Zero means slog.Default().
	Logger *slog.Logger
	// Batch is how many changes are read from the feed at once. Zero means 256.
	Batch int
	// AckWait is how long a durable's change may stay unacknowledged before the
	// server hands it over again (after a subscriber crash). Zero means 30s.
	AckWait time.Duration
	// RetryWait is the first pause before handing a change over again after the
	// handler failed; it doubles up to 30s. Zero means 100ms.
	RetryWait time.Duration
	// LiveCheck applies to an ephemeral subscription to every contact: it is
	// handed new changes as the engine repeats them on core NATS
	// (events.LivePrefix), with no JetStream consumer while it keeps up, and
	// reads the feed to catch up from where it starts, over a gap, and when it
	// has been handed nothing for LiveCheck while the feed holds more. Zero
	// means 1s; negative reads every change from a consumer of the feed
	// instead.
	LiveCheck time.Duration
}

// withDefaults returns c with its zero fields at their defaults.
func (c SubscriberConfig) withDefaults() SubscriberConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryWait <= 0 {
		c.RetryWait = 100 * time.Millisecond
	}
	if c.LiveCheck == 0 {
		c.LiveCheck = time.Second
	}
	return c
}

// maxDurableName is the longest name the server takes for a consumer.
const maxDurableName = 255

// validate checks what cannot be defaulted; bad input is an ErrBadRequest that
// names the value.
func (c SubscriberConfig) validate() error {
	if c.Conn == nil || c.Reader == nil {
		return errors.New("client: a subscriber needs a Conn and a Reader")
	}
	if c.Durable != "" && strings.ContainsAny(c.Durable, " \t\r\n.*>/\\") {
		return badRequest(fmt.Errorf("durable name %s: it may not hold whitespace, '.', '*', '>', '/' or '\\'",
			events.Quote(c.Durable)))
	}
	if len(c.Durable) > maxDurableName {
		// Quote shortens it, saying its length.
		return badRequest(fmt.Errorf("durable name %s: at most %d bytes", events.Quote(c.Durable), maxDurableName))
	}
	for _, contact := range c.Contacts {
		if err := events.ValidateContact(contact); err != nil {
			return badRequest(err)
		}
	}
	return nil
}

// Subscriber consumes the feed and hands each change to a handler, one at a
// time, in feed order, each once. Where the changes come from is its source,
// chosen by its configuration: the engine's repeats on core NATS (reading the
// feed itself only to catch up), an ordered consumer of the feed, or a durable
// consumer. Each subscriber reads on its own: a slow one falls behind alone and
// slows neither the fold, the feed nor other subscribers.
type Subscriber struct {
	cfg    SubscriberConfig
	js     jetstream.JetStream
	logger *slog.Logger
	ready  chan struct{} // closed once the source exists
	who    string        // what the subscriber is, in errors: "this subscriber", "the hub"
	// skipBelow drops changes before the feed position StartAtSeq named: a
	// read never starts before it, but a live subscription may be handed
	// repeats from before it first.
	skipBelow uint64
	// notBefore, when a subscription starts at a time still to come (the
	// feed holds no entry from it yet), drops changes made before that
	// time, until one is not: the read starts at the feed's end, and what it
	// is handed first may still be older.
	notBefore time.Time
	// feed tells whether the feed went back under the subscription.
	feed *feedWatch
	// handed is the feed position of the last change handed over: one at or
	// before it means that the feed went back (created again).
	handed   uint64
	catchUps atomic.Uint64
	// lookEvery is how often a subscription reading a consumer looks at the
	// feed: feedLookEvery, longer in tests.
	lookEvery time.Duration
	// dropLive, in tests, loses the repeats it returns true for.
	dropLive func(feedSeq uint64) bool
}

// NewSubscriber checks cfg and returns a Subscriber; Run starts it.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, js: js, logger: cfg.Logger, ready: make(chan struct{}), who: "this subscriber", lookEvery: feedLookEvery,
		feed: &feedWatch{window: feedCheckWindow, wait: cfg.RetryWait, conn: cfg.Conn, logger: cfg.Logger}}, nil
}

// CatchUps returns how many times a subscription following the feed on core
// NATS has read the feed itself to catch up, past where it started: a repeat
// was lost (a slow handler, a reconnection) or is late.
func (s *Subscriber) CatchUps() uint64 { return s.catchUps.Load() }

// Ready returns a channel closed once the subscription reads the feed: with
// StartNew, every change accepted after that is handed over.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Run hands changes to h until ctx is done, then returns nil. A handler error
// hands the change over again after a pause (RetryWait, doubling up to 30s).
// A durable acknowledges each change once h has returned nil for it, and its
// next run resumes right after the last change acknowledged: after a clean
// stop nothing is missed and nothing repeated; after a crash, the change in
// hand may come again. While Run goes on, nothing is missed or repeated either
// when the server restarts or the connection moves. One process at a time runs
// a given durable.
//
// An ephemeral subscription returns an error wrapping ErrFeedWentBack when the
// feed goes back under it: the engine found the log restored from an older copy
// or recreated, and derived the feed again. Changes it had handed over may be
// gone from history, or come again with other content; it does not hand them
// over as if nothing happened. A durable returns an error when its consumer, and
// the position it holds, is gone: wrapping ErrFeedWentBack when the feed was
// deleted or created again. Once ctx is done Run returns nil, whatever else
// was happening then.
func (s *Subscriber) Run(ctx context.Context, h Handler) error {
	err := s.deliver(ctx, func(ctx context.Context, c Change, busy func()) error {
		return handleWithRetry(ctx, s.logger, c, h, s.cfg.RetryWait, busy)
	}, func() {})
	if ctx.Err() != nil {
		return nil // stopped, perhaps while starting
	}
	return err
}

// deliver opens the source and passes each change it may hand over to take,
// in feed order, and calls flush after each batch of the source. take returns
// an error only when ctx ended first; busy keeps the change in hand from being
// handed over again meanwhile (a durable's). Changes that do not decode, or
// come before where the subscription starts, are stepped over.
func (s *Subscriber) deliver(ctx context.Context, take func(ctx context.Context, c Change, busy func()) error, flush func()) error {
	src, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer src.close()
	close(s.ready)
	for {
		b, err := src.next(ctx)
		if err != nil {
			return err
		}
		for i := range b.entries {
			if ctx.Err() != nil {
				flush()
				return ctx.Err() // left unacknowledged: a durable's next run resumes before it
			}
			e, c := &b.entries[i], b.changes[i]
			if c.Contact != "" && !s.early(c) {
				if c.Seq <= s.handed {
					flush()
					return handedAgain(s.who, c.Seq, s.handed)
				}
				if err := take(ctx, c, func() { src.busy(e) }); err != nil {
					flush()
					return err
				}
				s.handed = c.Seq
				s.feed.handing(c)
			}
			if !src.done(e) {
				break // the source hands the rest over again
			}
		}
		flush()
	}
}

// open makes the subscription's source.
func (s *Subscriber) open(ctx context.Context) (source, error) {
	stream, err := s.js.Stream(ctx, events.FeedStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("the feed (stream %s) does not exist on this server: is `presence serve` running against it?", events.FeedStream)
	}
	if err != nil {
		return nil, fmt.Errorf("open the feed (stream %s): %w", events.FeedStream, err)
	}
	s.feed.stream, s.feed.created = stream, stream.CachedInfo().Created
	switch {
	case s.cfg.Durable != "":
		return s.openDurable(ctx, stream)
	case len(s.cfg.Contacts) == 0 && s.cfg.LiveCheck > 0:
		return s.openLive(ctx, stream)
	}
	return s.openOrdered(ctx, stream)
}

// subjects are the feed subjects the subscription follows.
func (s *Subscriber) subjects() []string {
	if len(s.cfg.Contacts) == 0 {
		return []string{events.ChangesPrefix + ">"}
	}
	subjects := make([]string, 0, len(s.cfg.Contacts))
	for _, c := range s.cfg.Contacts {
		subjects = append(subjects, events.ChangeSubject(c))
	}
	return subjects
}

// position is where a read of the feed begins: the entry at a feed sequence
// (0 or 1: the first), or else the first entry stored at or after a time.
type position struct {
	seq   uint64
	since time.Time
}

// from translates Start into where a read of the feed begins.
func (s *Subscriber) from(ctx context.Context, stream jetstream.Stream) (position, error) {
	switch s.cfg.Start.kind {
	case startAll:
		return position{seq: 1}, nil
	case startSeq:
		s.skipBelow = s.cfg.Start.seq
		return position{seq: max(s.cfg.Start.seq, 1)}, nil
	case startTime:
		t := s.cfg.Start.at
		if t.After(time.Now()) {
			s.notBefore = t
		}
		return position{since: t}, nil
	}
	// From the sequence after the feed's end, not "deliver new": a consumer
	// made again (after a reconnection) before it was handed anything would
	// start after what was stored meanwhile.
	last, err := s.feed.end(ctx)
	return position{seq: last + 1}, err
}

// prepare decodes a batch of feed entries, one change per entry (a zero
// Change for one that does not decode or comes before StartAtSeq). A change
// whose repeat carried its current status reads that. The others share their
// reads, with every subscriber of a hub too: when the reader reads in
// batches, the first Current of the batch reads the status of every contact
// in it at once, from a projection that has applied the log up to the batch's
// last change, so that no read is older than its change; otherwise each
// change's status is read once.
func (s *Subscriber) prepare(entries []entry) batch {
	b := batch{entries: entries, changes: make([]Change, len(entries))}
	if batchR, ok := s.cfg.Reader.(BatchReader); ok {
		b.lookup = &lookupBatch{reader: batchR}
	}
	for i, m := range entries {
		c, err := events.DecodeChange(m.data)
		if err != nil {
			s.logger.Error("subscriber: skipping a feed entry that does not decode", "feed_seq", m.feedSeq, "err", err)
			continue
		}
		if m.feedSeq < s.skipBelow {
			continue
		}
		b.changes[i] = Change{Contact: c.Contact, Name: c.Name, Previous: c.Previous, Seq: m.feedSeq, At: c.At,
			FeedSeq: m.feedSeq, reader: s.cfg.Reader}
		if cur := m.current; cur != nil && cur.Contact == c.Contact && cur.Seq >= m.feedSeq {
			b.changes[i].memo = (*carried)(cur)
		} else if b.lookup != nil {
			b.lookup.add(c.Contact, m.feedSeq)
			b.changes[i].memo = b.lookup
		} else {
			b.changes[i].memo = &lookupOne{}
		}
	}
	if b.lookup != nil && len(b.lookup.contacts) == 0 {
		b.lookup = nil // every change is stepped over, or carries its status
	}
	return b
}

// early reports whether c was made before the time the subscription starts at
// and is to be stepped over; the first change that was not ends the check.
func (s *Subscriber) early(c Change) bool {
	if s.notBefore.IsZero() {
		return false
	}
	if c.At.Before(s.notBefore) {
		return true
	}
	s.notBefore = time.Time{}
	return false
}

// handleWithRetry hands a change to h again and again while h fails, pausing
// between tries (first, doubling up to 30s) and calling busy, if any, before
// each pause. It returns an error only when ctx ended first.
func handleWithRetry(ctx context.Context, logger *slog.Logger, c Change, h Handler, first time.Duration, busy func()) error {
	pause := retry.Backoff{First: first}
	for {
		err := h(ctx, c)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("subscriber: handler failed; handing the change over again", "contact", c.Contact, "feed_seq", c.Seq, "err", err)
		if busy != nil {
			busy()
		}
		if !pause.Wait(ctx) {
			return ctx.Err()
		}
	}
}
