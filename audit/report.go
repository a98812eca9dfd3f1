package audit

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// Report is how a contact spent a window of time, by its true status, and
// what changed it then.
type Report struct {
	Contact string    `json:"contact"`
	Name    string    `json:"name,omitempty"` // as of the end of the window
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	// Statuses is the time spent in each status during the window, longest
	// first; Unknown covers the time before the contact's first event.
	Statuses []StatusTime `json:"statuses"`
	Changes  int          `json:"changes"` // changes of status inside the window (events that left it as it was not counted)
	// Causes is how many of the Changes each cause made (events.Event.Cause:
	// user, endpoint, expiry, engine, or any other the log holds), most first,
	// then by name. Empty when there were none.
	Causes []CauseChanges `json:"causes"`
	// Held is how many of the Changes the flap window held back: subscribers
	// were not shown them (events.Event.Held; docs/presence.md).
	Held int `json:"held"`
	// Endpoints is each endpoint signed in at the start of the window or
	// named by an event inside it, by ID. Empty when there were none.
	Endpoints []EndpointReport `json:"endpoints"`
	// Start and End are the true statuses at the start and the end.
	Start events.Status `json:"start"`
	End   events.Status `json:"end"`
	// LastOnline is the last time, up to the end of the window, the contact was
	// seen online (a status other than offline, invisible or unknown): Until
	// itself when it was online then. Zero when never.
	LastOnline time.Time `json:"last_online,omitzero"`
	// OnlineAtEnd says the contact was online at the end of the window.
	OnlineAtEnd bool `json:"online_at_end"`
}

