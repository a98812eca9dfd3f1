package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/retry"
	"github.com/presence-engine/presence/internal/tail"
)

// feedConfig configures a Feed.
type feedConfig struct {
	// Conn reaches the log and the feed. Required.
	Conn *nats.Conn
	// Logger receives what the feed notices. Zero means slog.Default().
	Logger *slog.Logger
	// MaxInFlight bounds the feed entries published and not yet acknowledged.
	// Zero means 4096.
	MaxInFlight int
	// AckTimeout bounds the wait for one entry's acknowledgement. Zero means 10s.
	AckTimeout time.Duration
	// RetryWait is the pause before starting again after a fault. Zero means 250ms.
	RetryWait time.Duration
	// Current, when set, reads the contact's current visible status for each
	// entry repeated on events.LivePrefix, at least as new as the entry's
	// change: the repeat carries it (client.CurrentHeader), so that a
	// subscriber following the
	// repeats has its read with the change. Nil repeats the entry alone.
	Current appliedReader
}

// appliedReader reads a projection's statuses and says how far it has
// applied the log: the engine's LocalReader.
type appliedReader interface {
	client.Reader
	Applied() uint64
}

// Feed derives the feed from the log: for each event, in log order, the entry
// that subscribers see (events.ChangeOf), or nothing for a change they cannot
// see. Exactly once: every entry is published with the feed sequence it must
// land at (Nats-Expected-Last-Sequence), so nothing is ever stored twice or out
// of order, whoever else publishes; after any fault or restart the feed resumes
// from the log sequence of its own last entry. Several engines may run a Feed on
// one log: one wins each entry, the others resynchronise.
//
// Its methods are safe for concurrent use.
type feed struct {
	cfg    feedConfig
	js     jetstream.JetStream
	logger *slog.Logger

	position  atomic.Uint64 // log sequence up to which the feed is complete
	logLast   atomic.Uint64 // the log's last sequence, as last seen
	published atomic.Uint64
	resyncs   atomic.Uint64
	purges    atomic.Uint64

	repeats        chan repeat // to the repeater, in feed order
	repeatsDropped atomic.Uint64
}

// repeat is a feed entry the feed has stored, to be repeated on events.LivePrefix.
type repeat struct {
	msg     *nats.Msg
	contact string
	feedSeq uint64
	logSeq  uint64
}

// withDefaults returns c with its zero fields at their defaults.
func (c feedConfig) withDefaults() feedConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.RetryWait <= 0 {
		c.RetryWait = 250 * time.Millisecond
	}
	return c
}

// newFeed returns a Feed; Run starts it.
func newFeed(cfg feedConfig) (*feed, error) {
	if cfg.Conn == nil {
		return nil, errors.New("engine: a feed needs a NATS connection")
	}
	cfg = cfg.withDefaults()
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncMaxPending(2*cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, err
	}
	return &feed{cfg: cfg, js: js, logger: cfg.Logger, repeats: make(chan repeat, cfg.MaxInFlight)}, nil
}

// Run derives the feed until ctx is done, then returns nil.
func (f *feed) Run(ctx context.Context) error {
	repeater := make(chan struct{})
	defer func() { <-repeater }()
	go func() {
		defer close(repeater)
		f.repeat(ctx)
	}()
	pause := retry.Backoff{First: f.cfg.RetryWait, Max: maxFeedWait}
	for {
		before := f.published.Load()
		err := f.derive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		f.resyncs.Add(1)
		if f.published.Load() > before {
			pause.Reset() // it made progress: start backing off afresh
		}
		if isWrongLastSequence(err) {
			// Another engine published the entry first: it is deriving the
			// feed. Stand by, checking back less and less often.
			f.logger.Debug("feed: another engine is deriving the feed; standing by", "stream", events.FeedStream)
		} else {
			f.logger.Warn("feed: resynchronising with its last entry", "stream", events.FeedStream, "err", err)
		}
		if !pause.Wait(ctx) {
			return nil
		}
	}
}

// maxFeedWait bounds the pause between two attempts of a standing-by feed, and
// so how long the feed may stall when the engine that derived it stops.
const maxFeedWait = 2 * time.Second

// Position returns the log sequence up to which the feed holds every visible
// change.
func (f *feed) Position() uint64 { return f.position.Load() }

// Lag returns how many events of the log, as far as the feed has seen it, are
// not yet reflected in the feed: 0 when it is caught up.
func (f *feed) Lag() uint64 {
	last, pos := f.logLast.Load(), f.position.Load()
	if last < pos {
		return 0
	}
	return last - pos
}

