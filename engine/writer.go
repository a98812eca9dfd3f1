package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	// JetStream reaches the log. Required.
	JetStream jetstream.JetStream
	// Logger receives what the writer notices. Zero means slog.Default().
	Logger *slog.Logger
	// CacheSize is how many contacts' last events the writer remembers, to
	// append without reading the log first. Zero means 100,000.
	CacheSize int
	// MaxAttempts bounds the appends tried for one set when other writers keep
	// changing the contact in between. Zero means 32. From the second conflict
	// on, each attempt waits a random while first, up to twice as long as the
	// one before (conflictWait): on a cluster, the leader refuses an append
	// while an earlier one of the contact is still being replicated, and the
	// log's last event reads as before until it is; writers racing on one
	// contact also take turns.
	MaxAttempts int
	// Requests is the bucket where answers to request IDs are kept for the
	// deduplication window (events.RequestsBucket), so that a retry is answered as the
	// first time on any engine, after any restart. Zero means none: retries are
	// then recognised only by the log's deduplication of appended events.
	Requests jetstream.KeyValue
	// Now is the clock of event times. Zero means time.Now.
	Now func() time.Time
	// Hint, when set, tells what a projection knows of a contact the writer
	// does not remember: its status, name and last sequence. A stale hint costs
	// a conflict and a read of the log, never a wrong event: the append checks
	// the sequence, and an apparent no-op is checked against the log.
	Hint func(contact string) (status events.Status, name string, seq uint64, ok bool)
	// ContactRate bounds the sets of one contact: ContactRate a second on
	// average, ContactBurst at once. A set past it is refused at once with
	// ErrTooMany (429) and appends nothing, so that a flapping contact costs
	// the log and the others nothing. Zero means DefaultContactRate and
	// DefaultContactBurst; a negative rate means no bound.
	ContactRate  float64
	ContactBurst int
}

// The default bound on the sets of one contact: far above what a person or
// their devices do, far below what would let one contact crowd out the rest.
const (
	DefaultContactRate  = 50
	DefaultContactBurst = 100
)

// DefaultProjectionCache is the projection's block cache unless configured:
// the status reads of subscribers go to it. With Pebble's own default (8 MiB)
// the states of 100k contacts no longer fit, and a batch of reads went to the
// files, at a third of the speed.
const DefaultProjectionCache = 64 << 20

// Writer appends status changes to the log, exactly once and in order per
// contact: each event's previous status is the status of the contact's event
// before it. It holds sets of one contact one at a time, and uses the log's
// expected-last-subject-sequence check against every other writer, retrying on a
// conflict with what the log then holds. It is safe for concurrent use.
type Writer struct {
	cfg    WriterConfig
	js     jetstream.JetStream
	logger *slog.Logger
	seed   maphash.Seed
	locks  [1024]sync.Mutex
	limits [1024]map[string]*rate.Limiter // per stripe of locks, guarded by it

	cacheMu sync.Mutex
	cache   map[string]last

	stream atomic.Pointer[jetstream.Stream] // the log, looked up once

	appended   atomic.Uint64
	unchanged  atomic.Uint64
	conflicts  atomic.Uint64
	duplicates atomic.Uint64
	limited    atomic.Uint64
}

// last is what the writer knows of a contact's last event.
type last struct {
	status    events.Status
	previous  events.Status
	name      string
	seq       uint64 // 0: never seen
	requestID string
	fromLog   bool      // read from the log just now, not remembered
	at        time.Time // when the log stored it (fromLog only)
}

// withDefaults returns c with its zero fields at their defaults.
func (c WriterConfig) withDefaults() WriterConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 100_000
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 32
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ContactRate == 0 {
		c.ContactRate = DefaultContactRate
	}
	if c.ContactBurst <= 0 {
		c.ContactBurst = DefaultContactBurst
	}
	return c
}

