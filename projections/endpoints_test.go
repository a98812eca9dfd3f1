package projections

import (
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/presence-engine/presence/events"
)

// TestFoldKeepsEachContactsEndpoints: the events that record endpoints, a
// preferred status and settings fold into the contact's Endpoints, as events
// .Aggregate needs them (each endpoint's lease running from the event that
// recorded it last); a plain set leaves them as they are; they survive a
// reopening, and Reset empties them.
func TestFoldKeepsEachContactsEndpoints(t *testing.T) {
	fs, dir := vfs.NewMem(), "projection"
	p := openAt(t, fs, dir)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	seq := uint64(0)
	status := events.Unknown
	step := func(e events.Event) {
		t.Helper()
		seq++
		e.Contact, e.Previous, e.At = alice, status, t0.Add(time.Duration(seq)*time.Second)
		if e.Status == events.Unknown {
			e.Status = status
		}
		status = e.Status
		apply(t, p, Record{Seq: seq, Data: e.Encode()})
	}
	want := func(w Endpoints) {
		t.Helper()
		got, err := p.Endpoints(alice)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("after seq %d:\n got %+v\nwant %+v", seq, got, w)
		}
	}
	at := func(s uint64) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	def := events.DefaultSettings

	want(Endpoints{Settings: def})
	step(events.Event{Op: events.OpSignIn, Endpoint: "desk", Status: events.Online, Cause: events.CauseEndpoint,
		EP: events.EndpointState{Kind: events.KindDesktop, Cause: events.CauseUser, Lease: time.Minute}})
	desk := events.Endpoint{ID: "desk", Kind: events.KindDesktop, Cause: events.CauseUser, Lease: time.Minute, Expires: at(1).Add(time.Minute)}
	want(Endpoints{List: []events.Endpoint{desk}, Settings: def})

	step(events.Event{Op: events.OpSignIn, Endpoint: "cal", Cause: events.CauseEndpoint,
		EP: events.EndpointState{Kind: events.KindCalendar, Cause: events.CauseUser, Lease: time.Hour}})
	step(events.Event{Op: events.OpReport, Endpoint: "cal", Status: events.InAMeeting, Cause: events.CauseEndpoint,
		EP: events.EndpointState{Kind: events.KindCalendar, Status: events.InAMeeting, Cause: events.CauseEndpoint, Lease: time.Hour}})
	cal := events.Endpoint{ID: "cal", Kind: events.KindCalendar, Status: events.InAMeeting, Cause: events.CauseEndpoint,
		Lease: time.Hour, Expires: at(3).Add(time.Hour)}
	want(Endpoints{List: []events.Endpoint{cal, desk}, Settings: def}) // by ID

	step(events.Event{Status: events.Busy, Cause: events.CauseUser}) // a plain set
	want(Endpoints{List: []events.Endpoint{cal, desk}, Settings: def})

	pref := events.Preferred{Status: events.DoNotDisturb, Until: at(5).Add(24 * time.Hour)}
	step(events.Event{Op: events.OpPrefer, Status: events.DoNotDisturb, Cause: events.CauseUser, Preferred: pref})
	own := events.Settings{TransmitIdle: false, IdleAfter: 10 * time.Minute, AwayAfter: time.Hour}
	step(events.Event{Op: events.OpSettings, Cause: events.CauseUser, Settings: own})
	step(events.Event{Op: events.OpSignOut, Endpoint: "desk", Cause: events.CauseUser})
	want(Endpoints{List: []events.Endpoint{cal}, Preferred: pref, Settings: own})

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = openAt(t, fs, dir)
	want(Endpoints{List: []events.Endpoint{cal}, Preferred: pref, Settings: own})
	step(events.Event{Op: events.OpExpire, Endpoint: "cal", Status: events.Offline, Cause: events.CauseExpiry})
	want(Endpoints{Preferred: pref, Settings: own})

	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	want(Endpoints{Settings: def})
}

// TestHeldChangesAreNotShown: a change the flap window held back moves the
// truth but not what subscribers see (the visible status, the feed
// position); the event that shows it does, naming what was shown before.
func TestHeldChangesAreNotShown(t *testing.T) {
	p := openAt(t, vfs.NewMem(), "projection")
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	in := events.Event{Contact: alice, Op: events.OpSignIn, Endpoint: "desk", Status: events.Online, Previous: events.Unknown, At: t0,
		Cause: events.CauseEndpoint, EP: events.EndpointState{Kind: events.KindDesktop, Cause: events.CauseUser, Lease: time.Minute}}
	out := events.Event{Contact: alice, Op: events.OpSignOut, Endpoint: "desk", Status: events.Offline, Previous: events.Online,
		At: t0.Add(time.Second), Cause: events.CauseEndpoint, Held: true}
	show := events.Event{Contact: alice, Op: events.OpShow, Status: events.Offline, Previous: events.Offline, Shown: events.Online,
		At: t0.Add(2 * time.Second), Cause: events.CauseEndpoint}
	look := func(wantTrue, wantShown events.Status, wantFeed uint64) {
		t.Helper()
		st, _, err := p.State(alice)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != wantTrue || st.Visible.Status != wantShown || st.Visible.Seq != wantFeed || p.AppliedFeed() != wantFeed {
			t.Fatalf("alice is %s, shown %s at feed position %d (applied %d); want %s, shown %s at %d",
				st.Status, st.Visible.Status, st.Visible.Seq, p.AppliedFeed(), wantTrue, wantShown, wantFeed)
		}
	}
	apply(t, p, Record{Seq: 1, Data: in.Encode()}, Record{Seq: 2, Data: out.Encode()})
	look(events.Offline, events.Online, 1)
	apply(t, p, Record{Seq: 3, Data: show.Encode()})
	look(events.Offline, events.Offline, 2)
}
