package events_test

import (
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// TestAggregate: one row for each rule of the precedence table, and for each
// choice between endpoints that a rule makes.
func TestAggregate(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	in := func(d time.Duration) time.Time { return now.Add(d) }
	lease := in(time.Minute) // when a live endpoint's lease ends
	// inactive is how long an endpoint has been without input; 0: active.
	since := func(inactive time.Duration) time.Time {
		if inactive == 0 {
			return time.Time{}
		}
		return ago(inactive)
	}
	desktop := func(st events.Status, cause events.Cause, inactive time.Duration) events.Endpoint {
		return events.Endpoint{ID: "desk", Kind: events.KindDesktop, Status: st, Cause: cause, InactiveSince: since(inactive), Expires: lease}
	}
	mobile := func(st events.Status, cause events.Cause, inactive time.Duration) events.Endpoint {
		return events.Endpoint{ID: "mob", Kind: events.KindMobile, Status: st, Cause: cause, InactiveSince: since(inactive), Expires: lease}
	}
	phone := events.Endpoint{ID: "tel", Kind: events.KindPhone, Status: events.OnThePhone, Cause: events.CauseEndpoint, InactiveSince: ago(time.Hour), Expires: lease}
	calendar := events.Endpoint{ID: "cal", Kind: events.KindCalendar, Status: events.InAMeeting, Cause: events.CauseEndpoint, InactiveSince: ago(time.Hour), Expires: lease}
	expired := desktop(events.Busy, events.CauseUser, 0)
	expired.Expires = ago(time.Second)
	none := events.Unknown
	user := events.CauseUser
	def := events.DefaultSettings

	tests := []struct {
		name      string
		endpoints []events.Endpoint
		pref      events.Preferred
		set       events.Settings
		want      events.Status
		rule      events.Rule
		from      string
		next      time.Time
	}{
		{"no endpoint: offline", nil, events.Preferred{}, def, events.Offline, events.RuleNoEndpoint, "", time.Time{}},
		{"every lease ended: offline", []events.Endpoint{expired}, events.Preferred{}, def, events.Offline, events.RuleNoEndpoint, "", time.Time{}},
		{"a preferred status needs an endpoint", nil, events.Preferred{Status: events.Busy}, def, events.Offline, events.RuleNoEndpoint, "", time.Time{}},
		{"preferred beats what endpoints chose", []events.Endpoint{desktop(events.DoNotDisturb, user, 0)}, events.Preferred{Status: events.Away},
			def, events.Away, events.RulePreferred, "", lease},
		{"preferred invisible holds across endpoints", []events.Endpoint{desktop(events.Busy, user, 0), mobile(none, "", 0), phone},
			events.Preferred{Status: events.Invisible}, def, events.Invisible, events.RulePreferred, "", lease},
		{"a preferred status until a time looks again then", []events.Endpoint{desktop(none, "", 0)},
			events.Preferred{Status: events.Busy, Until: in(30 * time.Second)}, def, events.Busy, events.RulePreferred, "", in(30 * time.Second)},
		{"a preferred status ended no longer holds", []events.Endpoint{desktop(none, "", 0)},
			events.Preferred{Status: events.Busy, Until: ago(time.Second)}, def, events.Online, events.RuleActive, "desk", lease},
		{"do-not-disturb chosen beats busy chosen", []events.Endpoint{desktop(events.Busy, user, 0), mobile(events.DoNotDisturb, user, 0)},
			events.Preferred{}, def, events.DoNotDisturb, events.RuleChosen, "mob", lease},
		{"offline chosen hides what others chose, as invisible does", []events.Endpoint{desktop(events.Offline, user, 0), mobile(events.Busy, user, 0)},
			events.Preferred{}, def, events.Offline, events.RuleChosen, "desk", lease},
		{"invisible chosen hides what others chose", []events.Endpoint{desktop(events.Invisible, user, 0), mobile(events.Busy, user, 0)},
			events.Preferred{}, def, events.Invisible, events.RuleChosen, "desk", lease},
		{"busy chosen beats away chosen", []events.Endpoint{desktop(events.Away, user, 0), mobile(events.Busy, user, 0)},
			events.Preferred{}, def, events.Busy, events.RuleChosen, "mob", lease},
		{"chosen beats detected", []events.Endpoint{desktop(events.Away, user, time.Hour), phone}, events.Preferred{}, def,
			events.Away, events.RuleChosen, "desk", lease},
		{"on-the-phone from a phone", []events.Endpoint{desktop(none, "", 0), phone}, events.Preferred{}, def,
			events.OnThePhone, events.RuleDetected, "tel", lease},
		{"in-a-meeting from a calendar", []events.Endpoint{desktop(none, "", 0), calendar}, events.Preferred{}, def,
			events.InAMeeting, events.RuleDetected, "cal", lease},
		{"on the phone in a meeting: the phone", []events.Endpoint{calendar, phone}, events.Preferred{}, def,
			events.OnThePhone, events.RuleDetected, "tel", lease},
		{"an active endpoint: online", []events.Endpoint{desktop(none, "", 0)}, events.Preferred{},
			def, events.Online, events.RuleActive, "desk", lease},
		{"inactive for less than IdleAfter: online until it goes idle", []events.Endpoint{func() events.Endpoint {
			e := desktop(none, "", time.Minute)
			e.Expires = in(time.Hour)
			return e
		}()}, events.Preferred{}, events.Settings{TransmitIdle: true}, events.Online, events.RuleActive, "desk", in(4 * time.Minute)},
		{"inactive past IdleAfter: idle", []events.Endpoint{desktop(none, "", 6*time.Minute)}, events.Preferred{}, def,
			events.Idle, events.RuleIdle, "desk", lease},
		{"idle looks again when it goes away", []events.Endpoint{func() events.Endpoint {
			e := desktop(none, "", 6*time.Minute)
			e.Expires = in(time.Hour)
			return e
		}()}, events.Preferred{}, def, events.Idle, events.RuleIdle, "desk", ago(6 * time.Minute).Add(events.DefaultAwayAfter)},
		{"inactive past AwayAfter: away", []events.Endpoint{desktop(none, "", 25*time.Minute)}, events.Preferred{}, def,
			events.Away, events.RuleAway, "desk", lease},
		{"the most active endpoint decides", []events.Endpoint{desktop(none, "", 25*time.Minute), mobile(none, "", time.Minute)},
			events.Preferred{}, def, events.Online, events.RuleActive, "mob", lease},
		{"an active endpoint beats one inactive since later", []events.Endpoint{desktop(none, "", 0), mobile(none, "", time.Minute)},
			events.Preferred{}, def, events.Online, events.RuleActive, "desk", lease},
		{"idle not transmitted: online", []events.Endpoint{desktop(none, "", time.Hour)}, events.Preferred{}, events.Settings{},
			events.Online, events.RuleAvailable, "desk", lease},
		{"available chosen goes idle", []events.Endpoint{desktop(events.Online, user, 6*time.Minute)}, events.Preferred{}, def,
			events.Idle, events.RuleIdle, "desk", lease},
		{"available chosen, active", []events.Endpoint{desktop(events.Online, user, 0)}, events.Preferred{}, def,
			events.Online, events.RuleChosen, "desk", lease},
		{"busy chosen stays through inactivity", []events.Endpoint{desktop(events.Busy, user, time.Hour)}, events.Preferred{}, def,
			events.Busy, events.RuleChosen, "desk", lease},
		{"thresholds of the contact's own", []events.Endpoint{desktop(none, "", 90*time.Second)}, events.Preferred{},
			events.Settings{TransmitIdle: true, IdleAfter: time.Minute, AwayAfter: 2 * time.Minute}, events.Idle, events.RuleIdle, "desk", in(30 * time.Second)},
		{"an expired endpoint's choice is gone", []events.Endpoint{expired, mobile(none, "", 0)}, events.Preferred{}, def,
			events.Online, events.RuleActive, "mob", lease},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := events.Aggregate(tt.endpoints, tt.pref, tt.set, now)
			got.LastActive = time.Time{} // TestAggregateLastActive's
			want := events.Aggregated{Status: tt.want, Rule: tt.rule, From: tt.from, Next: tt.next}
			if got != want {
				t.Errorf("Aggregate = %v, next %v; want %v, next %v", got, got.Next, want, want.Next)
			}
		})
	}
}