// pending is one log event on its way into the feed: fut is nil for an event
// with no entry.
type pending struct {
	fut     jetstream.PubAckFuture
	msg     *nats.Msg
	contact string
	logSeq  uint64
}

// repeatPatience is how long a repeat waits at most for the projection to
// reach its change.
const repeatPatience = 250 * time.Millisecond

// repeat publishes, in feed order, the entries the feed has stored on
// LivePrefix, each with its feed sequence and, with Current, the contact's
// current status. Only the engine whose publish the feed acknowledged repeats
// an entry, so each is repeated once, by the engine that stored it.
func (f *feed) repeat(ctx context.Context) {
	// A repeat waits up to repeatPatience for the projection to reach its
	// change: it is normally there already, or about to be. One that waited
	// in vain leaves the repeats after it not waiting at all (they carry the
	// status only if the projection has it) until the projection has passed
	// that change: a stalled projection must not hold every repeat behind
	// it, or they would trail the feed by as much per entry waiting.
	var behind uint64 // the change a repeat waited for in vain; 0 if none
	for {
		var r repeat
		select {
		case <-ctx.Done():
			return
		case r = <-f.repeats:
		}
		out := &nats.Msg{
			Subject: events.LivePrefix + r.msg.Subject[len(events.ChangesPrefix):],
			Data:    r.msg.Data,
			Header:  nats.Header{client.FeedSeqHeader: []string{strconv.FormatUint(r.feedSeq, 10)}},
		}
		if f.cfg.Current != nil {
			// If the projection is not there in time, the repeat goes
			// without, and the subscriber reads the status itself.
			patience := repeatPatience
			if behind != 0 && f.cfg.Current.Applied() < behind {
				patience = 0
			}
			rctx, cancel := context.WithTimeout(ctx, patience)
			cur, err := f.cfg.Current.Status(rctx, r.contact, r.logSeq)
			cancel()
			if err == nil && cur.Seq >= r.logSeq {
				buf, _ := cur.MarshalJSON()
				out.Header[client.CurrentHeader] = []string{string(buf)}
				behind = 0
			} else if ctx.Err() == nil && patience > 0 {
				behind = r.logSeq
			}
		}
		_ = f.cfg.Conn.PublishMsg(out)
	}
}

// derive finds where the feed stands and extends it from there until a fault.
func (f *feed) derive(ctx context.Context) error {
	logStream, err := f.js.Stream(ctx, events.LogStream)
	if err != nil {
		return fmt.Errorf("open the log: %w", err)
	}
	feedStream, err := f.js.Stream(ctx, events.FeedStream)
	if err != nil {
		return fmt.Errorf("open the feed: %w", err)
	}
	pos, feedLast, err := f.resume(ctx, logStream, feedStream)
	if err != nil {
		return err
	}
	f.position.Store(pos)
	f.logLast.Store(max(pos, logStream.CachedInfo().State.LastSeq))

	logTail, err := tail.Start(ctx, logStream, tail.Config{
		From: pos + 1, Subjects: []string{events.EventsPrefix + ">"}, Logger: f.logger, Conn: f.js.Conn(),
	})
	if err != nil {
		return err
	}
	defer logTail.Stop()

	expect := feedLast
	queue := make([]pending, 0, f.cfg.MaxInFlight)
	for {
		// Settle what is done at the head of the queue.
		for len(queue) > 0 && queue[0].fut == nil {
			f.position.Store(queue[0].logSeq)
			queue = queue[1:]
		}
		var (
			acked  <-chan *jetstream.PubAck
			failed <-chan error
			in     <-chan tail.Record
		)
		if len(queue) > 0 {
			acked, failed = queue[0].fut.Ok(), queue[0].fut.Err()
		}
		if len(queue) < f.cfg.MaxInFlight {
			in = logTail.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-logTail.Failed():
			return logTail.Err()
		case ack := <-acked:
			if ack != nil {
				// Never held up by the repeats: if they are that far behind
				// (the projection stalled), one is dropped, and subscribers
				// read it from the feed over the gap.
				select {
				case f.repeats <- repeat{msg: queue[0].msg, contact: queue[0].contact, feedSeq: ack.Sequence, logSeq: queue[0].logSeq}:
				default:
					f.repeatsDropped.Add(1)
				}
			}
			f.position.Store(queue[0].logSeq)
			f.published.Add(1)
			queue = queue[1:]
		case err := <-failed:
			return fmt.Errorf("feed entry for log seq %d: %w", queue[0].logSeq, err)
		case r := <-in:
			f.logLast.Store(max(r.Seq, logTail.Last()))
			p := pending{logSeq: r.Seq}
			e, err := events.DecodeEvent(r.Data)
			if errors.Is(err, events.ErrUnsupportedVersion) {
				return fmt.Errorf("log seq %d: %w: upgrade this engine", r.Seq, err)
			}
			if err != nil {
				f.logger.Debug("feed: skipping a log record that is not an event", "seq", r.Seq, "err", err)
			} else if c, ok := events.ChangeOf(e, r.Seq); ok {
				msg := &nats.Msg{Subject: events.ChangeSubject(c.Contact), Data: c.Encode()}
				p.msg, p.contact = msg, c.Contact
				p.fut, err = f.js.PublishMsgAsync(msg,
					jetstream.WithExpectStream(events.FeedStream), jetstream.WithExpectLastSequence(expect))
				if err != nil {
					return fmt.Errorf("publish feed entry for log seq %d: %w", r.Seq, err)
				}
				expect++
			}
			queue = append(queue, p)
		}
	}
}

