package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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
	// Seal seals each entry's log sequence into its events.LogRefHeader, and
	// opens that of the feed's last entry to resume. Required.
	Seal *sealer
	// Streams shape the feed when the feed is found missing and created
	// again (feedStreamConfig).
	Streams StreamOptions
	// Current, when set, reads the contact's current visible status for each
	// entry repeated on events.LivePrefix, at least as new as the entry's
	// change: the repeat carries it (client.CurrentHeader), so that a
	// subscriber following the
	// repeats has its read with the change. Nil repeats the entry alone.
	Current appliedReader
	// Deriver, when set, is the writer whose ownership makes this engine
	// the feed's deriver: partition 0's. Only while it owns its partition
	// does the engine read the log for the feed, publish and repeat entries,
	// and delete the feed and make it anew where it must be derived again;
	// the other engines stand by. Nil means always.
	Deriver ownership
}

// ownership says whether an engine owns a partition, and when that changes:
// a Writer.
type ownership interface {
	Owning() bool
	Changed() <-chan struct{}
}

// appliedReader reads a projection's statuses (with minimum feed positions)
// and says how far it has applied the feed: the engine's LocalReader.
type appliedReader interface {
	client.Reader
	AppliedFeed() uint64
}

// Feed derives the feed from the log: for each event, in log order, the entry
// that subscribers see (events.ChangeOf), or nothing for a change they cannot
// see. It counts the visible changes as it reads the log, from its first event:
// the entry of the F-th is published expecting the feed's last sequence to be
// F-1 (Nats-Expected-Last-Sequence), so it lands at feed sequence F exactly,
// its feed position, and nothing is ever stored twice or out of order, whoever
// else publishes. Each entry carries the log sequence of its event sealed
// (events.LogRefHeader): after any fault or restart the feed opens that of its
// own last entry, checks that the log's event there derives it, and resumes
// after it, counting on from the feed's last sequence. One engine at a time
// derives the feed (feedConfig.Deriver: the owner of the log's partition 0);
// should two overlap for a moment as ownership moves, one wins each entry and
// the other resynchronises.
//
// Where the feed does not describe the log (the log recreated, an entry whose
// ref does not open, entries of an older format) it is derived again from the
// log's start: the stream is deleted and created again, so that its sequences
// number from 1 again (a purge would keep the numbering).
//
// Its methods are safe for concurrent use.
type feed struct {
	cfg    feedConfig
	js     jetstream.JetStream
	logger *slog.Logger

	deriving  atomic.Bool   // this engine derives the feed (feedConfig.Deriver)
	position  atomic.Uint64 // log sequence up to which the feed is complete
	logLast   atomic.Uint64 // the log's last sequence, as last seen
	published atomic.Uint64
	resyncs   atomic.Uint64
	purges    atomic.Uint64 // times the feed was derived again (deleted and created again)

	repeats        chan repeat // to the repeater, in feed order
	repeatsDropped atomic.Uint64
}

