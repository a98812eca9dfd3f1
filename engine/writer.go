package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/lease"
	"github.com/presence-engine/presence/internal/retry"
	"github.com/presence-engine/presence/projections"
)

// writerConfig configures a Writer.
type writerConfig struct {
	// JetStream reaches the log. Required.
	JetStream jetstream.JetStream
	// Projection is what the owner knows of its contacts: it decides each set
	// on the projection's state, once the projection has applied the whole
	// log, and on the appends it made since. Required.
	Projection *projections.Projection
	// Lease says whether this engine owns the log. Required.
	Lease *lease.Lease
	// Logger receives what the writer notices. Zero means slog.Default().
	Logger *slog.Logger
	// InFlight bounds the appends sent and not yet acknowledged. Zero means
	// DefaultInFlight.
	InFlight int
	// Requests is the bucket where answers to request IDs are kept for the
	// deduplication window (events.RequestsBucket), so that a retry is answered
	// as the first time by any owner, after any restart. Zero means none:
	// retries are then recognised by what the owner appended last and by the
	// log's deduplication.
	Requests jetstream.KeyValue
	// Now is the clock of event times. Zero means time.Now.
	Now func() time.Time
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

// DefaultInFlight is how many appends the owner has sent and not yet had
// acknowledged, unless configured. Each set waits for its own append's
// acknowledgement, and the appends go out one after the other without waiting
// for the ones before: the deeper, the more sets a round trip to the server
// carries (appends measured at 0.55x raw async publishing with 64 in flight,
// 0.90x with 4096), and the longer a set may wait behind the others when
// they come faster than the log stores them.
const DefaultInFlight = 4096

// DefaultProjectionCache is the projection's block cache unless configured:
// the status reads of subscribers go to it. With Pebble's own default (8 MiB)
// the states of 100k contacts no longer fit, and a batch of reads went to the
// files, at a third of the speed.
const DefaultProjectionCache = 64 << 20

// errNotOwner: this engine does not own the log; the service passes the set
// on to the owner.
var errNotOwner = errors.New("this engine does not own the log")

// Writer appends status changes to the log while its engine owns the log
// (DESIGN.md section 6): one decider orders every set, in memory, on the
// projection and on the appends it made since, and appends without waiting for
// the appends before (DefaultInFlight). Each append expects the log's last
// sequence: the server refuses it if anything else came in between (a former
// owner's late append, say), and the owner then reads the log's last sequence
// again, waits for its projection to reach it, and decides again the sets it
// had not settled. So for every contact each event's previous status is the
// status of its event before: the chain is verifiable.
//
// A set that depends on an append still in flight (a no-op after it, a
// request ID given again) is answered only once that append is acknowledged.
// Its methods are safe for concurrent use.
type Writer struct {
	cfg    writerConfig
	js     jetstream.JetStream
	logger *slog.Logger
	ops    chan *op
	owning atomic.Bool

	changedMu sync.Mutex
	changed   chan struct{}                    // closed and replaced when owning changes
	stream    atomic.Pointer[jetstream.Stream] // the log, looked up once

	appended   atomic.Uint64
	unchanged  atomic.Uint64
	conflicts  atomic.Uint64
	duplicates atomic.Uint64
	limited    atomic.Uint64
	takeovers  atomic.Uint64
	passedOn   atomic.Uint64 // counted by the service
	realigned  atomic.Uint64
}

// last is what the owner knows of a contact's last event.
type last struct {
	status   events.Status
	previous events.Status
	name     string
	// visibleName is the name as of the contact's last visible change: what
	// a visible change that gives no name carries. A name given with a
	// hidden change is not shown until a visible change gives it again
	// (DESIGN.md §4): in the run where invisible is offline, that set
	// changed nothing.
	visibleName string
	seq         uint64 // 0: never seen
	requestID   string // of the event, if the owner appended it
	at          time.Time
}

// op is one set on its way through the decider.
type op struct {
	ctx   context.Context // the caller's: once done, nobody waits for the answer
	req   client.SetRequest
	res   client.SetResult
	err   error
	done  chan struct{}
	tries int
	hook  func() // a test's, run by the decider instead of a set

	// An append's, set by the decider.
	fut    jetstream.PubAckFuture // nil: the set appends nothing
	data   []byte
	expect uint64 // the log's last sequence the append expected
	unsure bool   // no answer came: stored or not, the log says
}

func (o *op) finish(res client.SetResult, err error) {
	o.res, o.err = res, err
	close(o.done)
}

// withDefaults returns c with its zero fields at their defaults.
func (c writerConfig) withDefaults() writerConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.InFlight <= 0 {
		c.InFlight = DefaultInFlight
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

// newWriter returns a Writer; Run makes it append while its engine owns the log.
func newWriter(cfg writerConfig) (*Writer, error) {
	if cfg.JetStream == nil || cfg.Projection == nil || cfg.Lease == nil {
		return nil, errors.New("engine: a writer needs a JetStream, a Projection and a Lease")
	}
	cfg = cfg.withDefaults()
	return &Writer{cfg: cfg, js: cfg.JetStream, logger: cfg.Logger, ops: make(chan *op, cfg.InFlight), changed: make(chan struct{})}, nil
}

// Owning reports whether this engine owns the log and appends.
func (w *Writer) Owning() bool { return w.owning.Load() }

// Changed returns a channel closed the next time Owning changes.
func (w *Writer) Changed() <-chan struct{} {
	w.changedMu.Lock()
	defer w.changedMu.Unlock()
	return w.changed
}

// setOwning records whether the writer appends, and tells who waits on Changed.
func (w *Writer) setOwning(owning bool) {
	w.changedMu.Lock()
	defer w.changedMu.Unlock()
	if w.owning.Swap(owning) == owning {
		return
	}
	close(w.changed)
	w.changed = make(chan struct{})
	if owning {
		w.logger.Info("writer: owning the log")
	} else {
		w.logger.Info("writer: no longer owning the log")
	}
}

// Set appends the change unless the contact already has the status. Errors wrap
// ErrBadRequest, ErrConflict (a ConflictError), ErrTooMany (a TooManyError) or
// client.ErrUnavailable, and errNotOwner where another engine owns the log.
func (w *Writer) Set(ctx context.Context, req client.SetRequest) (client.SetResult, error) {
	if err := req.Validate(); err != nil {
		return client.SetResult{}, err
	}
	// Cut off from the server, an append would wait for the reconnection
	// until the caller gives up: say so at once instead.
	if nc := w.cfg.JetStream.Conn(); !nc.IsConnected() {
		return client.SetResult{}, unavailable(fmt.Errorf("not connected to NATS (%s); retry", nc.Status()))
	}
	if !w.Owning() {
		return client.SetResult{}, unavailable(errNotOwner)
	}
	if req.RequestID != "" {
		if res, ok, err := w.answered(ctx, req); err != nil || ok {
			if ok {
				w.duplicates.Add(1)
				return sameRequest(req, res)
			}
			return res, err
		}
	}
	o := &op{ctx: ctx, req: req, done: make(chan struct{})}
	select {
	case w.ops <- o:
	case <-ctx.Done():
		return client.SetResult{}, unavailable(fmt.Errorf("the owner has %d sets in hand: %w; retry", cap(w.ops), ctx.Err()))
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		return client.SetResult{}, unavailable(fmt.Errorf("no acknowledgement from the log in time (%w): the set may yet be stored; "+
			"retry with the same request_id to find out", ctx.Err()))
	}
	if o.err != nil || req.RequestID == "" {
		return o.res, o.err
	}
	w.record(ctx, req, o.res)
	return sameRequest(req, o.res)
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

// Run appends while the lease is held, until ctx is done. Sets that reach it
// while another engine owns the log are refused with errNotOwner.
func (w *Writer) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		changed := w.cfg.Lease.Changed()
		if w.cfg.Lease.Held() {
			w.takeovers.Add(1)
			t := &term{w: w, overlay: make(map[string]last), limits: make(map[string]*rate.Limiter)}
			t.run(ctx)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case o := <-w.ops:
			o.finish(client.SetResult{}, unavailable(errNotOwner))
		}
	}
	return nil
}

// term is one stretch of ownership.
type term struct {
	w        *Writer
	last     uint64          // the log's last sequence, the appends in flight included
	overlay  map[string]last // the contacts appended to since the projection applied them
	inflight []*op           // in the order decided; the acknowledgements come in that order
	again    []*op           // to be decided again once the owner has read the log again
	broken   bool            // an append was refused or lost: the appends after it will be too
	refused  bool            // an append was refused since the owner last read the log
	appended []appended      // the overlay's entries in the order appended, to forget them in that order
	limits   map[string]*rate.Limiter
}

// appended is an append of the overlay: the contact and the sequence it took.
type appended struct {
	contact string
	seq     uint64
}

// run decides and appends until the lease is lost or ctx is done, then
// settles the appends in flight and refuses the sets not decided.
func (t *term) run(ctx context.Context) {
	w := t.w
	lost := make(chan struct{})
	go func() {
		for {
			changed := w.cfg.Lease.Changed()
			if !w.cfg.Lease.Held() {
				close(lost)
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				close(lost)
				return
			}
		}
	}()
	defer t.stepDown(lost)
	if !t.catchUp(ctx, lost) {
		return
	}
	w.setOwning(true)
	for {
		select {
		case <-lost:
			return
		default:
		}
		t.settle()
		if t.broken && len(t.inflight) == 0 {
			if !t.catchUp(ctx, lost) {
				return
			}
			again := t.again
			t.again = nil
			for _, o := range again {
				t.decide(ctx, o)
			}
			continue
		}
		in := w.ops
		if t.broken || len(t.inflight) >= w.cfg.InFlight {
			in = nil
		}
		var ok <-chan *jetstream.PubAck
		var failed <-chan error
		if len(t.inflight) > 0 {
			ok, failed = t.inflight[0].fut.Ok(), t.inflight[0].fut.Err()
		}
		select {
		case <-lost:
			return
		case o := <-in:
			t.decide(ctx, o)
		case ack := <-ok:
			t.acked(ctx, ack)
		case err := <-failed:
			t.failed(err)
		}
	}
}

// stepDown ends a term: it waits a while for the appends in flight, answers
// the sets left, and refuses those that come meanwhile.
func (t *term) stepDown(lost <-chan struct{}) {
	w := t.w
	<-lost
	w.setOwning(false)
	wait := time.NewTimer(5 * time.Second)
	defer wait.Stop()
	for len(t.inflight) > 0 {
		t.settle()
		if len(t.inflight) == 0 {
			break
		}
		select {
		case ack := <-t.inflight[0].fut.Ok():
			t.acked(context.Background(), ack)
		case err := <-t.inflight[0].fut.Err():
			t.failed(err)
		case <-wait.C:
			for _, o := range t.inflight {
				if o.fut != nil {
					o.finish(client.SetResult{}, unavailable(errors.New("no acknowledgement from the log while the owner stepped down: "+
						"the set may yet be stored; retry with the same request_id to find out")))
				} else {
					t.again = append(t.again, o)
				}
			}
			t.inflight = nil
		}
	}
	for _, o := range t.again {
		if o.unsure {
			o.finish(client.SetResult{}, unavailable(errors.New("no acknowledgement from the log while the owner stepped down: "+
				"the set may yet be stored; retry with the same request_id to find out")))
			continue
		}
		o.finish(client.SetResult{}, unavailable(errNotOwner))
	}
	t.again = nil
}

// catchUp makes the owner's view the log's: it reads the log's last sequence,
// settles the appends whose acknowledgement was lost, and waits until the
// projection has applied the log that far. It returns false if the lease was
// lost or ctx done first.
func (t *term) catchUp(ctx context.Context, lost <-chan struct{}) bool {
	w := t.w
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := retry.Backoff{First: 50 * time.Millisecond, Max: 2 * time.Second}
	for {
		err := t.readLog(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		w.logger.Warn("writer: cannot read the log to take it over; trying again", "err", err)
		if !backoff.Wait(ctx) {
			return false
		}
	}
	t.overlay, t.appended = make(map[string]last), nil
	t.broken, t.refused = false, false
	return true
}

// readLog reads the log's last sequence, settles the unsure appends against
// it, and waits for the projection to apply it.
func (t *term) readLog(ctx context.Context) error {
	stream, err := t.w.log(ctx)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("read the log's last sequence: %w", err)
	}
	var kept []*op
	for i, o := range t.again {
		if o.unsure {
			seq, err := t.w.stored(ctx, o)
			if err != nil {
				t.again = append(kept, t.again[i:]...)
				return err
			}
			if seq > 0 {
				t.w.appended.Add(1)
				o.finish(appendedResult(o, seq), nil)
				continue
			}
			o.unsure, o.fut = false, nil
		}
		kept = append(kept, o)
	}
	t.again = kept
	t.last = info.State.LastSeq
	if applied := t.w.cfg.Projection.Applied(); applied > t.last {
		// The log went back (restored from a backup, made anew): the
		// projection is folded again from it before the owner trusts it.
		return fmt.Errorf("the projection has applied the log to seq %d, past its end at seq %d: waiting for it to be folded again", applied, t.last)
	}
	return t.w.cfg.Projection.WaitApplied(ctx, t.last)
}

// settle answers the sets at the head of the queue that append nothing:
// their answers held as soon as the appends before them were acknowledged.
func (t *term) settle() {
	for len(t.inflight) > 0 && t.inflight[0].fut == nil {
		o := t.inflight[0]
		t.inflight = t.inflight[1:]
		if t.broken {
			t.again = append(t.again, o)
			continue
		}
		o.finish(o.res, o.err)
	}
}

// acked handles the acknowledgement of the append at the head of the queue.
func (t *term) acked(ctx context.Context, ack *jetstream.PubAck) {
	o := t.inflight[0]
	t.inflight = t.inflight[1:]
	if ack.Duplicate {
		// The request was stored before (a former owner appended it and no
		// answer was kept): answered from its event. Nothing was stored,
		// so the appends after it expected a sequence too far.
		t.broken = true
		t.w.duplicates.Add(1)
		res, err := t.w.original(ctx, o.req, ack.Sequence)
		o.finish(res, err)
		return
	}
	t.w.appended.Add(1)
	o.finish(appendedResult(o, ack.Sequence), nil)
	if t.refused {
		// The log took this append after refusing one sent before it: an
		// append of someone else's (a former owner's, late) filled the slot
		// the refused one expected. This one was decided on what the owner
		// knew, without that append: if both were of one contact, its chain
		// may be broken here. Nothing can undo it; say so loudly.
		t.w.realigned.Add(1)
		t.w.logger.Error("writer: the log took an append after refusing one sent before it (another engine appended in between); "+
			"the chain of this contact may be broken: run presence verify", "contact", o.req.Contact, "seq", ack.Sequence)
	}
	t.forgetApplied()
}

// failed handles a refused or unanswered append at the head of the queue: it
// is decided again (or looked for in the log) once the owner has read the log.
func (t *term) failed(err error) {
	o := t.inflight[0]
	t.inflight = t.inflight[1:]
	t.broken = true
	o.tries++
	switch {
	case isWrongLastSequence(err):
		t.w.conflicts.Add(1)
		t.refused = true
		o.fut = nil
	case ambiguous(err):
		o.unsure = true
	default:
		o.finish(client.SetResult{}, unavailable(fmt.Errorf("append to the log: %w", err)))
		return
	}
	if o.tries >= 5 {
		o.finish(client.SetResult{}, unavailable(fmt.Errorf("append to the log, %d times: %w; the set may yet be stored: "+
			"retry with the same request_id to find out", o.tries, err)))
		return
	}
	t.again = append(t.again, o)
	t.w.logger.Debug("writer: an append was refused or not answered; reading the log again", "contact", o.req.Contact, "err", err)
}

// forgetApplied drops from the overlay, oldest first, the appends the
// projection has applied: it knows their contacts as well now.
func (t *term) forgetApplied() {
	applied := t.w.cfg.Projection.Applied()
	n := 0
	for ; n < len(t.appended) && t.appended[n].seq <= applied; n++ {
		a := t.appended[n]
		if t.overlay[a.contact].seq == a.seq {
			delete(t.overlay, a.contact)
		}
	}
	t.appended = t.appended[n:]
}

// current returns what the owner knows of the contact's last event.
func (t *term) current(contact string) (last, error) {
	if l, ok := t.overlay[contact]; ok {
		return l, nil
	}
	st, seen, err := t.w.cfg.Projection.State(contact)
	if err != nil {
		return last{}, unavailable(fmt.Errorf("read the state of %s: %w", events.Quote(contact), err))
	}
	if !seen {
		return last{status: events.Unknown}, nil
	}
	return last{status: st.Status, previous: st.Previous, name: st.Name, visibleName: st.Visible.Name, seq: st.Seq, at: st.At}, nil
}

// decide settles a set on what the owner knows, and appends it if it changes
// the contact. Its answer waits in the queue behind the appends before it.
func (t *term) decide(ctx context.Context, o *op) {
	w, req := t.w, o.req
	if o.hook != nil {
		o.hook()
		o.finish(client.SetResult{}, nil)
		return
	}
	if o.ctx.Err() != nil {
		// Its caller gave up before it was decided, and was told it may yet
		// be applied: it is not.
		o.finish(client.SetResult{}, unavailable(o.ctx.Err()))
		return
	}
	cur, err := t.current(req.Contact)
	if err != nil {
		o.finish(client.SetResult{}, err)
		return
	}
	if req.RequestID != "" && cur.requestID == req.RequestID {
		w.duplicates.Add(1)
		t.answer(o, client.SetResult{Contact: req.Contact, Status: cur.status, Previous: cur.previous, Seq: cur.seq, Changed: true}, nil)
		return
	}
	if o.tries == 0 {
		if err := t.limit(req.Contact); err != nil {
			o.finish(client.SetResult{}, err)
			return
		}
	}
	conflict := req.ExpectSeq != nil && *req.ExpectSeq != cur.seq
	if req.RequestID != "" && (conflict || cur.status == req.Status) && w.mayHold(ctx, cur) {
		// About to say the set was refused or changed nothing: unless it is
		// the retry of one whose event is in the log after all, behind later
		// changes (its answer was lost before it was kept). Asked here, in
		// the decider, which waits meanwhile: bounded.
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		seq, err := w.appendedBefore(qctx, req)
		cancel()
		if err != nil {
			o.finish(client.SetResult{}, err)
			return
		}
		if seq > 0 {
			w.duplicates.Add(1)
			res, err := w.original(ctx, req, seq)
			t.answer(o, res, err)
			return
		}
	}
	if conflict {
		t.answer(o, client.SetResult{}, &ConflictError{Contact: req.Contact, Expect: *req.ExpectSeq, Actual: cur.seq})
		return
	}
	if cur.status == req.Status {
		w.unchanged.Add(1)
		t.answer(o, client.SetResult{Contact: req.Contact, Status: cur.status, Previous: cur.status, Seq: cur.seq}, nil)
		return
	}
	visible := events.VisibleChange(cur.status, req.Status)
	name, visibleName := req.Name, cur.visibleName
	if name == "" {
		name = cur.name
		if visible {
			name = cur.visibleName
		}
	}
	if visible {
		visibleName = name
	}
	now := w.cfg.Now().UTC()
	e := events.Event{Contact: req.Contact, Name: name, Status: req.Status, Previous: cur.status,
		At: now, Cause: req.Cause, RequestID: req.RequestID}
	o.data = e.Encode()
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(events.LogStream), jetstream.WithExpectLastSequence(t.last)}
	if req.RequestID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID(req.Contact, req.RequestID)))
	}
	fut, err := w.js.PublishMsgAsync(&nats.Msg{Subject: events.EventSubject(req.Contact), Data: o.data}, opts...)
	if err != nil {
		o.finish(client.SetResult{}, unavailable(fmt.Errorf("append to the log: %w", err)))
		return
	}
	o.fut, o.expect = fut, t.last
	t.last++
	t.overlay[req.Contact] = last{status: req.Status, previous: cur.status, name: name, visibleName: visibleName,
		seq: t.last, requestID: req.RequestID, at: now}
	t.appended = append(t.appended, appended{contact: req.Contact, seq: t.last})
	t.inflight = append(t.inflight, o)
}