// NewWriter returns a Writer.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("engine: a writer needs a JetStream")
	}
	cfg = cfg.withDefaults()
	return &Writer{
		cfg: cfg, js: cfg.JetStream, logger: cfg.Logger, seed: maphash.MakeSeed(),
		cache: make(map[string]last),
	}, nil
}

// Set appends the change unless the contact already has the status. Errors wrap
// ErrBadRequest, ErrConflict (a ConflictError) or client.ErrUnavailable.
func (w *Writer) Set(ctx context.Context, req client.SetRequest) (client.SetResult, error) {
	if err := req.Validate(); err != nil {
		return client.SetResult{}, err
	}
	// Cut off from the server, an append would wait for the reconnection
	// until the caller gives up: say so at once instead.
	if nc := w.cfg.JetStream.Conn(); !nc.IsConnected() {
		return client.SetResult{}, unavailable(fmt.Errorf("not connected to NATS (%s); retry", nc.Status()))
	}
	stripe := maphash.String(w.seed, req.Contact) % uint64(len(w.locks))
	mu := &w.locks[stripe]
	mu.Lock()
	defer mu.Unlock()

	if req.RequestID == "" {
		if err := w.limit(stripe, req.Contact); err != nil {
			return client.SetResult{}, err
		}
		return w.set(ctx, req)
	}
	if res, ok, err := w.answered(ctx, req); err != nil || ok {
		if ok {
			w.duplicates.Add(1)
			return sameRequest(req, res)
		}
		return res, err
	}
	if err := w.limit(stripe, req.Contact); err != nil {
		return client.SetResult{}, err
	}
	res, err := w.set(ctx, req)
	if err != nil {
		return res, err
	}
	w.record(ctx, req, res)
	return sameRequest(req, res)
}

// sameRequest returns res, the answer to a set with req's request ID, unless
// that set was to another status than req's: a request ID names one request,
// and is given again only to retry it. Answering the first request then would
// tell the caller its status was set when it was not.
func sameRequest(req client.SetRequest, res client.SetResult) (client.SetResult, error) {
	if res.Status == req.Status {
		return res, nil
	}
	return client.SetResult{}, badRequest(fmt.Errorf("request_id %s of %s was a set to %s (seq %d), not to %s: "+
		"a request ID is given again only to retry the same set; give this one an ID of its own",
		events.Quote(req.RequestID), events.Quote(req.Contact), res.Status, res.Seq, req.Status))
}