// repeat is a feed entry the feed has stored, to be repeated on events.LivePrefix.
type repeat struct {
	msg     *nats.Msg
	contact string
	feedSeq uint64    // its feed position
	created time.Time // when the feed it is stored in was created
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
	if cfg.Conn == nil || cfg.Seal == nil {
		return nil, errors.New("engine: a feed needs a NATS connection and a seal")
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

// Run derives the feed while this engine is its deriver, until ctx is done,
// then returns nil.
func (f *feed) Run(ctx context.Context) error {
	repeater := make(chan struct{})
	defer func() { <-repeater }()
	go func() {
		defer close(repeater)
		f.repeat(ctx)
	}()
	pause := retry.Backoff{First: f.cfg.RetryWait, Max: maxFeedWait}
	for {
		dctx, stop, ok := f.whileDeriver(ctx)
		if !ok {
			return nil
		}
		before := f.published.Load()
		err := f.derive(dctx)
		stop()
		if ctx.Err() != nil {
			return nil
		}
		if dctx.Err() != nil {
			continue // no longer the deriver
		}
		f.resyncs.Add(1)
		if f.published.Load() > before {
			pause.Reset() // it made progress: start backing off afresh
		}
		if isWrongLastSequence(err) || errors.Is(err, errOwnerRemakes) {
			// Another engine published the entry first, or is to make the
			// feed anew: it is deriving the feed. Stand by, checking back
			// less and less often.
			f.logger.Debug("feed: another engine is deriving the feed; standing by", "stream", events.FeedStream, "err", err)
		} else {
			f.logger.Warn("feed: resynchronising with its last entry", "stream", events.FeedStream, "err", err)
		}
		if !pause.Wait(ctx) {
			return nil
		}
	}
}

// maxFeedWait bounds the pause between two attempts of a standing-by feed.
const maxFeedWait = 2 * time.Second

// whileDeriver waits until this engine is the feed's deriver, and returns a
// context done once it no longer is (or ctx is done), with its cancel; ok is
// false if ctx was done first. Standing by, the engine reports no position
// and no lag: the deriver reports the feed's.
func (f *feed) whileDeriver(ctx context.Context) (_ context.Context, _ context.CancelFunc, ok bool) {
	d := f.cfg.Deriver
	if d == nil {
		f.deriving.Store(true)
		return ctx, func() {}, true
	}
	for {
		changed := d.Changed()
		if d.Owning() {
			break
		}
		if f.deriving.Swap(false) {
			f.position.Store(0)
			f.logLast.Store(0)
			f.logger.Info("feed: another engine derives the feed (the owner of partition 0); standing by", "stream", events.FeedStream)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, false
		}
	}
	if !f.deriving.Swap(true) {
		f.logger.Info("feed: deriving the feed (this engine owns partition 0)", "stream", events.FeedStream)
	}
	dctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			changed := d.Changed()
			if !d.Owning() {
				cancel()
				return
			}
			select {
			case <-changed:
			case <-dctx.Done():
				return
			}
		}
	}()
	return dctx, cancel, true
}

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
	feedSeq uint64 // the entry's feed position
}

// repeatPatience is how long a repeat waits at most for the projection to
// reach its change.
const repeatPatience = 250 * time.Millisecond

