package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/tail"
)

// Change is one visible change handed to a subscriber: the contact and its
// previous visible status only, like OnContactStatusChange. The current status is
// read with Current, which is never older than the change.
type Change struct {
	Contact  string
	Name     string        // friendly name as of the change
	Previous events.Status // the previous visible status; never Invisible
	Seq      uint64        // log sequence of the change
	At       time.Time     // when the change was accepted
	FeedSeq  uint64        // position in the feed, for diagnostics

	reader Reader
	memo   lookup // shared with other changes or subscribers: fewer reads
}

// lookup serves Current for changes that share their reads.
type lookup interface {
	current(ctx context.Context, c *Change) (Reply, error)
}

// lookupBatch reads the status of every contact of a batch of changes at once,
// on the first Current of the batch, at least as new as its last change.
type lookupBatch struct {
	reader   BatchReader
	contacts []string
	seen     map[string]int // contact -> index in contacts
	seqs     []uint64       // newest change of each contact
	minSeq   uint64

	once    sync.Once
	replies map[string]Reply
	err     error
}

func (b *lookupBatch) add(contact string, seq uint64) {
	if b.seen == nil {
		b.seen = map[string]int{}
	}
	i, ok := b.seen[contact]
	if !ok {
		i = len(b.contacts)
		b.seen[contact] = i
		b.contacts = append(b.contacts, contact)
		b.seqs = append(b.seqs, 0)
	}
	b.seqs[i] = max(b.seqs[i], seq)
	b.minSeq = max(b.minSeq, seq)
}

// prefetch reads the batch now, on the calling goroutine, unless a Current
// did already: run in the background, the read travels while the changes
// before the batch are being handled.
func (b *lookupBatch) prefetch(ctx context.Context) {
	b.once.Do(func() { b.load(ctx) })
}

func (b *lookupBatch) current(ctx context.Context, c *Change) (Reply, error) {
	b.once.Do(func() { b.load(ctx) })
	if r, ok := b.replies[c.Contact]; ok && b.err == nil {
		return r, nil
	}
	// The batch read failed: read this one on its own, which may succeed.
	return c.reader.Status(ctx, c.Contact, c.Seq)
}

// load reads the whole batch; it runs once.
func (b *lookupBatch) load(ctx context.Context) {
	replies, err := b.reader.Statuses(ctx, b.contacts, b.minSeq)
	if err != nil {
		b.err = err
		return
	}
	b.replies = make(map[string]Reply, len(replies))
	for _, r := range replies {
		b.replies[r.Contact] = r
	}
}

// Current reads the contact's current visible status from the projection, once
// it has applied the log at least up to this change: it may be newer than the
// change, never older.
func (c Change) Current(ctx context.Context) (Reply, error) {
	if c.reader == nil {
		return Reply{}, errors.New("client: change has no reader")
	}
	if c.memo != nil {
		return c.memo.current(ctx, &c)
	}
	return c.reader.Status(ctx, c.Contact, c.Seq)
}

// Handler handles one change. Returning an error has the change handed over
// again, after a pause, until it returns nil or the subscriber stops.
type Handler func(ctx context.Context, c Change) error

// Start says where a subscription without a stored position begins.
type Start struct {
	kind int
	seq  uint64
	at   time.Time
}

const (
	startNew = iota
	startAll
	startSeq
	startTime
)

// StartNew begins with changes after the subscription starts. It is the default.
func StartNew() Start { return Start{kind: startNew} }

// StartAll begins with the first change the feed holds.
func StartAll() Start { return Start{kind: startAll} }

// StartAtSeq begins with the first change at or after log sequence seq.
func StartAtSeq(seq uint64) Start { return Start{kind: startSeq, seq: seq} }

// StartAtTime begins with the first change stored in the feed at or after t
// (an entry is stored a moment after its change is accepted). From a time
// still to come, the changes accepted before it are stepped over (by a durable,
// acknowledged without being handed over).
//
// A Hub does not start at a time: NewHub refuses it.
func StartAtTime(t time.Time) Start { return Start{kind: startTime, at: t} }

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Conn reaches the feed. Required.
	Conn *nats.Conn
	// Reader is what Change.Current reads through: the engine's LocalReader
	// in-process, or a Client anywhere. Required.
	Reader Reader
	// Durable names a subscription that survives restarts: a JetStream durable
	// consumer, each change acknowledged once handled, resuming where it stopped.
	// Zero means an ephemeral subscription (an ordered consumer, no acks).
	Durable string
	// Start is where a subscription begins when it has no stored position; a
	// durable that exists resumes instead. Zero means StartNew.
	Start Start
	// Contacts limits the subscription to these contacts. Zero means all.
	Contacts []string
	// Logger receives what the subscriber notices. Zero means slog.Default().
	Logger *slog.Logger
	// Batch is how many changes a durable fetches at once. Zero means 256.
	Batch int
	// AckWait is how long a durable's change may stay unacknowledged before the
	// server hands it over again (after a subscriber crash). Zero means 30s.
	AckWait time.Duration
	// RetryWait is the first pause before handing a change over again after the
	// handler failed; it doubles up to 30s. Zero means 100ms.
	RetryWait time.Duration
	// LiveCheck applies to an ephemeral subscription to every contact: it is
	// handed new changes as the engine repeats them on core NATS (events.LivePrefix),
	// with no JetStream consumer while it keeps up, and reads the feed to
	// catch up from where it starts, over a gap, and when it has been handed
	// nothing for LiveCheck while the feed holds more. Zero means 1s; negative
	// reads every change from a consumer of the feed instead.
	LiveCheck time.Duration
}