// answer queues a set's answer behind the appends in flight, on which it may
// depend.
func (t *term) answer(o *op, res client.SetResult, err error) {
	o.res, o.err, o.fut = res, err, nil
	t.inflight = append(t.inflight, o)
}

// appendedResult is the answer to a set whose append the log stored at seq.
func appendedResult(o *op, seq uint64) client.SetResult {
	e, _ := events.DecodeEvent(o.data)
	return client.SetResult{Contact: o.req.Contact, Status: o.req.Status, Previous: e.Previous, Seq: seq, Changed: true}
}

// limit takes one set of contact from its bound, or refuses it.
func (t *term) limit(contact string) error {
	w := t.w
	if w.cfg.ContactRate < 0 {
		return nil
	}
	l, ok := t.limits[contact]
	if !ok {
		// A contact whose bucket is full again is as if never seen: forget
		// those before remembering more, so the map holds only contacts
		// active within the last burst's worth of time.
		if len(t.limits) >= 4096 {
			for c, l := range t.limits {
				if l.Tokens() >= float64(w.cfg.ContactBurst) {
					delete(t.limits, c)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(w.cfg.ContactRate), w.cfg.ContactBurst)
		t.limits[contact] = l
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

// WriterMetrics is a snapshot of a writer's counters.
type WriterMetrics struct {
	Owner      bool   `json:"owner"`      // this engine owns the log and appends
	Takeovers  uint64 `json:"takeovers"`  // times this engine took the log over
	Appended   uint64 `json:"appended"`   // events appended
	Unchanged  uint64 `json:"unchanged"`  // sets that changed nothing
	Conflicts  uint64 `json:"conflicts"`  // appends refused because the log held more than the owner knew
	Duplicates uint64 `json:"duplicates"` // retried requests answered as the first time
	Limited    uint64 `json:"limited"`    // sets refused because their contact went past its bound
	PassedOn   uint64 `json:"passed_on"`  // sets this engine passed on to the owner
	// Realigned counts appends the log took after refusing one sent before
	// them: another engine appended in between, and the chain of their
	// contacts may be broken (presence verify tells). Never expected.
	Realigned uint64 `json:"realigned"`
}

// Metrics returns a snapshot of the writer's counters.
func (w *Writer) Metrics() WriterMetrics {
	return WriterMetrics{Owner: w.Owning(), Takeovers: w.takeovers.Load(), Appended: w.appended.Load(), Unchanged: w.unchanged.Load(),
		Conflicts: w.conflicts.Load(), Duplicates: w.duplicates.Load(), Limited: w.limited.Load(), PassedOn: w.passedOn.Load(), Realigned: w.realigned.Load()}
}
