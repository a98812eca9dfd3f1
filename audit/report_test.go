package audit_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

func TestReport(t *testing.T) {
	s := natstest.Start(t)
	e := enginetest.Start(t, t.TempDir(), engine.Options{NATSURL: s.ClientURL()})
	_, js := natstest.JetStream(t, s)
	log := audit.NewLog(js, "")
	const carol = "carol"
	statuses := []events.Status{events.Online, events.Away, events.Invisible, events.Offline, events.Busy, events.Online, events.Offline}
	h := history(t, e, log, carol, statuses)
	at := func(i int) time.Time { return h[i].At }

	// The window starts during the first status and ends during the sixth.
	since := at(0).Add(at(1).Sub(at(0)) / 3)
	until := at(5).Add(at(6).Sub(at(5)) / 2)
	r, err := log.Report(natstest.Context(t), carol, since, until)
	if err != nil {
		t.Fatal(err)
	}
	want := map[events.Status]time.Duration{
		events.Online:    at(1).Sub(since) + until.Sub(at(5)),
		events.Away:      at(2).Sub(at(1)),
		events.Invisible: at(3).Sub(at(2)),
		events.Offline:   at(4).Sub(at(3)),
		events.Busy:      at(5).Sub(at(4)),
	}
	got := map[events.Status]time.Duration{}
	var total time.Duration
	for _, st := range r.Statuses {
		got[st.Status] = st.Duration
		total += st.Duration
	}
	if !maps.Equal(got, want) {
		t.Errorf("time per status = %v, want %v", got, want)
	}
	if total != until.Sub(since) {
		t.Errorf("times add up to %s, the window is %s", total, until.Sub(since))
	}
	if r.Changes != 5 || r.Start != events.Online || r.End != events.Online || !r.OnlineAtEnd || !r.LastOnline.Equal(until) {
		t.Errorf("report: %d changes, %s .. %s, online at end %v, last online %s; want 5, online .. online, true, %s",
			r.Changes, r.Start, r.End, r.OnlineAtEnd, r.LastOnline, until)
	}

	// A window after the contact went offline: last seen online when it left.
	later := time.Now().Add(time.Hour)
	r, err = log.Report(natstest.Context(t), carol, at(6).Add(time.Millisecond), later)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Statuses) != 1 || r.Statuses[0].Status != events.Offline || r.Changes != 0 || r.OnlineAtEnd || !r.LastOnline.Equal(at(6)) {
		t.Errorf("report after going offline: %+v; want all offline, no change, last online %s", r, at(6))
	}
	// Before the first event the contact was unknown and never online.
	r, err = log.Report(natstest.Context(t), carol, at(0).Add(-time.Hour), at(0).Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Statuses) != 1 || r.Statuses[0].Status != events.Unknown || !r.LastOnline.IsZero() {
		t.Errorf("report before the first event: %+v", r)
	}
	_, err = log.Report(natstest.Context(t), carol, until, since)
	checkBadQuery(t, "report with since after until", err)
	// A window that starts after now: the log cannot say yet how it is spent.
	future := time.Now().Add(time.Hour).UTC()
	_, err = log.Report(natstest.Context(t), carol, future, future.Add(time.Hour))
	checkBadQuery(t, "report of a window in the future", err)
	if want := "since " + future.Format(time.RFC3339) + " is in the future"; err == nil || !strings.HasPrefix(err.Error(), want) ||
		!strings.Contains(err.Error(), "want a time up to now") {
		t.Errorf("report of a window in the future: error %v, want it to begin %q and say what is accepted", err, want)
	}
}