// limit takes one set of contact from its bound, or refuses it. The caller
// holds the contact's stripe lock.
func (w *Writer) limit(stripe uint64, contact string) error {
	if w.cfg.ContactRate < 0 {
		return nil
	}
	m := w.limits[stripe]
	if m == nil {
		m = make(map[string]*rate.Limiter)
		w.limits[stripe] = m
	}
	l, ok := m[contact]
	if !ok {
		// A contact whose bucket is full again is as if never seen: forget
		// those before remembering more, so the maps hold only contacts
		// active within the last burst's worth of time.
		if len(m) >= 256 {
			for c, l := range m {
				if l.Tokens() >= float64(w.cfg.ContactBurst) {
					delete(m, c)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(w.cfg.ContactRate), w.cfg.ContactBurst)
		m[contact] = l
	}
	if !l.Allow() {
		w.limited.Add(1)
		return &TooManyError{Contact: contact, Rate: w.cfg.ContactRate, Burst: w.cfg.ContactBurst}
	}
	return nil
}

// requestKey is where the answer to a request is kept: a digest of contact and
// request ID, since neither is fit for a key as it is.
func requestKey(contact, requestID string) string {
	sum := sha256.Sum256([]byte(msgID(contact, requestID)))
	return hex.EncodeToString(sum[:16])
}

type answerJSON struct {
	Contact   string           `json:"contact"`
	RequestID string           `json:"request_id"`
	Result    client.SetResult `json:"result"`
}

// answered returns the answer given to the request before, if it was within the
// deduplication window.
func (w *Writer) answered(ctx context.Context, req client.SetRequest) (client.SetResult, bool, error) {
	if w.cfg.Requests == nil {
		return client.SetResult{}, false, nil
	}
	entry, err := w.cfg.Requests.Get(ctx, requestKey(req.Contact, req.RequestID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return client.SetResult{}, false, nil
	}
	if err != nil {
		return client.SetResult{}, false, unavailable(fmt.Errorf("look up request %s: %w", events.Quote(req.RequestID), err))
	}
	var a answerJSON
	if err := json.Unmarshal(entry.Value(), &a); err != nil || a.Contact != req.Contact || a.RequestID != req.RequestID {
		return client.SetResult{}, false, nil // not this request's: treat it as new
	}
	return a.Result, true, nil
}

// record keeps the answer to a request for the window. Failing that, the answer
// stands; a retry is then recognised by the log alone.
func (w *Writer) record(ctx context.Context, req client.SetRequest, res client.SetResult) {
	if w.cfg.Requests == nil {
		return
	}
	b, _ := json.Marshal(answerJSON{Contact: req.Contact, RequestID: req.RequestID, Result: res})
	if _, err := w.cfg.Requests.Put(ctx, requestKey(req.Contact, req.RequestID), b); err != nil {
		w.logger.Warn("writer: could not keep the answer to a request", "contact", req.Contact, "err", err)
	}
}

func (w *Writer) set(ctx context.Context, req client.SetRequest) (client.SetResult, error) {
	// unsure are the appends whose acknowledgement was lost. Each expected
	// the contact's last event at a sequence: stored, it is the contact's
	// first event after it (each try's event has a time of its own).
	var unsure []unsureAppend
	cur, ok := w.cached(req.Contact)
	if !ok && w.cfg.Hint != nil {
		if status, name, seq, hinted := w.cfg.Hint(req.Contact); hinted {
			cur, ok = last{status: status, name: name, seq: seq}, true
		}
	}
	if !ok {
		var err error
		if cur, err = w.readLast(ctx, req.Contact); err != nil {
			return client.SetResult{}, err
		}
	}
	subject := events.EventSubject(req.Contact)
	for attempt := 0; attempt < w.cfg.MaxAttempts; attempt++ {
		if attempt > 0 || (!cur.fromLog && (req.ExpectSeq != nil || cur.status == req.Status)) {
			// What the writer remembers may be stale when other writers share the
			// log: a conflict, an expect_seq check or an apparent no-op is
			// settled against the log itself.
			if !cur.fromLog {
				var err error
				if cur, err = w.readLast(ctx, req.Contact); err != nil {
					return client.SetResult{}, err
				}
			}
		}
		for _, u := range unsure {
			seq, err := w.stored(ctx, subject, u)
			if err != nil {
				return client.SetResult{}, err
			}
			if seq > 0 {
				w.appended.Add(1)
				return client.SetResult{Contact: req.Contact, Status: req.Status, Previous: u.previous, Seq: seq, Changed: true}, nil
			}
		}
		if req.RequestID != "" && cur.requestID == req.RequestID {
			w.duplicates.Add(1)
			return client.SetResult{Contact: req.Contact, Status: cur.status, Previous: cur.previous, Seq: cur.seq, Changed: true}, nil
		}
		if req.RequestID != "" && ((req.ExpectSeq != nil && *req.ExpectSeq != cur.seq) || cur.status == req.Status) &&
			w.mayHold(ctx, cur) {
			// About to say the set was refused or changed nothing: unless
			// it is the retry of one whose event is in the log after all,
			// behind later changes (its answer was lost before it was
			// kept), which the log's deduplication is not reached to say.
			seq, err := w.appendedBefore(ctx, req)
			if err != nil {
				return client.SetResult{}, err
			}
			if seq > 0 {
				w.duplicates.Add(1)
				return w.original(ctx, req, seq)
			}
		}
		if req.ExpectSeq != nil && *req.ExpectSeq != cur.seq {
			return client.SetResult{}, &ConflictError{Contact: req.Contact, Expect: *req.ExpectSeq, Actual: cur.seq}
		}
		if cur.status == req.Status {
			w.remember(req.Contact, cur)
			w.unchanged.Add(1)
			return client.SetResult{Contact: req.Contact, Status: cur.status, Previous: cur.status, Seq: cur.seq}, nil
		}

		name := req.Name
		if name == "" {
			name = cur.name
		}
		e := events.Event{Contact: req.Contact, Name: name, Status: req.Status, Previous: cur.status,
			At: w.cfg.Now().UTC(), Cause: req.Cause, RequestID: req.RequestID}
		msg := &nats.Msg{Subject: subject, Data: e.Encode()}
		opts := []jetstream.PublishOpt{jetstream.WithExpectStream(events.LogStream), jetstream.WithExpectLastSequencePerSubject(cur.seq)}
		if req.RequestID != "" {
			opts = append(opts, jetstream.WithMsgID(msgID(req.Contact, req.RequestID)))
		}
		ack, err := w.js.PublishMsg(ctx, msg, opts...)
		if isWrongLastSequence(err) {
			w.conflicts.Add(1)
			cur.fromLog = false
			if err := conflictWait(ctx, attempt); err != nil {
				return client.SetResult{}, unavailable(fmt.Errorf("append to the log: %w", err))
			}
			continue
		}
		if err != nil && ambiguous(ctx, err) && attempt+1 < w.cfg.MaxAttempts {
			// Stored or not, nobody said: the next attempt looks for it
			// in the log first (stored), and tries again if it is not.
			unsure = append(unsure, unsureAppend{data: msg.Data, after: cur.seq, previous: cur.status})
			w.forget(req.Contact)
			cur.fromLog = false
			w.logger.Debug("writer: an append's acknowledgement was lost; reading the log", "contact", req.Contact, "err", err)
			continue
		}
		if err != nil {
			w.forget(req.Contact)
			return client.SetResult{}, unavailable(fmt.Errorf("append to the log: %w", err))
		}
		if ack.Duplicate {
			// The same request was stored before, and the contact has changed
			// since: answer as the first time, from the event itself.
			w.forget(req.Contact)
			w.duplicates.Add(1)
			return w.original(ctx, req, ack.Sequence)
		}
		w.remember(req.Contact, last{status: req.Status, previous: cur.status, name: name, seq: ack.Sequence, requestID: req.RequestID})
		w.appended.Add(1)
		return client.SetResult{Contact: req.Contact, Status: req.Status, Previous: cur.status, Seq: ack.Sequence, Changed: true}, nil
	}
	w.forget(req.Contact)
	return client.SetResult{}, unavailable(fmt.Errorf("contact %q kept changing under %d attempts to append; try again", req.Contact, w.cfg.MaxAttempts))
}

// unsureAppend is an append whose acknowledgement was lost.
type unsureAppend struct {
	data     []byte
	after    uint64        // the contact's last sequence it expected
	previous events.Status // the status it changed
}

// stored returns the log sequence of u if the log holds it, 0 if not (yet).
func (w *Writer) stored(ctx context.Context, subject string, u unsureAppend) (uint64, error) {
	stream, err := w.log(ctx)
	if err != nil {
		return 0, err
	}
	msg, err := stream.GetMsg(ctx, u.after+1, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(fmt.Errorf("read the log after seq %d: %w", u.after, err))
	}
	if bytes.Equal(msg.Data, u.data) {
		return msg.Sequence, nil
	}
	return 0, nil
}

// mayHold reports whether the log's duplicate window may hold a request of
// the contact whose last event is cur (read from the log): not if it has none,
// nor if that event is older than the window, as the request's would be (by
// the server's clock, which may differ from the writer's, Now: a minute is
// allowed).
func (w *Writer) mayHold(ctx context.Context, cur last) bool {
	if cur.seq == 0 {
		return false
	}
	stream, err := w.log(ctx)
	if err != nil || cur.at.IsZero() {
		return true
	}
	window := stream.CachedInfo().Config.Duplicates
	return window <= 0 || w.cfg.Now().Sub(cur.at) < window+time.Minute
}

// probeLastMsgID is the expected last message ID of appendedBefore's appends
// to a log of one replica: none the log can have, its events' IDs all holding
// a '/'.
const probeLastMsgID = "presence:none"

// appendedBefore returns the log sequence of the event of req's request ID if
// the log's duplicate window holds one, 0 if not. It asks the log itself, with
// an append of the request's message ID that the server refuses either way: as
// a duplicate (answering with the original's sequence), or else for a check
// that comes after the deduplication and that the append cannot pass. Nothing
// is stored. Which check comes after differs: on a server alone, the last
// message ID (the contact's last sequence is checked before); on a cluster, the
// contact's last sequence (checked, like the deduplication, before the append
// is proposed to the others, where the last message ID is checked only as it
// is applied, and failing there holds up the stream).
func (w *Writer) appendedBefore(ctx context.Context, req client.SetRequest) (uint64, error) {
	stream, err := w.log(ctx)
	if err != nil {
		return 0, err
	}
	// A stream with a Raft group (one of several replicas) takes the
	// cluster's steps; one without (a server alone, or one replica on a
	// cluster) the other's. Read afresh, as its replicas may have changed:
	// the wrong probe on a cluster would fail as it is applied.
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, unavailable(fmt.Errorf("look up request %s in the log: %w", events.Quote(req.RequestID), err))
	}
	clustered := info.Cluster != nil && info.Cluster.RaftGroup != ""
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(events.LogStream), jetstream.WithMsgID(msgID(req.Contact, req.RequestID))}
	if clustered {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(math.MaxUint64))
	} else {
		opts = append(opts, jetstream.WithExpectLastMsgID(probeLastMsgID))
	}
	ack, err := w.js.PublishMsg(ctx, &nats.Msg{Subject: events.EventSubject(req.Contact)}, opts...)
	var apiErr *jetstream.APIError
	switch {
	case err == nil && ack.Duplicate:
		return ack.Sequence, nil
	case clustered && isWrongLastSequence(err), !clustered && errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeWrongLastMsgID:
		return 0, nil
	case err == nil:
		w.logger.Error("writer: the log stored the empty record that asked after a request; it is not an event: the fold and the feed skip it, "+
			"but a set that reads it as the contact's last event fails, and an audit reports it",
			"contact", req.Contact, "request_id", req.RequestID, "seq", ack.Sequence)
		return 0, unavailable(fmt.Errorf("look up request %s in the log: the log stored the question at seq %d", events.Quote(req.RequestID), ack.Sequence))
	}
	return 0, unavailable(fmt.Errorf("look up request %s in the log: %w", events.Quote(req.RequestID), err))
}

