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

// expiryTick is how often the owner looks for leases that ended.
const expiryTick = 250 * time.Millisecond

// opExpire is the op the owner makes for a lease that ended.
const opExpire = "expire"

// Endpoint handles an endpoint's sign-in, heartbeat or sign-out. Errors are
// those of Set, and a heartbeat of an endpoint not signed in wraps
// client.ErrConflict.
func (w *Writer) Endpoint(ctx context.Context, req client.EndpointRequest) (client.EndpointResult, error) {
	if err := req.Validate(); err != nil {
		return client.EndpointResult{}, err
	}
	if nc := w.cfg.JetStream.Conn(); !nc.IsConnected() {
		return client.EndpointResult{}, unavailable(fmt.Errorf("not connected to NATS (%s); retry", nc.Status()))
	}
	if p := events.Partition(req.Contact, w.cfg.Partitions); p != w.cfg.Partition {
		return client.EndpointResult{}, fmt.Errorf("engine: the request of %s (partition %d) reached the writer of partition %d", events.Quote(req.Contact), p, w.cfg.Partition)
	}
	if !w.Owning() {
		return client.EndpointResult{}, unavailable(errNotOwner)
	}
	o := &op{ctx: ctx, ep: &req, req: client.SetRequest{Contact: req.Contact}, done: make(chan struct{})}
	select {
	case w.ops <- o:
	case <-ctx.Done():
		return client.EndpointResult{}, unavailable(fmt.Errorf("the owner has %d requests in hand: %w; retry", cap(w.ops), ctx.Err()))
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		return client.EndpointResult{}, unavailable(fmt.Errorf("no acknowledgement from the log in time (%w): the request may yet be applied; retry", ctx.Err()))
	}
	if o.err != nil {
		return client.EndpointResult{}, o.err
	}
	return client.EndpointResult{Contact: req.Contact, Endpoint: req.Endpoint, Status: o.res.Status, Previous: o.res.Previous,
		Seq: o.res.Seq, Changed: o.res.Changed, Expires: o.expires}, nil
}

// leases are the ends of the leases of the owner's endpoints, and a heap of
// them by time. A deadline moved later leaves its old entry in the heap,
// skipped when it comes up.
type leases struct {
	ends  map[string]map[string]time.Time // contact -> endpoint -> end
	queue leaseQueue
}

type leaseEnd struct {
	at                time.Time
	contact, endpoint string
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

// set records that the lease of contact's endpoint ends at end.
func (l *leases) set(contact, endpoint string, end time.Time) {
	if l.ends == nil {
		l.ends = make(map[string]map[string]time.Time)
	}
	m := l.ends[contact]
	if m == nil {
		m = make(map[string]time.Time)
		l.ends[contact] = m
	}
	m[endpoint] = end
	heap.Push(&l.queue, leaseEnd{at: end, contact: contact, endpoint: endpoint})
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

// end returns when the lease of contact's endpoint ends, if the owner knows.
func (l *leases) end(contact, endpoint string) (time.Time, bool) {
	end, ok := l.ends[contact][endpoint]
	return end, ok
}

// due returns the next lease that has ended by now, if any, and takes it off.
func (l *leases) due(now time.Time) (leaseEnd, bool) {
	for l.queue.Len() > 0 && !l.queue[0].at.After(now) {
		e := heap.Pop(&l.queue).(leaseEnd)
		if end, ok := l.end(e.contact, e.endpoint); ok && end.Equal(e.at) {
			return e, true
		}
	}
	return leaseEnd{}, false
}

// loadLeases learns, as the owner takes its partition over, the endpoints
// its projection holds of the partition's contacts: each lease ends one lease
// from now (the grace a heartbeat not in the log may have earned), or as
// logged if that is later.
func (t *term) loadLeases() error {
	w := t.w
	now := w.cfg.Now()
	t.leases = leases{}
	return w.cfg.Projection.EachEndpoints(func(contact string, x projections.Endpoints) bool {
		if events.Partition(contact, w.cfg.Partitions) != w.cfg.Partition {
			return true
		}
		for _, ep := range x.List {
			t.leases.set(contact, ep.ID, later(ep.Expires, now.Add(ep.Lease)))
		}
		return true
	})
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// expire ends the leases that ran out by now, each with an event of its own.
func (t *term) expire() {
	t.w.expiryChecks.Add(1)
	if t.broken {
		return // once the owner has read the log again
	}
	now := t.w.cfg.Now()
	for len(t.inflight) < t.w.cfg.InFlight {
		e, ok := t.leases.due(now)
		if !ok {
			return
		}
		o := &op{ctx: context.Background(), ep: &client.EndpointRequest{Contact: e.contact, Op: opExpire, Endpoint: e.endpoint},
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

// decideEndpoint settles an endpoint's request (or the end of a lease) on
// what the owner knows, and appends the event it calls for.
func (t *term) decideEndpoint(o *op) {
	w, req := t.w, o.ep
	cur, err := t.current(req.Contact)
	if err != nil {
		o.finish(client.SetResult{}, err)
		return
	}
	eps, err := t.endpointsOf(req.Contact, cur)
	if err != nil {
		o.finish(client.SetResult{}, err)
		return
	}
	now := w.cfg.Now().UTC()
	unchanged := client.SetResult{Contact: req.Contact, Status: cur.status, Previous: cur.status, Seq: cur.seq}
	signedIn := false
	for _, ep := range eps.List {
		signedIn = signedIn || ep.ID == req.Endpoint
	}
	e := events.Event{Contact: req.Contact, Previous: cur.status, At: now, Cause: events.CauseEndpoint, Endpoint: req.Endpoint}
	switch req.Op {
	case client.OpHeartbeat:
		lease := time.Duration(0)
		for _, ep := range eps.List {
			if ep.ID == req.Endpoint {
				lease = ep.Lease
			}
		}
		if !signedIn {
			t.answer(o, client.SetResult{}, fmt.Errorf("%w: endpoint %s of %s is not signed in (its lease ended, or it signed out): sign it in again",
				client.ErrConflict, events.Quote(req.Endpoint), events.Quote(req.Contact)))
			return
		}
		o.expires = now.Add(lease)
		t.leases.set(req.Contact, req.Endpoint, o.expires)
		t.answer(o, unchanged, nil)
		return
	case client.OpSignIn:
		e.Op = events.OpSignIn
		e.EP = events.EndpointState{Kind: req.Kind, Status: req.Status, Cause: events.CauseUser, Lease: req.Lease}
		o.expires = now.Add(req.Lease)
	case client.OpSignOut, opExpire:
		if !signedIn {
			t.answer(o, unchanged, nil) // signed out already: nothing to do
			return
		}
		e.Op = events.OpSignOut
		if req.Op == opExpire {
			e.Op, e.Cause = events.OpExpire, events.CauseExpiry
		}
	default:
		o.finish(client.SetResult{}, errors.New("engine: an endpoint's request with no operation"))
		return
	}
	eps.Fold(e)
	list := make([]events.Endpoint, len(eps.List))
	for i, ep := range eps.List {
		if end, ok := t.leases.end(req.Contact, ep.ID); ok && ep.ID != req.Endpoint {
			ep.Expires = end // a heartbeat since the log recorded it
		}
		list[i] = ep
	}
	e.Status = events.Aggregate(list, eps.Preferred, eps.Settings, now).Status
	o.req.Status = e.Status
	switch e.Op {
	case events.OpSignIn:
		t.leases.set(req.Contact, req.Endpoint, o.expires)
	default:
		t.leases.drop(req.Contact, req.Endpoint)
	}
	t.append(o, e, cur, &eps)
}
