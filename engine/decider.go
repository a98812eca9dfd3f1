package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/retry"
	"github.com/presence-engine/presence/projections"
)

// The decider: one stretch of ownership (a term), in which one goroutine
// decides every set in the order they come and keeps the appends in flight.

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
	leases   leases // the ends of the leases of the partition's endpoints
	stalled  bool   // cut off from the server at the last look for ended leases
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
	t.loadLeases()
	w.setOwning(true)
	tick := time.NewTicker(expiryTick)
	defer tick.Stop()
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
			// An append refused or lost may have been an endpoint's: the
			// leases are learnt again from the log, as a new owner does.
			t.loadLeases()
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
		case <-tick.C:
			t.expire()
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
	if applied := t.w.applied(); applied > t.last {
		// The log went back (restored from a backup, made anew): the
		// projection is folded again from it before the owner trusts it.
		return fmt.Errorf("the projection has applied the log to seq %d, past its end at seq %d: waiting for it to be folded again", applied, t.last)
	}
	return t.w.cfg.Projection.WaitAppliedIn(ctx, t.w.cfg.Partition, t.last)
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
	applied := t.w.applied()
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
	return last{status: st.Status, previous: st.Previous, name: st.Name, visibleName: st.Visible.Name, seq: st.Seq, at: st.At,
		cause: st.Cause, shown: st.Visible.Status, shownAt: st.Visible.At}, nil
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
	if o.ep != nil {
		t.decideEndpoint(o)
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
	unchanged := client.SetResult{Contact: req.Contact, Status: cur.status, Previous: cur.status, Seq: cur.seq}
	e := events.Event{Contact: req.Contact, Name: req.Name, Status: req.Status, Previous: cur.status,
		At: w.cfg.Now().UTC(), Cause: req.Cause, RequestID: req.RequestID}
	if len(t.leases.ends[req.Contact]) > 0 {
		// A contact with endpoints has its status decided from them: a
		// direct set is its preferred status, until cleared, so that
		// nothing the owner decides as time passes undoes it. It changes
		// nothing when that is the preference already, whatever the status
		// published: a set of invisible records a preference as a set of
		// offline does, and what the endpoints do later tells them apart
		// to no one.
		eps, err := t.endpointsOf(req.Contact, cur)
		if err != nil {
			o.finish(client.SetResult{}, err)
			return
		}
		if eps.Preferred == (events.Preferred{Status: req.Status}) {
			w.unchanged.Add(1)
			t.answer(o, unchanged, nil)
			return
		}
		e.Op, e.Preferred = events.OpPrefer, events.Preferred{Status: req.Status}
		eps.Fold(e)
		agg := t.aggregate(req.Contact, eps, e.At)
		e.Status, e.LastActive = agg.Status, agg.LastActive
		t.append(o, e, cur, &eps)
		return
	}
	if cur.status == req.Status {
		w.unchanged.Add(1)
		t.answer(o, unchanged, nil)
		return
	}
	t.append(o, e, cur, cur.eps)
}

// append appends e, the change o decided on cur (what the owner knew of the
// contact), expecting the log's last sequence, and queues o for its
// acknowledgement. An e without a name takes the contact's: the name of its
// last visible change if e is one (DESIGN.md §4). eps, unless nil, are the
// contact's endpoints after e, kept in the overlay until the projection has
// them.
func (t *term) append(o *op, e events.Event, cur last, eps *projections.Endpoints) {
	w := t.w
	t.coalesce(o, &e, cur)
	visible := e.Visible()
	visibleName, shown, shownAt := cur.visibleName, cur.shown, cur.shownAt
	if e.Name == "" {
		e.Name = cur.name
		if visible {
			e.Name = cur.visibleName
		}
	}
	if visible {
		visibleName, shown, shownAt = e.Name, e.Status.Visible(), e.At
	}
	o.data, o.previous = e.Encode(), cur.status
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(w.streamName()), jetstream.WithExpectLastSequence(t.last)}
	if e.RequestID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID(e.Contact, e.RequestID)))
	}
	fut, err := w.js.PublishMsgAsync(&nats.Msg{Subject: w.subject(e.Contact), Data: o.data}, opts...)
	if err != nil {
		o.finish(client.SetResult{}, unavailable(fmt.Errorf("append to the log: %w", err)))
		t.broken = true // what the owner knows may be ahead of the log: read it again
		return
	}
	o.fut, o.expect = fut, t.last
	t.last++
	t.leases.known(e.Contact, e.Status, t.last)
	t.overlay[e.Contact] = last{status: e.Status, previous: cur.status, name: e.Name, visibleName: visibleName,
		seq: t.last, requestID: e.RequestID, at: e.At, eps: eps, cause: e.Cause, shown: shown, shownAt: shownAt}
	t.appended = append(t.appended, appended{contact: e.Contact, seq: t.last})
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
	return client.SetResult{Contact: o.req.Contact, Status: o.req.Status, Previous: o.previous, Seq: seq, Changed: true}
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
