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

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/lease"
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
	// Lease says whether this engine owns the partition. Required.
	Lease *lease.Lease
	// Partition is the partition of the log this writer appends to, of
	// Partitions (zero means 1): its stream and its contacts
	// (events.Partition).
	Partition, Partitions int
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
	// FlapWindow coalesces the visible changes that endpoints and the
	// owner's own looks make (flap.go): one within FlapWindow after the last
	// change subscribers were shown is held back, and what such changes
	// leave is shown at the window's end. Zero means DefaultFlapWindow; a
	// negative window means none.
	FlapWindow time.Duration
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

// errNotOwner: this engine does not own the contact's partition of the log;
// the service passes the set on to the owner.
var errNotOwner = errors.New("this engine does not own the contact's partition of the log")

// Writer appends status changes to a partition of the log while its engine
// owns it (DESIGN.md section 6; with one partition, the whole log): one decider orders every set, in memory, on the
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
	termDone  chan struct{}                    // closed when the term running ends; nil between terms (changedMu)
	stream    atomic.Pointer[jetstream.Stream] // the partition's stream, looked up once

	appended   atomic.Uint64
	unchanged  atomic.Uint64
	conflicts  atomic.Uint64
	duplicates atomic.Uint64
	limited    atomic.Uint64
	takeovers  atomic.Uint64
	passedOn   atomic.Uint64 // counted by the service
	realigned  atomic.Uint64

	expiryChecks atomic.Uint64 // times the owner looked for leases that ended
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
	// eps are the contact's endpoints after the event, if the owner
	// appended one that changed them; nil: as the projection has them.
	eps   *projections.Endpoints
	cause events.Cause
	// shown is the visible status subscribers were last shown, and shownAt
	// the time of that change: shown differs from status's visible one
	// while a change is held back (flap.go).
	shown   events.Status
	shownAt time.Time
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
	// ep, when set, makes the op an endpoint's (or, with Op "expire", the
	// owner's own end of a lease) instead of a set; expires is its lease's
	// end, as the answer tells it.
	ep      *client.EndpointRequest
	expires time.Time

	// An append's, set by the decider.
	fut      jetstream.PubAckFuture // nil: the set appends nothing
	data     []byte
	expect   uint64        // the log's last sequence the append expected
	previous events.Status // the status the append changed
	unsure   bool          // no answer came: stored or not, the log says
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
	if c.Partitions <= 0 {
		c.Partitions = 1
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
	if c.FlapWindow == 0 {
		c.FlapWindow = DefaultFlapWindow
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

// Owning reports whether this engine owns the writer's partition and appends.
func (w *Writer) Owning() bool { return w.owning.Load() }

// Partition returns the partition the writer appends to.
func (w *Writer) Partition() int { return w.cfg.Partition }

// streamName returns the name of the writer's partition's stream.
func (w *Writer) streamName() string {
	return events.PartitionStream(w.cfg.Partition, w.cfg.Partitions)
}

// subject returns the subject a contact's events are appended to.
func (w *Writer) subject(contact string) string {
	return events.PartitionSubject(contact, w.cfg.Partitions)
}

// applied returns how far the projection has applied the writer's partition.
func (w *Writer) applied() uint64 { return w.cfg.Projection.AppliedIn(w.cfg.Partition) }

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
		w.logger.Info("writer: owning the log", "partition", w.cfg.Partition, "partitions", w.cfg.Partitions)
	} else {
		w.logger.Info("writer: no longer owning the log", "partition", w.cfg.Partition, "partitions", w.cfg.Partitions)
	}
}