// TestAggregateLastActive: last active is the most active live endpoint's
// last input, once every live endpoint is inactive, whatever decided the
// status; nothing while one is active, without endpoints, or when the
// contact does not transmit idle.
func TestAggregateLastActive(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ep := func(id string, inactive time.Duration, expires time.Time) events.Endpoint {
		e := events.Endpoint{ID: id, Kind: events.KindDesktop, Expires: expires}
		if inactive > 0 {
			e.InactiveSince = now.Add(-inactive)
		}
		return e
	}
	live, gone := now.Add(time.Minute), now.Add(-time.Second)
	tests := []struct {
		name      string
		endpoints []events.Endpoint
		pref      events.Preferred
		set       events.Settings
		want      time.Time
	}{
		{"no endpoint", nil, events.Preferred{}, events.DefaultSettings, time.Time{}},
		{"one active", []events.Endpoint{ep("a", 0, live), ep("b", time.Hour, live)}, events.Preferred{}, events.DefaultSettings, time.Time{}},
		{"all inactive: the latest input", []events.Endpoint{ep("a", time.Hour, live), ep("b", 3*time.Minute, live)},
			events.Preferred{}, events.DefaultSettings, now.Add(-3 * time.Minute)},
		{"an ended lease does not count", []events.Endpoint{ep("a", time.Hour, live), ep("b", 0, gone)},
			events.Preferred{}, events.DefaultSettings, now.Add(-time.Hour)},
		{"under a preferred status", []events.Endpoint{ep("a", time.Minute, live)}, events.Preferred{Status: events.Busy},
			events.DefaultSettings, now.Add(-time.Minute)},
		{"idle not transmitted", []events.Endpoint{ep("a", time.Hour, live)}, events.Preferred{}, events.Settings{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := events.Aggregate(tt.endpoints, tt.pref, tt.set, now).LastActive; !got.Equal(tt.want) {
				t.Errorf("LastActive = %v, want %v", got, tt.want)
			}
		})
	}
}
