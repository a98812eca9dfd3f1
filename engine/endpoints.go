package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// Endpoints on the owner of their contact's partition (issue 20). A sign-in
// or a sign-out appends an event that records it (events.OpSignIn,
// OpSignOut), with the contact's published status decided again from its
// endpoints (events.Aggregate). A heartbeat appends nothing: it moves the
// lease's end, which the owner keeps in memory. The owner ends the leases
// that run out (events.OpExpire, cause expiry), looking every expiryTick: so
// a lease ends within expiryTick of its deadline, once, by the one owner.
//
// A new owner (after a restart or a move) learns the endpoints from its
// projection, but not their last heartbeats, which are not in the log: it
// gives each one lease from its taking over (one lease of grace), unless
// the lease as logged runs longer.

// NotSignedInError says that an endpoint heartbeating or reporting is not
// signed in: its lease ended, or it signed out. It is a conflict (409): the
// endpoint signs in again.
type NotSignedInError struct {
	Contact, Endpoint string
}

func (e *NotSignedInError) Error() string {
	return fmt.Sprintf("endpoint %s of %s is not signed in (its lease ended, or it signed out): sign it in again",
		events.Quote(e.Endpoint), events.Quote(e.Contact))
}

// Unwrap returns client.ErrConflict.
func (e *NotSignedInError) Unwrap() error { return client.ErrConflict }

// expiryTick is how often the owner looks for leases that ended.
const expiryTick = 250 * time.Millisecond

// The owner's own ops: the end of a lease, and a look again at a contact's
// status as time passed (idle, away, a preferred status ending).
const (
	opExpire  = "expire"
	opRecheck = "recheck"
	opShow    = "show" // the end of a flap window (flap.go)
)

// Endpoint handles an endpoint's sign-in, heartbeat or sign-out. Errors are
// those of Set, and a heartbeat of an endpoint not signed in wraps
// client.ErrConflict.
func (w *Writer) Endpoint(ctx context.Context, req client.EndpointRequest) (client.EndpointResult, error) {
	if err := req.Validate(); err != nil {
		return client.EndpointResult{}, err
	}
	if err := w.mayDecide(req.Contact); err != nil {
		return client.EndpointResult{}, err
	}
	o := &op{ctx: ctx, ep: &req, req: client.SetRequest{Contact: req.Contact}, done: make(chan struct{})}
	if err := w.submit(ctx, o); err != nil {
		return client.EndpointResult{}, err
	}
	return client.EndpointResult{Contact: req.Contact, Endpoint: req.Endpoint, Status: o.res.Status, Previous: o.res.Previous,
		Seq: o.res.Seq, Changed: o.res.Changed, Expires: o.expires}, nil
}

// leases are the ends of the leases of the owner's endpoints, the times at
// which to look at a contact's status again, the ends of the flap windows
// that hold changes back, and a heap of them all by time (an entry with no
// endpoint is a look again or a window's end). A time moved leaves its old
// entry in the heap, skipped when it comes up.
type leases struct {
	ends     map[string]map[string]endpointLease // contact -> endpoint -> its lease
	rechecks map[string]time.Time                // contact -> when to look again
	shows    map[string]time.Time                // contact -> when its flap window ends
	queue    leaseQueue
	// statuses are the status and last sequence of each contact with
	// endpoints, for a heartbeat's answer: a heartbeat reads nothing else
	// (the projection keeps only so many states in memory).
	statuses map[string]statusSeq
}

// statusSeq is a contact's status and the log sequence of its last event.
type statusSeq struct {
	status events.Status
	seq    uint64
}

// known records the status and last sequence of a contact, which has
// endpoints, or forgets them if it has none.
func (l *leases) known(contact string, status events.Status, seq uint64) {
	if len(l.ends[contact]) == 0 {
		delete(l.statuses, contact)
		return
	}
	if l.statuses == nil {
		l.statuses = make(map[string]statusSeq)
	}
	l.statuses[contact] = statusSeq{status, seq}
}

// endpointLease is an endpoint's lease: when it ends, how long each
// heartbeat makes it, and the time of its one entry in the heap. A heartbeat
// moves end and pushes nothing: the entry, once due, is pushed again at end
// if end has moved past it. So the heap holds one entry an endpoint, however
// often it heartbeats.
type endpointLease struct {
	end, queued time.Time
	d           time.Duration
}

type leaseEnd struct {
	at                time.Time
	contact, endpoint string
	show              bool // the end of a flap window
}

type leaseQueue []leaseEnd