// Subscriber consumes the feed and hands each change to a handler, one at a
// time, in feed order. Each subscriber has its own consumer: a slow one falls
// behind on its own and slows neither the fold, the feed nor other subscribers.
type Subscriber struct {
	cfg    SubscriberConfig
	js     jetstream.JetStream
	logger *slog.Logger
	ready  chan struct{} // closed once the consumer exists
	// skipBelow drops changes before the log sequence StartAtSeq named: when
	// it lies past the feed's end, the consumer starts at the end and what
	// arrives first may still be older.
	skipBelow uint64
	// notBefore, when a subscription starts at a time still to come (the
	// feed holds no entry from it yet), drops changes made before that
	// time, until one is not: the consumer starts at the feed's end, and
	// what it is handed first may still be older.
	notBefore time.Time
	// feed tells whether the feed went back under the subscription.
	feed feedWatch
	// handed is the log sequence of the last change an ephemeral
	// subscription handed over: the feed is in log order, so one at or
	// before it means that the feed went back.
	handed   uint64
	catchUps atomic.Uint64
	// dropLive, in tests, loses the entries from events.LivePrefix it returns true for.
	dropLive func(feedSeq uint64) bool
}

// NewSubscriber checks cfg and returns a Subscriber; Run starts it.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Conn == nil || cfg.Reader == nil {
		return nil, errors.New("client: a subscriber needs a Conn and a Reader")
	}
	if cfg.Durable != "" && strings.ContainsAny(cfg.Durable, " \t\r\n.*>/\\") {
		return nil, badRequest(fmt.Errorf("durable name %s: it may not hold whitespace, '.', '*', '>', '/' or '\\'",
			events.Quote(cfg.Durable)))
	}
	if len(cfg.Durable) > maxDurableName {
		// Quote shortens it, saying its length.
		return nil, badRequest(fmt.Errorf("durable name %s: at most %d bytes", events.Quote(cfg.Durable), maxDurableName))
	}
	for _, c := range cfg.Contacts {
		if err := events.ValidateContact(c); err != nil {
			return nil, badRequest(err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = 100 * time.Millisecond
	}
	if cfg.LiveCheck == 0 {
		cfg.LiveCheck = time.Second
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, js: js, logger: cfg.Logger, ready: make(chan struct{}),
		feed: feedWatch{window: feedCheckWindow, wait: cfg.RetryWait, conn: cfg.Conn}}, nil
}

// CatchUps returns how many times a subscription following the feed on core
// NATS has read the feed itself to catch up, past where it started: a repeat
// was lost (a slow handler, a reconnection) or is late.
func (s *Subscriber) CatchUps() uint64 { return s.catchUps.Load() }

// Ready returns a channel closed once the subscription's consumer exists: with
// StartNew, every change accepted after that is handed over.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// maxDurableName is the longest name the server takes for a consumer.
const maxDurableName = 255

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

// Run hands changes to h until ctx is done, then returns nil. A durable
// acknowledges each change once h has returned nil for it, and its next run
// resumes right after the last change acknowledged: after a clean stop nothing is
// missed and nothing repeated; after a crash, the change in hand may come again.
// While Run goes on, nothing is missed or repeated either when the server
// restarts or the connection moves. One process at a time runs a given durable.
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
	err := s.run(ctx, h)
	if ctx.Err() != nil {
		return nil // stopped, perhaps while starting
	}
	return err
}

func (s *Subscriber) run(ctx context.Context, h Handler) error {
	stream, err := s.js.Stream(ctx, events.FeedStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("the feed (stream %s) does not exist on this server: is `presence serve` running against it?", events.FeedStream)
	}
	if err != nil {
		return fmt.Errorf("open the feed (stream %s): %w", events.FeedStream, err)
	}
	s.feed.stream, s.feed.created = stream, stream.CachedInfo().Created
	if s.cfg.Durable != "" {
		return s.runDurable(ctx, stream, h)
	}
	if len(s.cfg.Contacts) == 0 && s.cfg.LiveCheck > 0 {
		return s.runLive(ctx, stream, h)
	}
	return s.runOrdered(ctx, stream, h)
}