// TestReportCountsChangesOfStatus: an endpoint's event that leaves the
// contact's status as it was (a second endpoint signing in, then out) is not a
// change in the report. The events are the engine's own: the report names
// their endpoints and causes, and a change the flap window held back.
func TestReportCountsChangesOfStatus(t *testing.T) {
	s := natstest.Start(t)
	// A window of an hour: the last sign-out is held back however slow the
	// machine.
	e := enginetest.Start(t, t.TempDir(), engine.Options{NATSURL: s.ClientURL(), FlapWindow: time.Hour})
	_, js := natstest.JetStream(t, s)
	c, ctx := e.Client(t), natstest.Context(t)
	log := audit.NewLog(js, "")
	since := time.Now().Add(-time.Minute)
	for _, ep := range []string{"desk", "phone"} {
		if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: "dan", Endpoint: ep, Kind: events.KindWeb}); err != nil {
			t.Fatal(err)
		}
	}
	last, err := c.SignOut(ctx, "dan", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Projection().WaitApplied(ctx, last.Seq); err != nil {
		t.Fatal(err)
	}
	r, err := log.Report(ctx, "dan", since, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Changes != 1 || r.End != events.Online {
		t.Errorf("report: %d changes, ending %s; want 1 (unknown -> online), ending online: the phone's events changed nothing", r.Changes, r.End)
	}
	checkCauses(t, "report", r, []audit.CauseChanges{{Cause: events.CauseEndpoint, Changes: 1}}, 0)
	checkEndpoints(t, "report", r, []audit.EndpointReport{
		{ID: "desk", Kind: events.KindWeb, SignIns: 1, Changes: 1, SignedInAtEnd: true},
		{ID: "phone", Kind: events.KindWeb, SignIns: 1, SignOuts: 1},
	})

	// The last endpoint signing out leaves dan offline, within the flap
	// window of the sign-in that was shown: a change held back.
	if _, err := c.SignOut(ctx, "dan", "desk"); err != nil {
		t.Fatal(err)
	}
	r, err = log.Report(ctx, "dan", since, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Changes != 2 || r.End != events.Offline {
		t.Errorf("report after the desk signed out: %d changes, ending %s; want 2, ending offline", r.Changes, r.End)
	}
	checkCauses(t, "report after the desk signed out", r, []audit.CauseChanges{{Cause: events.CauseEndpoint, Changes: 2}}, 1)
	checkEndpoints(t, "report after the desk signed out", r, []audit.EndpointReport{
		{ID: "desk", Kind: events.KindWeb, SignIns: 1, SignOuts: 1, Changes: 2},
		{ID: "phone", Kind: events.KindWeb, SignIns: 1, SignOuts: 1},
	})
}

func checkCauses(t *testing.T, what string, r audit.Report, want []audit.CauseChanges, held int) {
	t.Helper()
	if !slices.Equal(r.Causes, want) {
		t.Errorf("%s: changes by cause %+v, want %+v", what, r.Causes, want)
	}
	if r.Held != held {
		t.Errorf("%s: %d changes held back, want %d", what, r.Held, held)
	}
}

func checkEndpoints(t *testing.T, what string, r audit.Report, want []audit.EndpointReport) {
	t.Helper()
	if !slices.Equal(r.Endpoints, want) {
		t.Errorf("%s: endpoints\n%+v\nwant\n%+v", what, r.Endpoints, want)
	}
}

// TestReportEndpointsAndCauses reads a contact's history written to the log
// as the engine writes it: two endpoints signing in and out, a report, a lease
// ending, sets, changes held back by the flap window. The report counts only
// the window's events, but follows the endpoints signed in from the first
// event.
func TestReportEndpointsAndCauses(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.JetStream(t, s)
	ctx := natstest.Context(t)
	if err := engine.EnsureStreams(ctx, js, engine.StreamOptions{}, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	const dana = "dana"
	lease := time.Minute
	signIn := func(id string, kind events.EndpointKind) events.Event {
		return events.Event{Op: events.OpSignIn, Endpoint: id, EP: events.EndpointState{Kind: kind, Cause: events.CauseUser, Lease: lease}}
	}
	op := func(o events.Op, id string) events.Event { return events.Event{Op: o, Endpoint: id} }
	story := []struct {
		e                events.Event
		previous, status events.Status
		cause            events.Cause
	}{
		// Before the window.
		{signIn("desk", events.KindDesktop), events.Unknown, events.Online, events.CauseEndpoint}, // 0
		{signIn("tablet", events.KindWeb), events.Online, events.Online, events.CauseEndpoint},    // 1
		{op(events.OpSignOut, "tablet"), events.Online, events.Online, events.CauseEndpoint},      // 2
		// The window: from between 2 and 3 to between 13 and 14.
		{signIn("phone", events.KindMobile), events.Online, events.Online, events.CauseEndpoint}, // 3: no change
		{events.Event{Op: events.OpReport, Endpoint: "phone", EP: events.EndpointState{Kind: events.KindMobile, Status: events.Busy,
			Cause: events.CauseUser, Lease: lease}}, events.Online, events.Busy, events.CauseEndpoint}, // 4
		{events.Event{Op: events.OpSignOut, Endpoint: "phone", Held: true}, events.Busy, events.Online, events.CauseEndpoint}, // 5: held
		{events.Event{Op: events.OpShow, Shown: events.Busy}, events.Online, events.Online, events.CauseEndpoint},             // 6: shows it
		{events.Event{Endpoint: "desk"}, events.Online, events.Away, events.CauseUser},                                        // 7: a set from the desk
		{op(events.OpExpire, "desk"), events.Away, events.Offline, events.CauseExpiry},                                        // 8
		{events.Event{Op: events.OpSignIn, Endpoint: "phone", Held: true, EP: events.EndpointState{Kind: events.KindPhone,
			Cause: events.CauseUser, Lease: lease}}, events.Offline, events.Away, events.CauseEndpoint}, // 9: held, the phone now a phone
		{events.Event{Op: events.OpReport, Endpoint: "phone", Held: true, EP: events.EndpointState{Kind: events.KindPhone,
			Lease: lease}}, events.Away, events.Away, events.CauseEndpoint}, // 10: held, but no change
		{events.Event{Op: events.OpPrefer}, events.Away, events.Online, events.CauseUser}, // 11: the preferred away cleared
		{events.Event{}, events.Online, events.Idle, events.CauseEngine},                  // 12: time passed
		{events.Event{}, events.Idle, events.Busy, "import"},                              // 13: a cause of another system's
		// After the window.
		{op(events.OpSignOut, "phone"), events.Busy, events.Offline, events.CauseEndpoint}, // 14
	}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	for i, st := range story {
		e := st.e
		e.Contact, e.Name, e.At = dana, "Dana", at(i)
		e.Previous, e.Status, e.Cause = st.previous, st.status, st.cause
		// Another contact's event naming the same endpoint, in between.
		other := events.Event{Contact: "other", Status: []events.Status{events.Online, events.Away}[i%2],
			Previous: []events.Status{events.Away, events.Online}[i%2], At: e.At, Cause: events.CauseEndpoint, Endpoint: "desk"}
		if i == 0 {
			other.Previous = events.Unknown
		}
		for _, e := range []events.Event{e, other} {
			if _, err := js.Publish(ctx, events.EventSubject(e.Contact), e.Encode()); err != nil {
				t.Fatalf("append %+v: %v", e, err)
			}
		}
	}
	log := audit.NewLog(js, "")
	half := time.Minute / 2

	t.Run("window", func(t *testing.T) {
		r, err := log.Report(ctx, dana, at(3).Add(-half), at(14).Add(-half))
		if err != nil {
			t.Fatal(err)
		}
		if r.Changes != 8 || r.Start != events.Online || r.End != events.Busy {
			t.Errorf("report: %d changes, %s .. %s; want 8, online .. busy", r.Changes, r.Start, r.End)
		}
		// Endpoint: 4, 5, 9; user: 7, 11; each of the others once, by name.
		checkCauses(t, "report", r, []audit.CauseChanges{
			{Cause: events.CauseEndpoint, Changes: 3}, {Cause: events.CauseUser, Changes: 2},
			{Cause: events.CauseEngine, Changes: 1}, {Cause: events.CauseExpiry, Changes: 1}, {Cause: "import", Changes: 1},
		}, 2)
		// The desk signed in before the window; the tablet came and went
		// before it, and is not there.
		checkEndpoints(t, "report", r, []audit.EndpointReport{
			{ID: "desk", Kind: events.KindDesktop, Expiries: 1, Changes: 2},
			{ID: "phone", Kind: events.KindPhone, SignIns: 2, SignOuts: 1, Changes: 3, SignedInAtEnd: true},
		})
	})
	t.Run("window with no event", func(t *testing.T) {
		// Between 10 and 11: the phone is signed in throughout.
		r, err := log.Report(ctx, dana, at(10).Add(half/2), at(11).Add(-half/2))
		if err != nil {
			t.Fatal(err)
		}
		checkCauses(t, "report", r, []audit.CauseChanges{}, 0)
		checkEndpoints(t, "report", r, []audit.EndpointReport{{ID: "phone", Kind: events.KindPhone, SignedInAtEnd: true}})
	})
	t.Run("window before the first endpoint's sign-out", func(t *testing.T) {
		// From before the first event to between 1 and 2: the desk and the
		// tablet signed in, the contact came online.
		r, err := log.Report(ctx, dana, at(0).Add(-half), at(2).Add(-half))
		if err != nil {
			t.Fatal(err)
		}
		checkCauses(t, "report", r, []audit.CauseChanges{{Cause: events.CauseEndpoint, Changes: 1}}, 0)
		checkEndpoints(t, "report", r, []audit.EndpointReport{
			{ID: "desk", Kind: events.KindDesktop, SignIns: 1, Changes: 1, SignedInAtEnd: true},
			{ID: "tablet", Kind: events.KindWeb, SignIns: 1, SignedInAtEnd: true},
		})
	})
	t.Run("window after the last sign-out", func(t *testing.T) {
		r, err := log.Report(ctx, dana, at(14).Add(half), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		checkCauses(t, "report", r, []audit.CauseChanges{}, 0)
		checkEndpoints(t, "report", r, []audit.EndpointReport{})
		// Lists, empty, not null: a reader ranges over them as they are.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"causes":[]`, `"held":0`, `"endpoints":[]`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("report in JSON: %s; want %s in it", b, want)
			}
		}
	})
}