// jsErrCodeWrongLastMsgID is the server's error code for an append whose
// expected last message ID is not the log's.
const jsErrCodeWrongLastMsgID jetstream.ErrorCode = 10070

// conflictWait pauses before the attempt after a conflict: not after the first
// (what the writer remembered was stale, and the log has been read since),
// then a random while up to 1ms, 2ms, 4ms... at most 64ms, or until ctx is done.
func conflictWait(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	most := time.Millisecond << min(attempt-1, 6)
	t := time.NewTimer(rand.N(most) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// msgID scopes a request ID to its contact: the log deduplicates across the whole
// stream, and two contacts may well use the same request IDs. The token holds no
// '/', so the pair is unambiguous.
func msgID(contact, requestID string) string {
	return events.Token(contact) + "/" + requestID
}

// original answers a request whose event the log already holds at seq.
func (w *Writer) original(ctx context.Context, req client.SetRequest, seq uint64) (client.SetResult, error) {
	stream, err := w.log(ctx)
	if err != nil {
		return client.SetResult{}, err
	}
	msg, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return client.SetResult{}, unavailable(fmt.Errorf("read the log at seq %d: %w", seq, err))
	}
	e, err := events.DecodeEvent(msg.Data)
	if err != nil {
		return client.SetResult{}, fmt.Errorf("the log holds a malformed event at seq %d: %w", seq, err)
	}
	if e.Contact != req.Contact || e.RequestID != req.RequestID {
		return client.SetResult{}, fmt.Errorf("the log's event at seq %d is not request %q of %q", seq, req.RequestID, req.Contact)
	}
	return client.SetResult{Contact: req.Contact, Status: e.Status, Previous: e.Previous, Seq: seq, Changed: true}, nil
}

// log returns the log's stream, looked up on first use.
func (w *Writer) log(ctx context.Context) (jetstream.Stream, error) {
	if s := w.stream.Load(); s != nil {
		return *s, nil
	}
	s, err := w.js.Stream(ctx, events.LogStream)
	if err != nil {
		return nil, unavailable(fmt.Errorf("open the log: %w", err))
	}
	w.stream.Store(&s)
	return s, nil
}

// readLast reads the contact's last event from the log.
func (w *Writer) readLast(ctx context.Context, contact string) (last, error) {
	stream, err := w.log(ctx)
	if err != nil {
		return last{}, err
	}
	msg, err := stream.GetLastMsgForSubject(ctx, events.EventSubject(contact))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return last{status: events.Unknown, fromLog: true}, nil
	}
	if err != nil {
		return last{}, unavailable(fmt.Errorf("read the last event of %q: %w", contact, err))
	}
	e, err := events.DecodeEvent(msg.Data)
	if err != nil {
		return last{}, fmt.Errorf("the log holds a malformed event of %q at seq %d: %w", contact, msg.Sequence, err)
	}
	return last{status: e.Status, previous: e.Previous, name: e.Name, seq: msg.Sequence,
		requestID: e.RequestID, fromLog: true, at: msg.Time}, nil
}