// feedEnd returns the feed's last sequence, as its leader says: where the feed
// ends decides where a subscription starts, so it waits for a leader while
// there is none, as a consumer could not be made before.
func (s *Subscriber) feedEnd(ctx context.Context) (uint64, error) {
	last, err := s.feed.check(ctx, 0)
	for wait := s.cfg.RetryWait; errors.Is(err, errNoLeader); wait = min(2*wait, 30*time.Second) {
		s.logger.Warn("subscriber: the feed has no leader; waiting for one", "wait", wait)
		if !sleep(ctx, wait) {
			return 0, ctx.Err()
		}
		last, err = s.feed.check(ctx, 0)
	}
	return last, err
}

// deliverFrom translates Start into a deliver policy and feed sequence.
func (s *Subscriber) deliverFrom(ctx context.Context, stream jetstream.Stream) (jetstream.DeliverPolicy, uint64, *time.Time, error) {
	switch s.cfg.Start.kind {
	case startAll:
		return jetstream.DeliverAllPolicy, 0, nil, nil
	case startSeq:
		feedSeq, err := FeedSeqOf(ctx, stream, s.cfg.Start.seq)
		if err != nil {
			return 0, 0, nil, err
		}
		s.skipBelow = s.cfg.Start.seq
		return jetstream.DeliverByStartSequencePolicy, feedSeq, nil, nil
	case startTime:
		t := s.cfg.Start.at
		if t.After(time.Now()) {
			s.notBefore = t
		}
		return jetstream.DeliverByStartTimePolicy, 0, &t, nil
	}
	return jetstream.DeliverNewPolicy, 0, nil, nil
}

// FeedSeqOf returns the feed sequence of the first entry whose log sequence is at
// least logSeq (one past the feed's end if there is none). The feed is in log
// order, and its entries' log sequences grow about evenly with their feed
// sequences (by one, and the hidden changes between), so it guesses where the
// entry is from the entries it has read and reads a handful of entries where a
// bisection would read twenty: each read of an entry far from the last one
// can cost the server a block read from disk.
//
// An entry removed from the feed's start while it reads (the feed's limits) has
// it start again, a few times.
func FeedSeqOf(ctx context.Context, feed jetstream.Stream, logSeq uint64) (uint64, error) {
	for tries := 1; ; tries++ {
		seq, err := feedSeqOf(ctx, feed, logSeq)
		if !errors.Is(err, jetstream.ErrMsgNotFound) || tries == 3 {
			return seq, err
		}
	}
}

func feedSeqOf(ctx context.Context, feed jetstream.Stream, logSeq uint64) (uint64, error) {
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

func (s *Subscriber) runOrdered(ctx context.Context, stream jetstream.Stream, h Handler) error {
	policy, seq, at, err := s.deliverFrom(ctx, stream)
	if err != nil {
		return err
	}
	if policy == jetstream.DeliverNewPolicy {
		// Not DeliverNew: an ordered consumer made again (after a
		// reconnection) before it was handed anything is made with the
		// policy it was first given, and would start after what was stored
		// meanwhile. From the sequence after the feed's end it starts where
		// this one did.
		last, err := s.feedEnd(ctx)
		if err != nil {
			return err
		}
		policy, seq = jetstream.DeliverByStartSequencePolicy, last+1
	}
	_, err = s.consume(ctx, stream, policy, seq, at, 0, h, func() { close(s.ready) })
	return err
}

// consume hands over the changes of an ordered consumer of the feed, starting
// where policy, seq and at say, until ctx is done or, if until is not zero, it
// has handed over the entry at feed sequence until or past it. It returns the
// feed sequence after the last entry it went through (0 if none), and an error
// when the consumer cannot be made or the feed went back (ErrFeedWentBack);
// started, if not nil, is called once the consumer exists.
func (s *Subscriber) consume(ctx context.Context, stream jetstream.Stream, policy jetstream.DeliverPolicy, seq uint64,
	at *time.Time, until uint64, h Handler, started func()) (uint64, error) {
	var filter []string // none for every contact: the feed holds nothing else
	if len(s.cfg.Contacts) > 0 {
		filter = s.subjects()
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filter, DeliverPolicy: policy, OptStartSeq: seq, OptStartTime: at,
	})
	if err != nil {
		return 0, fmt.Errorf("subscribe to the feed: %w", err)
	}
	msgs := make(chan jetstream.Msg, s.cfg.Batch)
	done := make(chan struct{})
	defer close(done)
	gone := make(chan struct{}, 1) // nats.go says the consumer went: look at the feed now
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-done:
		}
	}, jetstream.PullMaxMessages(s.cfg.Batch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if tail.ConsumerGone(err) {
			select {
			case gone <- struct{}{}:
			default:
			}
		}
	}))
	if err != nil {
		return 0, fmt.Errorf("subscribe to the feed: %w", err)
	}
	defer func() {
		cc.Stop()
		if info := cons.CachedInfo(); info != nil {
			tail.Drop(stream, info.Name, s.cfg.Conn)
		}
	}()
	if started != nil {
		started()
	}

	// A pipeline: while the handler goes through one batch, the next ones are
	// decoded and their statuses read, so that a subscriber catching up is not
	// held by a read's round trip per batch.
	type prepared struct {
		entries []entry
		changes []Change
	}
	ready := make(chan prepared, 1)
	bctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-bctx.Done():
				return
			case m := <-msgs:
				batch := entriesOf(drain([]jetstream.Msg{m}, msgs, s.cfg.Batch))
				changes, lookup := s.changesOf(batch)
				if lookup != nil {
					wg.Add(1)
					go func() { defer wg.Done(); lookup.prefetch(bctx) }()
				}
				select {
				case ready <- prepared{batch, changes}:
				case <-bctx.Done():
					return
				}
			}
		}
	}()
	var (
		next     uint64
		consumer string // the server's consumer the last entry came from
	)
	// nats.go makes a consumer again, for ever, when the feed is deleted, and
	// a feed created again shorter than where it was delivers nothing until it
	// grows past there: neither hands anything over to compare, so the feed
	// is looked at when the consumer goes and every feedLookEvery.
	look := time.NewTicker(feedLookEvery)
	defer look.Stop()
	for {
		select {
		case <-ctx.Done():
			return next, nil
		case <-gone:
			if err := s.feed.goneBack(ctx); errors.Is(err, ErrFeedWentBack) && ctx.Err() == nil {
				return next, err
			}
		case <-look.C:
			if err := s.feed.goneBack(ctx); errors.Is(err, ErrFeedWentBack) && ctx.Err() == nil {
				return next, err
			}
		case p := <-ready:
			for i, c := range p.changes {
				if e := p.entries[i]; e.consumer != consumer {
					// nats.go made the consumer again: after a reconnection,
					// or because the feed was deleted, and perhaps created
					// again and derived from another log. It resumes after the
					// last feed sequence it handed over, whatever the feed
					// now holds there.
					if consumer != "" {
						if err := s.sameFeed(ctx, next); err != nil {
							if ctx.Err() != nil {
								return next, nil
							}
							return next, err
						}
					}
					consumer = e.consumer
				}
				if err := s.hand(ctx, c, h); err != nil {
					if ctx.Err() != nil {
						return next, nil
					}
					return next, err
				}
				next = p.entries[i].feedSeq + 1
				if until != 0 && next > until {
					return next, nil
				}
			}
		}
	}
}