// resume returns the log sequence of the feed's last entry and the feed's last
// sequence. If that entry does not match the log (the log was recreated, or is
// behind the feed), the feed is purged and derived again from the start of the
// log: a feed must describe the log it came from.
func (f *feed) resume(ctx context.Context, logStream, feedStream jetstream.Stream) (pos, feedLast uint64, err error) {
	info, err := feedStream.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read the feed: %w", err)
	}
	if info.State.Msgs == 0 {
		return 0, info.State.LastSeq, nil
	}
	msg, err := feedStream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return 0, 0, fmt.Errorf("read the feed's last entry (seq %d): %w", info.State.LastSeq, err)
	}
	c, err := events.DecodeChange(msg.Data)
	if err != nil {
		return 0, 0, fmt.Errorf("the feed's last entry (seq %d) is malformed: %w", info.State.LastSeq, err)
	}
	reason := ""
	logMsg, err := logStream.GetMsg(ctx, c.Seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		reason = fmt.Sprintf("the log has no event at seq %d", c.Seq)
	case err != nil:
		return 0, 0, fmt.Errorf("read the log at seq %d: %w", c.Seq, err)
	default:
		e, err := events.DecodeEvent(logMsg.Data)
		if err != nil {
			reason = fmt.Sprintf("the log's record at seq %d is not an event", c.Seq)
		} else if derived, ok := events.ChangeOf(e, c.Seq); !ok || derived.Contact != c.Contact || !derived.At.Equal(c.At) {
			reason = fmt.Sprintf("the log's event at seq %d is not the one the feed's last entry came from", c.Seq)
		}
	}
	if reason == "" {
		return c.Seq, info.State.LastSeq, nil
	}
	f.logger.Error("feed: the feed does not describe the log (was the log recreated?); purging the feed and deriving it again",
		"stream", events.FeedStream, "seq", c.Seq, "reason", reason)
	if err := feedStream.Purge(ctx); err != nil {
		return 0, 0, fmt.Errorf("purge the feed: %w", err)
	}
	// Empty, the feed describes none of the log: its position goes back as
	// the purge is counted, not later, so that the two are never read as
	// the old position on the new log.
	f.position.Store(0)
	f.purges.Add(1)
	info, err = feedStream.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read the feed: %w", err)
	}
	return 0, info.State.LastSeq, nil
}

// FeedMetrics is a snapshot of a feed's counters.
type FeedMetrics struct {
	Position  uint64 `json:"position"`  // log sequence up to which the feed is complete
	Lag       uint64 `json:"lag"`       // log events not yet reflected in the feed
	Published uint64 `json:"published"` // entries published since start
	Resyncs   uint64 `json:"resyncs"`   // restarts from the feed's last entry after a fault
	Purges    uint64 `json:"purges"`    // times the feed was found not to match the log and derived again
	// RepeatsDropped counts entries not repeated on events.LivePrefix because the
	// repeats were too far behind (subscribers read them from the feed).
	RepeatsDropped uint64 `json:"repeats_dropped"`
}

// Metrics returns a snapshot of the feed's counters.
func (f *feed) Metrics() FeedMetrics {
	return FeedMetrics{Position: f.Position(), Lag: f.Lag(), Published: f.published.Load(),
		Resyncs: f.resyncs.Load(), Purges: f.purges.Load(), RepeatsDropped: f.repeatsDropped.Load()}
}