func (w *Writer) cached(contact string) (last, bool) {
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	l, ok := w.cache[contact]
	return l, ok
}

func (w *Writer) remember(contact string, l last) {
	l.fromLog, l.at = false, time.Time{}
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	if _, ok := w.cache[contact]; !ok && len(w.cache) >= w.cfg.CacheSize {
		for k := range w.cache { // map order is random: evict any one
			delete(w.cache, k)
			break
		}
	}
	w.cache[contact] = l
}

func (w *Writer) forget(contact string) {
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	delete(w.cache, contact)
}

// ambiguous reports whether an append that failed with err may have been
// stored all the same: no answer came (a timeout, a lost connection) while
// ctx still runs. An answer of the server's (an API error) says it was not.
func ambiguous(ctx context.Context, err error) bool {
	var apiErr *jetstream.APIError
	if ctx.Err() != nil || errors.As(err, &apiErr) {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// WriterMetrics is a snapshot of a writer's counters.
type WriterMetrics struct {
	Appended   uint64 `json:"appended"`   // events appended
	Unchanged  uint64 `json:"unchanged"`  // sets that changed nothing
	Conflicts  uint64 `json:"conflicts"`  // appends refused because another writer got there first
	Duplicates uint64 `json:"duplicates"` // retried requests answered as the first time
	Limited    uint64 `json:"limited"`    // sets refused because their contact went past its bound
}

// Metrics returns a snapshot of the writer's counters.
func (w *Writer) Metrics() WriterMetrics {
	return WriterMetrics{Appended: w.appended.Load(), Unchanged: w.unchanged.Load(),
		Conflicts: w.conflicts.Load(), Duplicates: w.duplicates.Load(), Limited: w.limited.Load()}
}
