package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// TestEndpointEventsRoundTrip: each op's event decodes to what was encoded,
// an op that leaves the published status as it was included.
func TestEndpointEventsRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	base := events.Event{Contact: "sip:alice@contoso.com", Name: "Alice", Status: events.Online, Previous: events.Offline, At: at,
		Cause: events.CauseEndpoint}
	with := func(f func(*events.Event)) events.Event {
		e := base
		f(&e)
		return e
	}
	tests := map[string]events.Event{
		"a set from an endpoint": with(func(e *events.Event) { e.Cause, e.Endpoint = events.CauseUser, "desk-1" }),
		"signin": with(func(e *events.Event) {
			e.Op, e.Endpoint = events.OpSignIn, "desk-1"
			e.EP = events.EndpointState{Kind: events.KindDesktop, Cause: events.CauseUser, Lease: time.Minute}
		}),
		"report, status unchanged": with(func(e *events.Event) {
			e.Op, e.Endpoint, e.Previous = events.OpReport, "tel", events.Online
			e.EP = events.EndpointState{Kind: events.KindPhone, Status: events.OnThePhone, Cause: events.CauseEndpoint,
				InactiveSince: at.Add(-time.Minute), Lease: 90 * time.Second}
		}),
		"signout": with(func(e *events.Event) {
			e.Op, e.Endpoint, e.Status, e.Previous = events.OpSignOut, "desk-1", events.Offline, events.Online
		}),
		"expire": with(func(e *events.Event) {
			e.Op, e.Endpoint, e.Status, e.Previous, e.Cause = events.OpExpire, "desk-1", events.Offline, events.Online, events.CauseExpiry
		}),
		"prefer, until": with(func(e *events.Event) {
			e.Op, e.Status, e.Previous, e.Cause = events.OpPrefer, events.Busy, events.Online, events.CauseUser
			e.Preferred = events.Preferred{Status: events.Busy, Until: at.Add(24 * time.Hour)}
		}),
		"prefer cleared": with(func(e *events.Event) {
			e.Op, e.Status, e.Previous, e.Cause = events.OpPrefer, events.Online, events.Busy, events.CauseUser
		}),
		"settings": with(func(e *events.Event) {
			e.Op, e.Previous, e.Cause = events.OpSettings, events.Online, events.CauseUser
			e.Settings = events.Settings{TransmitIdle: false, IdleAfter: 10 * time.Minute, AwayAfter: 30 * time.Minute}
		}),
		"held": with(func(e *events.Event) {
			e.Op, e.Endpoint, e.Status, e.Previous, e.Held = events.OpSignOut, "desk-1", events.Offline, events.Online, true
		}),
		"a plain set held":            with(func(e *events.Event) { e.Held = true }),
		"a plain set after held ones": with(func(e *events.Event) { e.Shown = events.Busy }),
		"last active": with(func(e *events.Event) {
			e.Op, e.Endpoint, e.Previous = events.OpReport, "desk-1", events.Online
			e.EP = events.EndpointState{Kind: events.KindDesktop, Cause: events.CauseUser, InactiveSince: at.Add(-time.Minute), Lease: time.Minute}
			e.LastActive = at.Add(-time.Minute)
		}),
		"a look as time passed, last active": with(func(e *events.Event) {
			e.Status, e.Previous, e.Cause, e.LastActive = events.Idle, events.Online, events.CauseEngine, at.Add(-5*time.Minute)
		}),
		"show": with(func(e *events.Event) {
			e.Op, e.Status, e.Previous, e.Shown = events.OpShow, events.Offline, events.Offline, events.Online
		}),
	}
	for name, e := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := events.DecodeEvent(e.Encode())
			if err != nil {
				t.Fatalf("DecodeEvent(%s) = %v", e.Encode(), err)
			}
			if got != e {
				t.Errorf("DecodeEvent(%s)\n = %+v\nwant %+v", e.Encode(), got, e)
			}
		})
	}
}