// entry is one feed entry as a subscriber receives it, from the feed's consumer
// or from events.LivePrefix.
type entry struct {
	subject  string
	data     []byte
	feedSeq  uint64
	consumer string // the consumer it came from, if any
	delivery uint64 // the consumer's delivery sequence, if any
	current  *Reply // the status a repeat carried, if any
}

// carried is the lookup of a change whose repeat carried the current status.
type carried Reply

func (k *carried) current(context.Context, *Change) (Reply, error) { return Reply(*k), nil }

// entriesOf reads the entries of a batch of feed messages.
func entriesOf(msgs []jetstream.Msg) []entry {
	out := make([]entry, len(msgs))
	for i, m := range msgs {
		out[i] = entry{subject: m.Subject(), data: m.Data()}
		if md, err := m.Metadata(); err == nil {
			out[i].feedSeq, out[i].consumer, out[i].delivery = md.Sequence.Stream, md.Consumer, md.Sequence.Consumer
		}
	}
	return out
}

// runLive hands over changes as the engine repeats them on events.LivePrefix, in feed
// order and each once: it reads the feed itself (an ordered consumer, for a
// while) to catch up from where it starts and whenever the feed sequences it is
// handed skip one, or when it has been handed nothing for LiveCheck and the
// feed holds more.
func (s *Subscriber) runLive(ctx context.Context, stream jetstream.Stream, h Handler) error {
	positioned := s.cfg.Conn.Stats().Reconnects
	live := make(chan *nats.Msg, liveBuffer)
	sub, err := s.cfg.Conn.ChanSubscribe(events.LivePrefix+">", live)
	if err != nil {
		return fmt.Errorf("subscribe to the feed: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// What the feed holds after this is repeated to this subscription.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.cfg.Conn.FlushWithContext(fctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("subscribe to the feed: %w", err)
	}
	if err := s.cfg.Conn.LastError(); errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), events.LivePrefix) {
		s.logger.Warn("subscriber: this user may not follow the feed on core NATS; reading it from a consumer instead",
			"subject", events.LivePrefix+">", "err", err)
		_ = sub.Unsubscribe()
		return s.runOrdered(ctx, stream, h)
	}
	last, err := s.feedEnd(ctx)
	if err != nil {
		return err
	}
	next := last + 1
	if s.cfg.Start.kind != startNew {
		policy, seq, at, err := s.deliverFrom(ctx, stream)
		if err != nil {
			return err
		}
		switch policy {
		case jetstream.DeliverAllPolicy:
			next = 1
		case jetstream.DeliverByStartSequencePolicy:
			next = seq
		}
		if last > 0 && (policy == jetstream.DeliverByStartTimePolicy || next <= last) {
			// The first catch-up reads from the start asked for.
			if next, err = s.consume(ctx, stream, policy, seq, at, last, h, func() { close(s.ready) }); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
		}
	}
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}

	check := time.NewTicker(s.cfg.LiveCheck)
	defer check.Stop()
	handed := true // something was handed over since the last check
	for {
		catchUp := false
		select {
		case <-ctx.Done():
			return nil
		case <-check.C:
			if handed {
				handed = false
				continue
			}
			last, err := s.feed.check(ctx, next)
			if errors.Is(err, ErrFeedWentBack) {
				return err
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.logger.Warn("subscriber: cannot read where the feed ends; retrying", "err", err)
				continue
			}
			catchUp = last >= next
		case m := <-live:
			if reconnects := s.cfg.Conn.Stats().Reconnects; reconnects != positioned {
				// Connected again, perhaps to a server that came back on an
				// older copy of its store, whose feed grows again with other
				// entries: its repeats would be handed over from where this
				// subscriber was, as if they followed what it was handed.
				if err := s.sameFeed(ctx, next); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				positioned = reconnects
			}
			var batch []entry
			for _, m := range drainLive([]*nats.Msg{m}, live, s.cfg.Batch) {
				seq, err := strconv.ParseUint(m.Header.Get(FeedSeqHeader), 10, 64)
				if s.dropLive != nil && s.dropLive(seq) {
					continue
				}
				switch {
				case err != nil || seq < next:
					continue // a repeat of what was handed over, or not an entry
				case seq > next:
					catchUp = true
				default:
					e := entry{subject: m.Subject, data: m.Data, feedSeq: seq}
					if h := m.Header.Get(CurrentHeader); h != "" {
						var r Reply
						if r.UnmarshalJSON([]byte(h)) == nil {
							e.current = &r
						}
					}
					batch = append(batch, e)
					next++
				}
				if catchUp {
					break
				}
			}
			// Only what is handed over counts: repeats from before a feed
			// that went back (recreated) must not keep the check away.
			handed = handed || len(batch) > 0
			changes, _ := s.changesOf(batch)
			for _, c := range changes {
				if err := s.hand(ctx, c, h); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		}
		if catchUp {
			last, err := s.feed.check(ctx, next)
			if errors.Is(err, ErrFeedWentBack) {
				return err
			}
			if err == nil && last >= next {
				s.catchUps.Add(1)
				s.logger.Debug("subscriber: catching up from the feed", "from_feed_seq", next, "to_feed_seq", last)
				var to uint64
				to, err = s.consume(ctx, stream, jetstream.DeliverByStartSequencePolicy, next, nil, last, h, nil)
				next = max(next, to)
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrFeedWentBack) {
				return err
			}
			if err != nil {
				s.logger.Warn("subscriber: cannot catch up with the feed; retrying", "err", err)
			}
		}
	}
}

