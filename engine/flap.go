package engine

import (
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// The flap window (docs/presence.md). An endpoint reconnecting
// in a loop would show its contact's subscribers every turn of the loop. So
// the owner holds back a visible change that an endpoint (sign-in, report,
// sign-out, expiry) or its own look as time passed (idle, away) makes within
// the window after the last change subscribers were shown: the event is
// logged as it is, marked held (events.Event.Held), and has no feed entry.
// At the window's end the owner shows what the held changes left, with an
// event of its own (events.OpShow) if nothing shown came meanwhile, or not at
// all if they came back to what subscribers were shown. So each contact shows
// at most one change per window, and what subscribers were shown is in the
// log: the feed, the projection's visible status and a replay derive it from
// the events alone. What a user chose (a set, a preferred status, settings)
// is never held back, and shows whatever was.

// DefaultFlapWindow is the flap window unless configured: a reconnect loop
// shows at most one change every two seconds, and a change made alone is
// shown at once.
const DefaultFlapWindow = 2 * time.Second

// coalesce decides what subscribers are shown of e, the change o makes to a
// contact the owner knew as cur: a visible change an endpoint or the owner
// made within the flap window is held back, and the owner looks again at the
// window's end; a change after held ones names what subscribers were last
// shown.
func (t *term) coalesce(o *op, e *events.Event, cur last) {
	if cur.shown != cur.status.Visible() {
		e.Shown = cur.shown
	}
	if !e.Visible() {
		return
	}
	if e.Op != events.OpShow && !events.VisibleChange(cur.status, e.Status) {
		// Its own change is hidden (offline to invisible and back) or
		// none: it shows nothing, not even what was held before it, which
		// waits for its window's end (the show). Otherwise a set of
		// invisible would show it at once where a set of offline, which
		// appends nothing, would not.
		e.Held, e.Shown = true, events.Unknown
		return
	}
	window := t.w.cfg.FlapWindow
	if window <= 0 || !machineMade(o) {
		return
	}
	if end := cur.shownAt.Add(window); e.At.Before(end) {
		e.Held, e.Shown = true, events.Unknown
		t.leases.show(e.Contact, end)
	}
}

// machineMade reports whether o is an endpoint's sign-in, report or sign-out,
// or the owner's own end of a lease or look as time passed: the changes the
// flap window holds back.
func machineMade(o *op) bool {
	if o.ep == nil {
		return false
	}
	switch o.ep.Op {
	case client.OpSignIn, client.OpReport, client.OpSignOut, opExpire, opRecheck:
		return true
	}
	return false
}

// show ends a contact's flap window: if changes held back in it left the
// contact other than subscribers were last shown, it appends the event that
// shows them, with the cause of the last of them.
func (t *term) show(o *op, cur last) {
	unchanged := client.SetResult{Contact: o.ep.Contact, Status: cur.status, Previous: cur.status, Seq: cur.seq}
	if cur.shown == cur.status.Visible() || cur.shown == events.Unknown {
		// Nothing held, or back to what was shown; or a contact never
		// shown at all (a log that began hidden), for which a show could
		// not name what was shown before.
		t.answer(o, unchanged, nil)
		return
	}
	now := t.w.cfg.Now().UTC()
	if end := cur.shownAt.Add(t.w.cfg.FlapWindow); now.Before(end) {
		t.leases.show(o.ep.Contact, end) // a change was shown since: its window
		t.answer(o, unchanged, nil)
		return
	}
	e := events.Event{Contact: o.ep.Contact, Op: events.OpShow, Status: cur.status, Previous: cur.status,
		Shown: cur.shown, At: now, Cause: cur.cause}
	eps, err := t.endpointsOf(e.Contact, cur)
	if err != nil {
		o.finish(client.SetResult{}, err)
		return
	}
	if len(eps.List) > 0 {
		e.LastActive = t.aggregate(e.Contact, eps, now).LastActive
	}
	o.req.Status = cur.status
	t.append(o, e, cur, cur.eps)
}

// learn has the owner, as it learns its partition, know a contact's status
// (for heartbeats), and show the changes held back of it when their window
// ends: it may be over already.
func (t *term) learn(contact string) {
	cur, err := t.current(contact) // what it appended since the projection applied, first
	if err != nil {
		t.w.logger.Error("writer: cannot read the state of a contact with endpoints", "contact", contact, "err", err)
		return
	}
	t.leases.known(contact, cur.status, cur.seq)
	if cur.shown != cur.status.Visible() {
		t.leases.show(contact, cur.shownAt.Add(t.w.cfg.FlapWindow))
	}
}