// StatusTime is the time spent in one status.
type StatusTime struct {
	Status   events.Status `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	Share    float64       `json:"share"` // of the window, 0 to 1
}

// CauseChanges is how many changes of status one cause made in a report's
// window.
type CauseChanges struct {
	Cause   events.Cause `json:"cause"`
	Changes int          `json:"changes"`
}

// EndpointReport is what one endpoint of the contact did in a report's window.
// Its counts are of the window's events only; its kind and whether it was
// signed in at the end are from the whole history up to the end.
type EndpointReport struct {
	ID string `json:"id"`
	// Kind is as its last sign-in or report up to the end of the window
	// gave it; empty when the log holds neither (an endpoint only a plain
	// set named).
	Kind     events.EndpointKind `json:"kind,omitempty"`
	SignIns  int                 `json:"sign_ins"`
	SignOuts int                 `json:"sign_outs"`
	Expiries int                 `json:"expiries"` // its lease ended: the engine signed it out
	Changes  int                 `json:"changes"`  // changes of status its events made
	// SignedInAtEnd says it was signed in at the end of the window.
	SignedInAtEnd bool `json:"signed_in_at_end"`
}

// Report returns how contact spent the window [since, until], from the whole of
// its history up to until. Events whose clocks went backwards count from the
// time of the event before them. A window that starts after now (beyond
// ClockSkew) is refused with ErrBadQuery, as a time after now is by At.
func (l *Log) Report(ctx context.Context, contact string, since, until time.Time) (Report, error) {
	r := Report{Contact: contact, Since: since.UTC(), Until: until.UTC()}
	if err := events.ValidateContact(contact); err != nil {
		return r, err
	}
	// The log cannot say yet how a window after now is spent: the status
	// now would only be carried into it.
	if err := notFuture("since ", since); err != nil {
		return r, err
	}
	if !since.Before(until) {
		return r, badQuery("since %s is not before until %s", since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano))
	}
	spent := make(map[events.Status]time.Duration)
	cur, at := events.Unknown, time.Time{} // status since time at
	// account closes the current status at time t.
	account := func(t time.Time) {
		from, to := maxTime(at, since), t
		if to.After(until) {
			to = until
		}
		if to.After(from) {
			spent[cur] += to.Sub(from)
		}
		if cur.Visible().IsOnline() && !at.After(until) {
			r.LastOnline = minTime(t, until)
		}
	}
	var (
		causes = make(map[events.Cause]int)
		eps    endpointTally
		inside bool // an event at or after since was met
	)
	_, err := l.Replay(ctx, Query{Contacts: []string{contact}}, func(e Entry) error {
		if e.Contact == "" {
			return nil
		}
		t := maxTime(e.At, at) // never back in time
		if t.After(until) {
			return errStop
		}
		account(t)
		changed := e.Status != e.Previous // an endpoint's event may leave it as it was
		if !t.Before(since) {
			if !inside {
				eps.enter()
				inside = true
			}
			if changed {
				r.Changes++
				causes[e.Cause]++
				if e.Held {
					r.Held++
				}
			}
			eps.count(e.Event, changed)
		} else {
			r.Start = e.Status
		}
		eps.fold(e.Event)
		cur, at, r.Name = e.Status, t, e.Name
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return r, err
	}
	if !inside {
		eps.enter()
	}
	account(until)
	r.End = cur
	r.OnlineAtEnd = cur.Visible().IsOnline()
	window := until.Sub(since)
	for s, d := range spent {
		r.Statuses = append(r.Statuses, StatusTime{Status: s, Duration: d, Share: float64(d) / float64(window)})
	}
	slices.SortFunc(r.Statuses, func(a, b StatusTime) int {
		return cmp.Or(cmp.Compare(b.Duration, a.Duration), cmp.Compare(a.Status, b.Status))
	})
	r.Causes = make([]CauseChanges, 0, len(causes))
	for c, n := range causes {
		r.Causes = append(r.Causes, CauseChanges{Cause: c, Changes: n})
	}
	slices.SortFunc(r.Causes, func(a, b CauseChanges) int {
		return cmp.Or(cmp.Compare(b.Changes, a.Changes), cmp.Compare(a.Cause, b.Cause))
	})
	r.Endpoints = eps.report()
	return r, nil
}

// endpointTally follows a contact's endpoints through its history for a
// report: which are signed in, as the projection folds them, each one's kind
// as last known, and the counts of those in the window.
type endpointTally struct {
	signedIn projections.Endpoints
	kinds    map[string]events.EndpointKind
	window   map[string]*EndpointReport // the window's endpoints, by ID
}

// enter starts the window: the endpoints signed in then are the window's.
func (x *endpointTally) enter() {
	x.window = make(map[string]*EndpointReport)
	for _, ep := range x.signedIn.List {
		x.of(ep.ID)
	}
}

// of returns the window's report of endpoint id, added if new.
func (x *endpointTally) of(id string) *EndpointReport {
	r, ok := x.window[id]
	if !ok {
		r = &EndpointReport{ID: id}
		x.window[id] = r
	}
	return r
}

// count counts e, an event inside the window, against its endpoint;
// changed says it changed the status.
func (x *endpointTally) count(e events.Event, changed bool) {
	if e.Endpoint == "" {
		return
	}
	r := x.of(e.Endpoint)
	switch e.Op {
	case events.OpSignIn:
		r.SignIns++
	case events.OpSignOut:
		r.SignOuts++
	case events.OpExpire:
		r.Expiries++
	}
	if changed {
		r.Changes++
	}
}

// fold follows e, an event up to the end of the window, in the endpoints
// signed in and their kinds.
func (x *endpointTally) fold(e events.Event) {
	x.signedIn.Fold(e)
	if e.Op == events.OpSignIn || e.Op == events.OpReport {
		if x.kinds == nil {
			x.kinds = make(map[string]events.EndpointKind)
		}
		x.kinds[e.Endpoint] = e.EP.Kind
	}
}

// report returns the window's endpoints by ID, as of the end of the window.
func (x *endpointTally) report() []EndpointReport {
	out := make([]EndpointReport, 0, len(x.window))
	for id, r := range x.window {
		r.Kind = x.kinds[id]
		_, r.SignedInAtEnd = slices.BinarySearchFunc(x.signedIn.List, id, func(ep events.Endpoint, id string) int {
			return strings.Compare(ep.ID, id)
		})
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b EndpointReport) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