// Set appends the change unless the contact already has the status. Errors wrap
// ErrBadRequest, ErrConflict (a ConflictError), ErrTooMany (a TooManyError) or
// client.ErrUnavailable, and errNotOwner where another engine owns the log.
func (w *Writer) Set(ctx context.Context, req client.SetRequest) (client.SetResult, error) {
	if err := req.Validate(); err != nil {
		return client.SetResult{}, err
	}
	if err := w.mayDecide(req.Contact); err != nil {
		return client.SetResult{}, err
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
	if err := w.submit(ctx, o); err != nil {
		return client.SetResult{}, err
	}
	if req.RequestID == "" {
		return o.res, nil
	}
	w.record(ctx, req, o.res)
	return sameRequest(req, o.res)
}

// mayDecide says why this writer cannot decide a request of contact now, if
// it cannot: cut off from the server (an append would wait for the
// reconnection until the caller gives up: said at once instead), or not the
// owner of the contact's partition (errNotOwner: the service passes it on).
func (w *Writer) mayDecide(contact string) error {
	if nc := w.cfg.JetStream.Conn(); !nc.IsConnected() {
		return unavailable(fmt.Errorf("not connected to NATS (%s); retry", nc.Status()))
	}
	if p := events.Partition(contact, w.cfg.Partitions); p != w.cfg.Partition {
		return fmt.Errorf("engine: the request of %s (partition %d) reached the writer of partition %d", events.Quote(contact), p, w.cfg.Partition)
	}
	if !w.Owning() {
		return unavailable(errNotOwner)
	}
	return nil
}

// submit hands o to the decider and waits for its answer, until ctx is done.
func (w *Writer) submit(ctx context.Context, o *op) error {
	select {
	case w.ops <- o:
	case <-ctx.Done():
		return unavailable(fmt.Errorf("the owner has %d requests in hand: %w; retry", cap(w.ops), ctx.Err()))
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return unavailable(fmt.Errorf("no acknowledgement from the log in time (%w): the request may yet be applied; "+
			"retry with the same request_id to find out", ctx.Err()))
	}
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
		if done := w.startTerm(); done != nil {
			w.takeovers.Add(1)
			t := &term{w: w, overlay: make(map[string]last), limits: make(map[string]*rate.Limiter)}
			t.run(ctx)
			w.changedMu.Lock()
			w.termDone = nil
			w.changedMu.Unlock()
			close(done)
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

// startTerm returns the channel to close when the term starting ends, if the
// lease is held; nil if not. Both are under changedMu, as settle reads it: a
// lease that lets go (not held any more) before settle looks either sees no
// term start, or a term to wait for.
func (w *Writer) startTerm() chan struct{} {
	w.changedMu.Lock()
	defer w.changedMu.Unlock()
	if !w.cfg.Lease.Held() {
		return nil
	}
	w.termDone = make(chan struct{})
	return w.termDone
}

// settle returns once the writer's term, if one runs, has ended: its appends
// in flight answered, or given up on (stepDown). A lease letting go calls it
// before deleting its key (lease.Config.Settle), so that the next owner
// appends after them.
func (w *Writer) settle() {
	w.changedMu.Lock()
	done := w.termDone
	w.changedMu.Unlock()
	if done != nil {
		<-done
	}
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
	Owner      bool   `json:"owner"`      // this engine owns a partition of the log (with one, the log) and appends
	Owned      int    `json:"owned"`      // the partitions this engine owns
	Partitions int    `json:"partitions"` // the partitions of the log
	Engines    int    `json:"engines"`    // the engines that can own partitions, as this one counts them
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

// writersMetrics returns the sum of the writers' counters: an engine's.
func writersMetrics(ws []*Writer) WriterMetrics {
	var sum WriterMetrics
	for _, w := range ws {
		m := w.Metrics()
		sum.Owner = sum.Owner || m.Owner
		sum.Owned += m.Owned
		sum.Partitions = m.Partitions
		sum.Takeovers += m.Takeovers
		sum.Appended += m.Appended
		sum.Unchanged += m.Unchanged
		sum.Conflicts += m.Conflicts
		sum.Duplicates += m.Duplicates
		sum.Limited += m.Limited
		sum.PassedOn += m.PassedOn
		sum.Realigned += m.Realigned
	}
	return sum
}

// Metrics returns a snapshot of the writer's counters.
func (w *Writer) Metrics() WriterMetrics {
	owned := 0
	if w.Owning() {
		owned = 1
	}
	return WriterMetrics{Owner: w.Owning(), Owned: owned, Partitions: w.cfg.Partitions, Takeovers: w.takeovers.Load(), Appended: w.appended.Load(), Unchanged: w.unchanged.Load(),
		Conflicts: w.conflicts.Load(), Duplicates: w.duplicates.Load(), Limited: w.limited.Load(), PassedOn: w.passedOn.Load(), Realigned: w.realigned.Load()}
}