func (q leaseQueue) Len() int           { return len(q) }
func (q leaseQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q leaseQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *leaseQueue) Push(x any)        { *q = append(*q, x.(leaseEnd)) }
func (q *leaseQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// set records that the lease of contact's endpoint, of d, ends at end.
func (l *leases) set(contact, endpoint string, end time.Time, d time.Duration) {
	if l.ends == nil {
		l.ends = make(map[string]map[string]endpointLease)
	}
	m := l.ends[contact]
	if m == nil {
		m = make(map[string]endpointLease)
		l.ends[contact] = m
	}
	ls, had := m[endpoint]
	ls.end, ls.d = end, d
	if !had || end.Before(ls.queued) {
		ls.queued = end
		heap.Push(&l.queue, leaseEnd{at: end, contact: contact, endpoint: endpoint})
	}
	m[endpoint] = ls
}

// recheck has the owner look at contact's status again at at.
func (l *leases) recheck(contact string, at time.Time) { l.lookAt(&l.rechecks, contact, at, false) }

// show has the owner show contact's changes held back at at, the end of its
// flap window.
func (l *leases) show(contact string, at time.Time) { l.lookAt(&l.shows, contact, at, true) }

// lookAt sets contact's time in times (rechecks or shows) to at, and queues
// it; the time it replaces is skipped when it comes up.
func (l *leases) lookAt(times *map[string]time.Time, contact string, at time.Time, show bool) {
	if *times == nil {
		*times = make(map[string]time.Time)
	}
	if was, ok := (*times)[contact]; ok && was.Equal(at) {
		return
	}
	(*times)[contact] = at
	heap.Push(&l.queue, leaseEnd{at: at, contact: contact, show: show})
}

// drop forgets the lease of contact's endpoint.
func (l *leases) drop(contact, endpoint string) {
	if m := l.ends[contact]; m != nil {
		delete(m, endpoint)
		if len(m) == 0 {
			delete(l.ends, contact)
		}
	}
}

// get returns the lease of contact's endpoint, if it is signed in.
func (l *leases) get(contact, endpoint string) (endpointLease, bool) {
	ls, ok := l.ends[contact][endpoint]
	return ls, ok
}

// due returns the next lease that has ended by now, if any, and takes it off.
func (l *leases) due(now time.Time) (leaseEnd, bool) {
	for l.queue.Len() > 0 && !l.queue[0].at.After(now) {
		e := heap.Pop(&l.queue).(leaseEnd)
		if e.endpoint == "" {
			times := l.rechecks
			if e.show {
				times = l.shows
			}
			if at, ok := times[e.contact]; ok && at.Equal(e.at) {
				delete(times, e.contact)
				return e, true
			}
			continue
		}
		ls, ok := l.get(e.contact, e.endpoint)
		switch {
		case !ok || !ls.queued.Equal(e.at):
			// Dropped, or an entry another replaced.
		case ls.end.After(now):
			// Moved on by heartbeats: due again at its end.
			ls.queued = ls.end
			l.ends[e.contact][e.endpoint] = ls
			heap.Push(&l.queue, leaseEnd{at: ls.end, contact: e.contact, endpoint: e.endpoint})
		default:
			return e, true
		}
	}
	return leaseEnd{}, false
}

// loadLeases learns, as the owner takes its partition over (or after it read
// the log again, or was cut off), the endpoints its projection holds of the
// partition's contacts, and those of its appends the projection has not
// applied yet (after a cut-off): each lease ends one lease from now (the
// grace a heartbeat not in the log, or not answered meanwhile, may have
// earned), or as logged if that is later.
func (t *term) loadLeases() {
	w := t.w
	now := w.cfg.Now()
	t.leases = leases{}
	var contacts []string // those with endpoints: any may have changes held back
	load := func(contact string, x projections.Endpoints) {
		for _, ep := range x.List {
			t.leases.set(contact, ep.ID, later(ep.Expires, now.Add(ep.Lease)), ep.Lease)
		}
		if len(x.List) > 0 {
			t.leases.recheck(contact, now) // time may have changed it meanwhile (idle, away)
		}
		contacts = append(contacts, contact)
	}
	err := w.cfg.Projection.EachEndpoints(func(contact string, x projections.Endpoints) bool {
		if _, newer := t.overlay[contact]; !newer && events.Partition(contact, w.cfg.Partitions) == w.cfg.Partition {
			load(contact, x)
		}
		return true
	})
	for contact, l := range t.overlay {
		x, err := t.endpointsOf(contact, l)
		if err != nil {
			w.logger.Error("writer: cannot read the endpoints of a contact", "contact", contact, "err", err)
			continue
		}
		load(contact, x)
	}
	if err != nil {
		// Their leases then end only once signed in again or out, or
		// once the owner reads the log again.
		w.logger.Error("writer: cannot read the endpoints of the partition", "err", err)
	}
	for _, contact := range contacts {
		t.learn(contact)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// expire ends the leases that ran out by now, each with an event of its own.
// Cut off from the server, it ends none: the endpoints' heartbeats cannot
// reach it then. Back, it gives every lease the grace a new owner gives.
func (t *term) expire() {
	t.w.expiryChecks.Add(1)
	switch {
	case !t.w.cfg.JetStream.Conn().IsConnected():
		t.stalled = true
		return
	case t.broken:
		return // once the owner has read the log again
	case t.stalled:
		t.stalled = false
		t.loadLeases()
	}
	now := t.w.cfg.Now()
	for len(t.inflight) < t.w.cfg.InFlight {
		e, ok := t.leases.due(now)
		if !ok {
			return
		}
		kind := opExpire
		switch {
		case e.show:
			kind = opShow
		case e.endpoint == "":
			kind = opRecheck
		}
		o := &op{ctx: context.Background(), ep: &client.EndpointRequest{Contact: e.contact, Op: kind, Endpoint: e.endpoint},
			req: client.SetRequest{Contact: e.contact}, done: make(chan struct{})}
		t.decideEndpoint(o)
	}
}

// endpointsOf returns a copy of what the owner knows of a contact's
// endpoints: from the overlay if it appended a change of them since the
// projection applied the log, else from the projection.
func (t *term) endpointsOf(contact string, cur last) (projections.Endpoints, error) {
	if cur.eps != nil {
		x := *cur.eps
		x.List = append([]events.Endpoint(nil), x.List...)
		return x, nil
	}
	x, err := t.w.cfg.Projection.Endpoints(contact)
	if err != nil {
		return projections.Endpoints{}, unavailable(fmt.Errorf("read the endpoints of %s: %w", events.Quote(contact), err))
	}
	return x, nil
}

// farFuture stands for the end of every lease in the owner's table as it
// aggregates: ending leases is the lease heap's (expire), so Aggregate
// decides from the endpoints as they are, and its Next is a time-only change
// (idle, away, a preferred status ending).
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// aggregate decides a contact's status from its endpoints at now, and has the
// owner look again when time alone may change it.
func (t *term) aggregate(contact string, eps projections.Endpoints, now time.Time) events.Aggregated {
	list := make([]events.Endpoint, len(eps.List))
	for i, ep := range eps.List {
		ep.Expires = farFuture
		list[i] = ep
	}
	agg := events.Aggregate(list, eps.Preferred, eps.Settings, now)
	if !agg.Next.IsZero() && agg.Next.Before(farFuture) {
		t.leases.recheck(contact, agg.Next)
	}
	return agg
}

// decideEndpoint settles an endpoint's request (or the owner's own: the end
// of a lease, a look again as time passed) on what the owner knows, and
// appends the event it calls for.
func (t *term) decideEndpoint(o *op) {
	w, req := t.w, o.ep
	now := w.cfg.Now().UTC()
	notSignedIn := func() error { return &NotSignedInError{Contact: req.Contact, Endpoint: req.Endpoint} }
	if req.Op == client.OpHeartbeat {
		// The hot path: the owner's leases know every endpoint signed in,
		// and its contact's status, and a heartbeat reads nothing more.
		ls, ok := t.leases.get(req.Contact, req.Endpoint)
		if !ok {
			t.answer(o, client.SetResult{}, notSignedIn())
			return
		}
		st, ok := t.leases.statuses[req.Contact]
		if !ok {
			cur, err := t.current(req.Contact)
			if err != nil {
				o.finish(client.SetResult{}, err)
				return
			}
			st = statusSeq{cur.status, cur.seq}
		}
		o.expires = now.Add(ls.d)
		t.leases.set(req.Contact, req.Endpoint, o.expires, ls.d)
		t.answer(o, client.SetResult{Contact: req.Contact, Status: st.status, Previous: st.status, Seq: st.seq}, nil)
		return
	}
	cur, err := t.current(req.Contact)
	if err != nil {
		o.finish(client.SetResult{}, err)
		return
	}
	if req.Op == opShow {
		t.show(o, cur)
		return
	}
	unchanged := client.SetResult{Contact: req.Contact, Status: cur.status, Previous: cur.status, Seq: cur.seq}
	if req.Op != opExpire && req.Op != opRecheck && o.tries == 0 {
		// A contact's own requests count against its bound as its sets do.
		if err := t.limit(req.Contact); err != nil {
			o.finish(client.SetResult{}, err)
			return
		}
	}
	eps, err := t.endpointsOf(req.Contact, cur)
	if err != nil {
		o.finish(client.SetResult{}, err)
		return
	}
	var this *events.Endpoint // the endpoint, if signed in
	for i := range eps.List {
		if eps.List[i].ID == req.Endpoint {
			this = &eps.List[i]
		}
	}
	e := events.Event{Contact: req.Contact, Previous: cur.status, At: now, Cause: events.CauseEndpoint, Endpoint: req.Endpoint}
	switch req.Op {
	case client.OpSignIn:
		e.Op = events.OpSignIn
		e.EP = events.EndpointState{Kind: req.Kind, Status: req.Status, Cause: events.CauseUser, Lease: req.Lease}
		o.expires = now.Add(req.Lease)
	case client.OpReport:
		if this == nil {
			t.answer(o, client.SetResult{}, notSignedIn())
			return
		}
		if err := detectable(req, this.Kind); err != nil {
			t.answer(o, client.SetResult{}, err)
			return
		}
		e.Op = events.OpReport
		e.EP = events.EndpointState{Kind: this.Kind, Status: req.Status, Cause: req.Cause, Lease: this.Lease}
		if req.InactiveFor > 0 {
			e.EP.InactiveSince = now.Add(-req.InactiveFor)
		}
		if e.EP.Status == events.Unknown {
			e.EP.Cause = ""
		}
	case client.OpSignOut, opExpire:
		if this == nil {
			t.leases.drop(req.Contact, req.Endpoint)
			t.answer(o, unchanged, nil) // signed out already: nothing to do
			return
		}
		e.Op = events.OpSignOut
		if req.Op == opExpire {
			e.Op, e.Cause = events.OpExpire, events.CauseExpiry
		}
	case client.OpPrefer:
		if until := req.Preferred.Until; !until.IsZero() && !until.After(now) {
			t.answer(o, client.SetResult{}, badRequest(fmt.Errorf("until %s: it has passed (now %s); accepted: a time to come, or none",
				until.Format(time.RFC3339), now.Format(time.RFC3339))))
			return
		}
		e.Op, e.Endpoint, e.Cause, e.Preferred = events.OpPrefer, "", events.CauseUser, req.Preferred
	case client.OpSettings:
		e.Op, e.Endpoint, e.Cause, e.Settings = events.OpSettings, "", events.CauseUser, req.Settings
	case opRecheck:
		if len(eps.List) == 0 {
			t.answer(o, unchanged, nil)
			return
		}
		e.Endpoint, e.Cause = "", events.CauseEngine
	default:
		o.finish(client.SetResult{}, errors.New("engine: an endpoint's request with no operation"))
		return
	}
	eps.Fold(e)
	switch {
	case len(eps.List) > 0 || e.Op == events.OpSignOut || e.Op == events.OpExpire:
		agg := t.aggregate(req.Contact, eps, now)
		e.Status, e.LastActive = agg.Status, agg.LastActive
	case cur.status == events.Unknown:
		e.Status = events.Offline // a preference or settings before any endpoint
	default:
		e.Status = cur.status // no endpoint: the status set directly stands
	}
	if e.Op == events.OpSet && e.Status == cur.status {
		t.answer(o, unchanged, nil) // time changed nothing
		return
	}
	o.req.Status = e.Status
	switch e.Op {
	case events.OpSignIn:
		t.leases.set(req.Contact, req.Endpoint, o.expires, req.Lease)
	case events.OpSignOut, events.OpExpire:
		t.leases.drop(req.Contact, req.Endpoint)
	}
	t.append(o, e, cur, &eps)
}

// detectable checks a report's status against what its endpoint may say: a
// status the endpoint detected (cause endpoint) is on-the-phone from a phone,
// or in-a-meeting from a calendar.
func detectable(req *client.EndpointRequest, kind events.EndpointKind) error {
	if req.Cause != events.CauseEndpoint {
		return nil
	}
	switch {
	case req.Status == events.OnThePhone && kind == events.KindPhone, req.Status == events.InAMeeting && kind == events.KindCalendar:
		return nil
	}
	return badRequest(fmt.Errorf("status %s with cause endpoint (detected) from endpoint %s, a %s: accepted: on-the-phone from a phone, "+
		"in-a-meeting from a calendar; a status the user chose has cause user", req.Status, events.Quote(req.Endpoint), kind))
}