// TestEndpointEventsRefused: an op's event without what it records, or with
// what no endpoint can be, is malformed, and the error names what is wrong.
func TestEndpointEventsRefused(t *testing.T) {
	const head = `{"v":1,"contact":"a","status":"online","previous":"online","at":"2026-12-07T12:00:00Z","cause":"user",`
	tests := []struct{ name, json, want string }{
		{"an unknown op", head + `"op":"teleport"}`, `"op" "teleport"`},
		{"a set that changes nothing", head + `"endpoint":"d"}`, `a set is a change`},
		{"signin without an endpoint", head + `"op":"signin","ep":{"kind":"desktop","lease_ms":1000}}`, `endpoint`},
		{"signin without its state", head + `"op":"signin","endpoint":"d"}`, `signin has no "ep"`},
		{"an endpoint ID with a space", head + `"op":"signout","endpoint":"my desk"}`, `no control characters or spaces`},
		{"a kind no endpoint is", head + `"op":"signin","endpoint":"d","ep":{"kind":"toaster","lease_ms":1000}}`, `"toaster"`},
		{"no lease", head + `"op":"report","endpoint":"d","ep":{"kind":"web","lease_ms":0}}`, `"lease_ms" is 0`},
		{"a local status", head + `"op":"report","endpoint":"d","ep":{"kind":"web","status":"0x0100","lease_ms":5}}`, `not a protocol status`},
		{"prefer without a status", head + `"op":"prefer"}`, `prefer has no "preferred"`},
		{"negative thresholds", head + `"op":"settings","settings":{"transmit_idle":true,"idle_after_s":-1,"away_after_s":60}}`, `none is negative`},
		{"show without shown", head + `"op":"show"}`, `show has no "shown"`},
		{"a last active that is no time", head + `"endpoint":"d","op":"signout","last_active":"yesterday"}`, `"last_active" "yesterday"`},
		{"show held", head + `"op":"show","shown":"away","held":true}`, `"held" and "shown" together`},
		{"show that changes the status", strings.Replace(head, `"previous":"online"`, `"previous":"away"`, 1) + `"op":"show","shown":"busy"}`,
			`a show changes no status`},
		{"shown invisible", head + `"endpoint":"d","op":"signout","shown":"invisible"}`, `"shown" invisible is not a visible status`},
		{"shown a local status", head + `"op":"show","shown":"0x0100"}`, `not a visible status`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.DecodeEvent([]byte(tt.json))
			if !errors.Is(err, events.ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeEvent(%s) = %v, want a malformed record naming %s", tt.json, err, tt.want)
			}
		})
	}
}

// TestWhatVersionOneWouldMisreadIsVersionTwo: an event recording what the
// flap window did, or last_active, is written as version 2, which an engine
// of version 1 refuses rather than misreads; any other stays version 1.
func TestWhatVersionOneWouldMisreadIsVersionTwo(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	set := events.Event{Contact: "a", Status: events.Online, Previous: events.Offline, At: at, Cause: events.CauseUser}
	held, shown, show, active := set, set, set, set
	held.Held = true
	shown.Shown = events.Busy
	show.Op, show.Previous, show.Shown = events.OpShow, events.Online, events.Busy
	active.LastActive = at.Add(-time.Minute)
	signIn := set
	signIn.Op, signIn.Endpoint = events.OpSignIn, "d"
	signIn.EP = events.EndpointState{Kind: events.KindWeb, Cause: events.CauseUser, Lease: time.Minute}
	for _, tc := range []struct {
		name string
		e    events.Event
		want string
	}{
		{"a set", set, `{"v":1,`}, {"a sign-in", signIn, `{"v":1,`},
		{"held", held, `{"v":2,`}, {"shown", shown, `{"v":2,`}, {"a show", show, `{"v":2,`}, {"last active", active, `{"v":2,`},
	} {
		if got := string(tc.e.Encode()); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s; want it to begin %s", tc.name, got, tc.want)
		}
	}
	v2set := []byte(`{"v":2,"contact":"a","status":"online","previous":"offline","at":"2026-12-07T12:00:00Z","cause":"user"}`)
	if e, err := events.DecodeEvent(v2set); err != nil || e != set {
		t.Errorf("a set written as version 2: %+v, %v; want it read", e, err)
	}
}