// repeat publishes, in feed order, the entries the feed has stored on
// LivePrefix, each with its feed position and, with Current, the contact's
// current status as of a projection that has applied that feed position. Only
// the engine whose publish the feed acknowledged repeats an entry, so each is
// repeated once, by the engine that stored it.
func (f *feed) repeat(ctx context.Context) {
	// A repeat waits up to repeatPatience for the projection to reach its
	// change: it is normally there already, or about to be. One that waited
	// in vain leaves the repeats after it not waiting at all (they carry the
	// status only if the projection has it) until the projection has passed
	// that change: a stalled projection must not hold every repeat behind
	// it, or they would trail the feed by as much per entry waiting.
	var behind uint64 // the feed position a repeat waited for in vain; 0 if none
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
			Header: nats.Header{
				client.FeedSeqHeader:     []string{strconv.FormatUint(r.feedSeq, 10)},
				client.FeedCreatedHeader: []string{r.created.UTC().Format(time.RFC3339Nano)},
			},
		}
		if f.cfg.Current != nil {
			// If the projection is not there in time, the repeat goes
			// without, and the subscriber reads the status itself.
			patience := repeatPatience
			if behind != 0 && f.cfg.Current.AppliedFeed() < behind {
				patience = 0
			}
			rctx, cancel := context.WithTimeout(ctx, patience)
			cur, err := f.cfg.Current.Status(rctx, r.contact, r.feedSeq)
			cancel()
			if err == nil && cur.Seq >= r.feedSeq {
				buf, _ := cur.MarshalJSON()
				out.Header[client.CurrentHeader] = []string{string(buf)}
				behind = 0
			} else if ctx.Err() == nil && patience > 0 {
				behind = r.feedSeq
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
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Deleted, by an engine that stopped before it made it again, or by
		// hand: made again, empty, by the log's owner, it is derived from the
		// log's start.
		if !f.remakes() {
			return fmt.Errorf("%w (it is missing)", errOwnerRemakes)
		}
		f.logger.Warn("feed: the feed is missing; creating it and deriving it from the log's start", "stream", events.FeedStream)
		f.position.Store(0)
		f.purges.Add(1)
		if err := createStream(ctx, f.js, feedStreamConfig(f.cfg.Streams), f.logger); err != nil {
			return err
		}
		feedStream, err = f.js.Stream(ctx, events.FeedStream)
	}
	if err != nil {
		return fmt.Errorf("open the feed: %w", err)
	}
	pos, feedLast, created, err := f.resume(ctx, logStream, feedStream)
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

	expect := feedLast // the feed position of the last visible change published
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
				if ack.Sequence != queue[0].feedSeq {
					// Never with the expected last sequence: the feed is
					// not what this deriver thinks it is.
					return fmt.Errorf("feed entry for log seq %d stored at feed seq %d, not at its feed position %d",
						queue[0].logSeq, ack.Sequence, queue[0].feedSeq)
				}
				// Never held up by the repeats: if they are that far behind
				// (the projection stalled), one is dropped, and subscribers
				// read it from the feed over the gap.
				select {
				case f.repeats <- repeat{msg: queue[0].msg, contact: queue[0].contact, feedSeq: ack.Sequence, created: created}:
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
			} else if c, ok := events.ChangeOf(e); ok {
				data := c.Encode()
				ref, err := f.cfg.Seal.seal(r.Seq, data)
				if err != nil {
					return fmt.Errorf("seal the log reference of the feed entry for log seq %d: %w", r.Seq, err)
				}
				msg := &nats.Msg{Subject: events.ChangeSubject(c.Contact), Data: data,
					Header: nats.Header{events.LogRefHeader: []string{ref}}}
				p.msg, p.contact, p.feedSeq = msg, c.Contact, expect+1
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

// resume returns the log sequence of the feed's last entry's event, the
// feed's last sequence (the feed position of that entry) and when the feed was
// created. If the feed does not
// describe the log (its last entry's ref does not open, or the log's event
// there does not derive it: the log was recreated, or is behind the feed), or
// holds entries of an older format, or is empty but numbered past 0, it is
// derived again from the start of the log: the stream is deleted and created
// again (recreate). An entry written by a newer engine is an error: this one
// stands by.
func (f *feed) resume(ctx context.Context, logStream, feedStream jetstream.Stream) (pos, feedLast uint64, created time.Time, err error) {
	for again := false; ; again = true {
		info, err := feedStream.Info(ctx)
		if err != nil {
			return 0, 0, created, fmt.Errorf("read the feed: %w", err)
		}
		last, created := info.State.LastSeq, info.Created
		if last == 0 {
			return 0, 0, created, nil
		}
		var (
			reason string
			level  = slog.LevelError
		)
		if info.State.Msgs == 0 {
			reason = fmt.Sprintf("the feed holds no entry but is numbered up to seq %d (purged?): its sequences would no longer be feed positions", last)
		} else {
			pos, reason, level, err = f.lastEntry(ctx, logStream, feedStream, last)
			if err != nil {
				return 0, 0, created, err
			}
			if reason == "" {
				return pos, last, created, nil
			}
		}
		if again {
			// Made again, by this engine or another, and already not
			// right: look again after a pause rather than delete it again.
			return 0, 0, created, fmt.Errorf("the feed made again does not describe the log either: %s", reason)
		}
		if err := f.recreate(ctx, info, level, reason); err != nil {
			return 0, 0, created, err
		}
	}
}

// lastEntry checks the feed's last entry, at feed sequence last, against the
// log. It returns the log sequence the entry came from, or why the feed must be
// derived again (and how loud to say it), or an error if it cannot tell.
func (f *feed) lastEntry(ctx context.Context, logStream, feedStream jetstream.Stream, last uint64) (uint64, string, slog.Level, error) {
	msg, err := feedStream.GetMsg(ctx, last)
	if err != nil {
		return 0, "", 0, fmt.Errorf("read the feed's last entry (seq %d): %w", last, err)
	}
	_, derr := events.DecodeChange(msg.Data)
	switch {
	case errors.Is(derr, events.ErrUnsupportedVersion):
		return 0, "", 0, fmt.Errorf("the feed's last entry (seq %d): %w: upgrade this engine", last, derr)
	case errors.Is(derr, events.ErrOldVersion):
		// An upgrade: said at Info, it is what an operator expects.
		return 0, fmt.Sprintf("the feed's entries are of an older format (%v); deriving it again as version %d, whose positions count visible changes only",
			derr, events.ChangeVersion), slog.LevelInfo, nil
	}
	logSeq, err := f.cfg.Seal.open(msg.Header.Get(events.LogRefHeader), msg.Data)
	switch {
	case err != nil:
		return 0, fmt.Sprintf("the feed's last entry (seq %d): %v (the key in bucket %s was replaced?)", last, err, events.EngineBucket),
			slog.LevelError, nil
	case derr != nil:
		return 0, fmt.Sprintf("the feed's last entry (seq %d) is malformed: %v", last, derr), slog.LevelError, nil
	case logSeq < last:
		return 0, fmt.Sprintf("the feed's last entry (seq %d) comes from log seq %d: a feed position is never past its log sequence", last, logSeq),
			slog.LevelError, nil
	}
	logMsg, err := logStream.GetMsg(ctx, logSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, fmt.Sprintf("the log has no event at seq %d, where the feed's last entry came from", logSeq), slog.LevelError, nil
	case err != nil:
		return 0, "", 0, fmt.Errorf("read the log at seq %d: %w", logSeq, err)
	}
	e, err := events.DecodeEvent(logMsg.Data)
	if err != nil {
		return 0, fmt.Sprintf("the log's record at seq %d is not an event", logSeq), slog.LevelError, nil
	}
	if derived, ok := events.ChangeOf(e); !ok || !bytes.Equal(derived.Encode(), msg.Data) {
		return 0, fmt.Sprintf("the log's event at seq %d is not the one the feed's last entry came from", logSeq), slog.LevelError, nil
	}
	return logSeq, "", 0, nil
}

// remakes reports whether this engine may delete the feed and make it anew:
// its deriver, so that two engines never each delete it.
func (f *feed) remakes() bool { return f.cfg.Deriver == nil || f.cfg.Deriver.Owning() }

// errOwnerRemakes: the feed must be derived again, and the log's owner, not
// this engine, deletes it and makes it anew.
var errOwnerRemakes = errors.New("the feed must be derived again: the log's owner makes it anew")

// recreate deletes the feed and creates it again, with the configuration it
// had, empty and numbered from 1 again: its subscribers see it go back
// (created again), and their durable consumers go with it.
func (f *feed) recreate(ctx context.Context, was *jetstream.StreamInfo, level slog.Level, reason string) error {
	if !f.remakes() {
		return fmt.Errorf("%w (%s)", errOwnerRemakes, reason)
	}
	f.logger.Log(ctx, level, "feed: deriving the feed again from the log's start: deleting the feed and creating it again",
		"stream", events.FeedStream, "reason", reason, "entries", was.State.Msgs, "last_seq", was.State.LastSeq)
	// Another engine may have made it again meanwhile, and be deriving it:
	// that one is not deleted.
	s, err := f.js.Stream(ctx, events.FeedStream)
	if err == nil {
		if now := s.CachedInfo(); !now.Created.Equal(was.Created) {
			return errors.New("the feed was made again meanwhile, by another engine; resynchronising with it")
		}
	}
	if err := f.js.DeleteStream(ctx, events.FeedStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete the feed to derive it again: %w", err)
	}
	// Gone, the feed describes none of the log: its position goes back as
	// the deletion is counted, not later, so that the two are never read as
	// the old position on the new log.
	f.position.Store(0)
	f.purges.Add(1)
	cfg := was.Config
	for k := range cfg.Metadata {
		if strings.HasPrefix(k, "_nats.") { // the server's own, set again by it
			delete(cfg.Metadata, k)
		}
	}
	_, err = answered(ctx, func(ctx context.Context) (jetstream.Stream, error) { return f.js.CreateStream(ctx, cfg) })
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create the feed again: %w", err)
	}
	f.logger.Info("feed: created the feed again; deriving it from the log's start", "stream", events.FeedStream,
		"replicas", cfg.Replicas)
	return nil
}

// FeedMetrics is a snapshot of a feed's counters.
type FeedMetrics struct {
	// Deriving says whether this engine derives the feed (it owns partition
	// 0); Position and Lag are the deriver's, 0 on the others.
	Deriving  bool   `json:"deriving"`
	Position  uint64 `json:"position"`  // log sequence up to which the feed is complete
	Lag       uint64 `json:"lag"`       // log events not yet reflected in the feed
	Published uint64 `json:"published"` // entries published since start
	Resyncs   uint64 `json:"resyncs"`   // restarts from the feed's last entry after a fault
	// Purges counts the times the feed was found not to describe the log (or
	// to hold entries of an older format) and derived again from the log's
	// start: deleted and created again.
	Purges uint64 `json:"purges"`
	// RepeatsDropped counts entries not repeated on events.LivePrefix because the
	// repeats were too far behind (subscribers read them from the feed).
	RepeatsDropped uint64 `json:"repeats_dropped"`
}

// Metrics returns a snapshot of the feed's counters.
func (f *feed) Metrics() FeedMetrics {
	return FeedMetrics{Deriving: f.deriving.Load(), Position: f.Position(), Lag: f.Lag(), Published: f.published.Load(),
		Resyncs: f.resyncs.Load(), Purges: f.purges.Load(), RepeatsDropped: f.repeatsDropped.Load()}
}