// feedLookEvery is how often a subscriber reading the feed from a consumer
// looks at it, to tell a feed deleted or created again under it.
const feedLookEvery = 2 * time.Second

// liveBuffer is how many entries from events.LivePrefix a subscriber keeps waiting:
// past it they are dropped, and it catches up from the feed.
const liveBuffer = 8192

// sameFeed returns nil once it has read that the feed is the one Run found and
// holds the entry before next, an error wrapping ErrFeedWentBack if not, or
// ctx's error. It reads again and again while the feed cannot be read.
func (s *Subscriber) sameFeed(ctx context.Context, next uint64) error {
	wait := s.cfg.RetryWait
	for {
		_, err := s.feed.check(ctx, next)
		if err == nil || errors.Is(err, ErrFeedWentBack) || ctx.Err() != nil {
			return err
		}
		s.logger.Warn("subscriber: cannot read the feed; retrying", "err", err, "wait", wait)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// drainLive appends what is already waiting in live to batch, up to max in all.
func drainLive(batch []*nats.Msg, live <-chan *nats.Msg, max int) []*nats.Msg {
	for len(batch) < max {
		select {
		case m := <-live:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// drain appends what is already waiting in msgs to batch, up to max in all.
func drain(batch []jetstream.Msg, msgs <-chan jetstream.Msg, max int) []jetstream.Msg {
	for len(batch) < max {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// durable returns the subscription's consumer. A new one starts where Start
// says. One that exists resumes right after the last change acknowledged in
// order: when changes were handed to an earlier run and not acknowledged (it was
// stopped mid-batch, or crashed), it is reset to there, so the next change handed
// over is always the one after, never a later one while an earlier waits for
// redelivery. Changed contacts update its filter in place. It also returns the
// delivery sequence the consumer's next delivery will have.
// followed says which contacts a consumer's filters follow.
func followed(filters []string) string {
	if len(filters) == 0 || slices.Equal(filters, []string{events.ChangesPrefix + ">"}) {
		return "every contact"
	}
	return strings.Join(filters, " ")
}

func (s *Subscriber) durable(ctx context.Context, stream jetstream.Stream) (jetstream.Consumer, uint64, error) {
	cons, err := stream.Consumer(ctx, s.cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cfg := jetstream.ConsumerConfig{
			Durable:        s.cfg.Durable,
			Description:    "presence subscriber",
			FilterSubjects: s.subjects(),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        s.cfg.AckWait,
			MaxAckPending:  s.cfg.Batch,
		}
		if cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime, err = s.deliverFrom(ctx, stream); err != nil {
			return nil, 0, err
		}
		if s.skipBelow > 0 {
			cfg.Metadata = map[string]string{startSeqKey: strconv.FormatUint(s.skipBelow, 10)}
		}
		cons, err := stream.CreateConsumer(ctx, cfg)
		return cons, 1, err
	}
	if err != nil {
		return nil, 0, err
	}
	info := cons.CachedInfo()
	if s.cfg.Start.kind != startNew {
		s.logger.Warn("subscriber: the durable subscription exists, and resumes where it stopped: a start applies only to a new one",
			"durable", s.cfg.Durable)
	}
	if v, ok := info.Config.Metadata[startSeqKey]; ok {
		// Made to start at a log sequence, perhaps one the feed had not
		// reached: what comes before it is stepped over in every run, not
		// in the first alone. Past it, nothing comes before it.
		seq, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("consumer %s: metadata %s=%s is not a log sequence", s.cfg.Durable, startSeqKey, events.Quote(v))
		}
		s.skipBelow = seq
	}
	if t := info.Config.OptStartTime; info.Config.DeliverPolicy == jetstream.DeliverByStartTimePolicy && t != nil && t.After(info.Created) {
		// Made to start at a time still to come: until a change from that
		// time on, it steps over those before, in this run as in the first,
		// unless it has acknowledged one stored from that time on already.
		before, err := s.ackedBefore(ctx, stream, info.AckFloor.Stream, *t)
		if err != nil {
			return nil, 0, err
		}
		if before {
			s.notBefore = *t
		}
	}
	if filters := s.subjects(); !slices.Equal(info.Config.FilterSubjects, filters) {
		s.logger.Warn("subscriber: the durable subscription now follows other contacts than before, from where it stopped",
			"durable", s.cfg.Durable, "was", followed(info.Config.FilterSubjects), "now", followed(filters))
		cfg := info.Config
		cfg.FilterSubject, cfg.FilterSubjects = "", filters
		if cons, err = stream.UpdateConsumer(ctx, cfg); err != nil {
			return nil, 0, err
		}
	}
	if info.NumAckPending > 0 || info.NumRedelivered > 0 {
		s.logger.Debug("subscriber: resuming after the last change acknowledged", "durable", s.cfg.Durable,
			"unacknowledged", info.NumAckPending)
		if _, err := stream.ResetConsumer(ctx, s.cfg.Durable); err != nil {
			return nil, 0, err
		}
		return cons, 1, nil // a reset starts the delivery sequence again
	}
	return cons, info.Delivered.Consumer + 1, nil
}

// startSeqKey is the metadata of a durable's consumer that keeps the log
// sequence it was made to start at (StartAtSeq).
const startSeqKey = "presence_start_seq"

// ackedBefore reports whether the entry at feed sequence acked (0: none) was
// stored before t. The feed is in the order it was stored: once an entry stored
// from t on was acknowledged, none stored before t is still to come. (A
// change's own time may be earlier than when it was stored, by another
// engine's clock: it is not what counts here.)
func (s *Subscriber) ackedBefore(ctx context.Context, stream jetstream.Stream, acked uint64, t time.Time) (bool, error) {
	if acked == 0 {
		return true, nil
	}
	msg, err := stream.GetMsg(ctx, acked)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil // gone from the feed: what follows is compared instead
	}
	if err != nil {
		return false, fmt.Errorf("read the feed at seq %d: %w", acked, err)
	}
	return msg.Time.Before(t), nil
}

// runDurable fetches, handles and acknowledges changes in order.
//
// Each delivery of the consumer has the next delivery sequence, first
// deliveries in feed order, so a change is handed over only when its delivery
// follows the last one received. One that does not means a delivery was lost
// on the way: a fetch that ran out as it arrived, a connection that dropped.
// The server holds the lost change as pending and would hand it over again
// only after its AckWait, behind the changes that followed it.
//
// A server that restarts (the engine's embedded one, killed) may come back with
// an older state of the consumer than it had: nats-server writes that state to
// disk behind (at most ten times a second), and changes may have been in
// flight. It then hands over again changes this run has handled, at once or,
// those it holds as pending, after their AckWait and after newer ones.
//
// So after every reconnection and every lost delivery the consumer is reset
// to its ack floor, the rest of the batch is left for after that reset, and a
// change this run has already handled is acknowledged and not handed over
// again: as long as this process runs, each change is handled once, in order,
// whatever happens to the server or on the way.
func (s *Subscriber) runDurable(ctx context.Context, stream jetstream.Stream, h Handler) error {
	positioned := s.cfg.Conn.Stats().Reconnects
	cons, next, err := s.durable(ctx, stream)
	if err != nil {
		return fmt.Errorf("durable subscriber %q: %w", s.cfg.Durable, err)
	}
	close(s.ready)
	wait := s.cfg.RetryWait
	var (
		handled uint64 // feed sequence of the last change this run handled
		lost    bool   // a delivery was lost since the last reset
		checked bool   // the feed was found to hold the last change handled, since the last reset
		pause   bool   // the feed could not be read: wait before the next reset
	)
	for ctx.Err() == nil {
		if reconnects := s.cfg.Conn.Stats().Reconnects; reconnects != positioned || lost {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err := stream.ResetConsumer(rctx, s.cfg.Durable)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				// Connected, a reset that fails may be of a consumer, or a
				// feed, that is gone for good.
				if s.cfg.Conn.IsConnected() {
					if err := s.durableLost(ctx, stream); err != nil {
						return err
					}
				}
				s.logger.Warn("subscriber: cannot resume after the last change acknowledged; retrying", "durable", s.cfg.Durable, "err", err, "wait", wait)
				if !sleep(ctx, wait) {
					break
				}
				wait = min(2*wait, 30*time.Second)
				continue
			}
			s.logger.Debug("subscriber: resuming after the last change acknowledged", "durable", s.cfg.Durable,
				"reconnected", reconnects != positioned, "lost_delivery", lost, "feed_seq", res.ResetSeq, "handled", handled)
			positioned, lost, next, checked = reconnects, false, 1, false
		}
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		batch, err := cons.Fetch(s.cfg.Batch, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				break
			}
			s.logger.Warn("subscriber: fetch failed; retrying", "durable", s.cfg.Durable, "err", err, "wait", wait)
			if !sleep(ctx, wait) {
				break
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		var lastAcked jetstream.Msg
		stale := false // reconnected or lost a delivery: the rest waits for the reset
		for m := range batch.Messages() {
			if stale {
				continue
			}
			msgs := drain([]jetstream.Msg{m}, batch.Messages(), s.cfg.Batch)
			entries := entriesOf(msgs)
			changes, _ := s.changesOf(entries)
			for i, c := range changes {
				if ctx.Err() != nil {
					break // left unacknowledged: the next run resumes before it
				}
				if s.cfg.Conn.Stats().Reconnects != positioned {
					stale = true
				} else if entries[i].delivery != next {
					s.logger.Info("subscriber: a delivery was lost on the way; resuming after the last change acknowledged",
						"durable", s.cfg.Durable, "delivery", entries[i].delivery, "expected", next, "feed_seq", c.FeedSeq)
					stale, lost = true, true
				}
				if stale {
					// The rest of the fetch is left to end as it would:
					// cut short, the pull request could still take
					// deliveries after the reset, and lose them.
					break
				}
				next++
				if c.Contact != "" && c.FeedSeq <= handled && !checked {
					// Handed over again after a reset: by a server that lost
					// the ack, or one restored from an older copy, whose feed
					// may end before the entry handed over last, or hold
					// another there (now or once it grows again). Once a
					// reset, the feed is read there before stepping over.
					_, err := s.feed.check(ctx, handled+1)
					if errors.Is(err, ErrFeedWentBack) {
						cancel()
						return fmt.Errorf("durable subscriber %q: %w", s.cfg.Durable, err)
					}
					if err != nil {
						if ctx.Err() != nil {
							break
						}
						// Cannot tell yet: nothing is stepped over until it can.
						s.logger.Warn("subscriber: cannot read the feed; retrying", "durable", s.cfg.Durable, "err", err, "wait", wait)
						stale, lost, pause = true, true, true
						break
					}
					checked = true
				}
				if (c.FeedSeq == 0 || c.FeedSeq > handled) && !s.early(c) {
					if err := s.handle(ctx, c, h, msgs[i], true); err != nil {
						break
					}
					handled = max(handled, c.FeedSeq)
					s.feed.handing(c)
				} // else handed over again by a server that lost its ack
				if err := msgs[i].Ack(); err != nil {
					s.logger.Warn("subscriber: ack failed", "durable", s.cfg.Durable, "err", err)
				}
				lastAcked = msgs[i]
			}
		}
		cancel()
		if ctx.Err() != nil && lastAcked != nil {
			// Make sure the server has every ack before the next run starts:
			// acks travel in order, so confirming the last confirms all.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = lastAcked.DoubleAck(cctx)
			cancel()
		}
		if pause {
			pause = false
			if !sleep(ctx, wait) {
				break
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		err = batch.Error()
		if err == nil || errors.Is(err, context.DeadlineExceeded) || stale || ctx.Err() != nil {
			wait = s.cfg.RetryWait
			continue
		}
		// The fetch failed at once (no responders: no such consumer) or on
		// the way: without a pause it would be tried again at full speed.
		// A server shutting down says so as it goes: asking it whether the
		// consumer is gone would wait out the request's whole timeout.
		if !errors.Is(err, jetstream.ErrServerShutdown) {
			if err := s.durableLost(ctx, stream); err != nil {
				return err
			}
		}
		s.logger.Warn("subscriber: fetch failed; retrying", "durable", s.cfg.Durable, "err", err, "wait", wait)
		if !sleep(ctx, wait) {
			break
		}
		wait = min(2*wait, 30*time.Second)
	}
	return nil
}

// durableLost returns an error if the durable's consumer, and the position it
// held, is gone for good: the feed was created again (wrapping
// ErrFeedWentBack), or the consumer was deleted. Carrying on would mean
// making a new one, which starts where Start says, not where this one was.
func (s *Subscriber) durableLost(ctx context.Context, stream jetstream.Stream) error {
	if !s.cfg.Conn.IsConnected() {
		return nil // cannot tell: the fetch fails while cut off, and is tried again
	}
	err := s.feed.gone(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, ErrFeedWentBack) {
		return fmt.Errorf("durable subscriber %q: %w; its consumer, and the position it held, went with the old feed",
			s.cfg.Durable, err)
	}
	if _, err := stream.Consumer(ctx, s.cfg.Durable); errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("durable subscriber %q: its consumer was deleted from the feed (stream %s), and the position it held with it; "+
			"running it again makes a new one, starting where its Start says", s.cfg.Durable, events.FeedStream)
	}
	return nil
}

// changesOf decodes a batch of feed entries, one change per entry (a zero
// Change for one that does not decode or comes before StartAtSeq). When the
// reader reads in batches, the changes share one lookup: the first Current of
// the batch reads the status of every contact in it at once, from a projection
// that has applied the log up to the batch's last change, so that no read is
// older than its change.
func (s *Subscriber) changesOf(entries []entry) ([]Change, *lookupBatch) {
	out := make([]Change, len(entries))
	var (
		lookup   *lookupBatch
		batchR   BatchReader
		isBatchR bool
	)
	if len(entries) > 1 {
		batchR, isBatchR = s.cfg.Reader.(BatchReader)
		if isBatchR {
			lookup = &lookupBatch{reader: batchR}
		}
	}
	for i, m := range entries {
		c, err := events.DecodeChange(m.data)
		if err != nil {
			s.logger.Error("subscriber: skipping a feed entry that does not decode", "subject", m.subject, "err", err)
			continue
		}
		if c.Seq < s.skipBelow {
			continue
		}
		out[i] = Change{Contact: c.Contact, Name: c.Name, Previous: c.Previous, Seq: c.Seq, At: c.At,
			FeedSeq: m.feedSeq, reader: s.cfg.Reader}
		if cur := m.current; cur != nil && cur.Contact == c.Contact && cur.Seq >= c.Seq {
			out[i].memo = (*carried)(cur)
		} else if lookup != nil {
			lookup.add(c.Contact, c.Seq)
			out[i].memo = lookup
		}
	}
	return out, lookup
}

// hand hands an ephemeral subscription's next change to h (handle), after
// checking that it follows the last one in the log: ErrFeedWentBack if not.
// A zero change, or one from before the time a live subscription starts at, is
// stepped over.
func (s *Subscriber) hand(ctx context.Context, c Change, h Handler) error {
	if c.Contact == "" || s.early(c) {
		return nil
	}
	if c.Seq <= s.handed {
		return handedAgain("this subscriber", c.FeedSeq, c.Seq, s.handed)
	}
	if err := s.handle(ctx, c, h, nil, false); err != nil {
		return err
	}
	s.handed = c.Seq
	s.feed.handing(c)
	return nil
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

// handle hands one change to h, again and again while h fails; a zero change
// is stepped over. It returns an error only when ctx ended first.
func (s *Subscriber) handle(ctx context.Context, c Change, h Handler, m jetstream.Msg, durable bool) error {
	if c.Contact == "" {
		return nil
	}
	var keepAlive func()
	if durable {
		keepAlive = func() { _ = m.InProgress() }
	}
	return handleWithRetry(ctx, s.logger, c, h, s.cfg.RetryWait, keepAlive)
}

// handleWithRetry hands a change to h again and again while h fails, pausing
// between tries (wait, doubling up to 30s) and calling keepAlive, if any, before
// each pause. It returns an error only when ctx ended first.
func handleWithRetry(ctx context.Context, logger *slog.Logger, c Change, h Handler, wait time.Duration, keepAlive func()) error {
	for {
		err := h(ctx, c)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("subscriber: handler failed; handing the change over again", "contact", c.Contact, "seq", c.Seq, "err", err)
		if keepAlive != nil {
			keepAlive()
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// sleep waits for d or ctx, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
