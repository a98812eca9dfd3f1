package events

import (
	"fmt"
	"time"
)

// How a contact's published status is decided from its endpoints, its
// preferred status and its settings: Aggregate, a pure function of them and the
// time, so that the owner that decides it, a replay and a test all reach the
// same status. The rules, first that applies wins (docs/presence.md):
//
//  1. RuleNoEndpoint: no endpoint whose lease runs: offline. A preferred
//     status does not hold without one (Microsoft Graph: preferred presence
//     shows only while a session exists), so signing out everywhere, or the
//     last lease expiring, is offline whatever was chosen.
//  2. RulePreferred: a preferred status, until it ends: what the user chose for
//     every endpoint (Graph's preferred presence), invisible included, which
//     so holds across every endpoint.
//  3. RuleChosen: statuses the user chose on endpoints: the first of them in
//     Precedence (do-not-disturb, then busy, then available, then away, as
//     Graph aggregates sessions). What a person chose beats what a machine
//     detected (Office Communications Server 2007). An available they chose
//     goes idle like any other (rule 6): only what is not available stays as
//     chosen, as Communicator keeps a manual busy through inactivity.
//  4. RuleDetected: statuses endpoints detected (cause endpoint): on-the-phone
//     from a phone in a call, in-a-meeting from a calendar; the first of them
//     in Precedence.
//  5. RuleActive: an endpoint active (or inactive for less than IdleAfter):
//     online.
//  6. RuleIdle, RuleAway: every endpoint inactive and the user transmits idle:
//     idle once the most recently active endpoint has been inactive
//     IdleAfter (5 minutes by default, OCS's inactive), away once AwayAfter
//     (20 minutes, OCS's 5 and 15 more), counted from its InactiveSince;
//     online before. The most active endpoint decides (OCS: active, then
//     inactive, then away).
//  7. RuleAvailable: otherwise (idle not transmitted): online, or the
//     available the user chose.

// EndpointKind is what an endpoint is.
type EndpointKind string

// The kinds of endpoint.
const (
	KindDesktop  EndpointKind = "desktop"
	KindMobile   EndpointKind = "mobile"
	KindWeb      EndpointKind = "web"
	KindPhone    EndpointKind = "phone"    // may report on-the-phone as detected
	KindCalendar EndpointKind = "calendar" // may report in-a-meeting as detected
	KindBot      EndpointKind = "bot"
)

// ParseEndpointKind parses an endpoint's kind.
func ParseEndpointKind(text string) (EndpointKind, error) {
	switch k := EndpointKind(text); k {
	case KindDesktop, KindMobile, KindWeb, KindPhone, KindCalendar, KindBot:
		return k, nil
	}
	return "", &ValueError{Field: "kind", Value: quote(text),
		Reason: `accepted: "desktop", "mobile", "web", "phone", "calendar", "bot"`}
}

// Endpoint is one place a contact is signed in from, as the owner knows it.
type Endpoint struct {
	ID   string
	Kind EndpointKind
	// Status is what the endpoint reports, Unknown for nothing; Cause says
	// whether the user chose it on the endpoint (CauseUser) or the endpoint
	// detected it (CauseEndpoint: a phone in a call, a calendar's meeting).
	Status Status
	Cause  Cause
	// InactiveSince is when the endpoint last saw its user's input, as it
	// reported once the input stopped; zero while it is active. An endpoint
	// reports the change, not every input: so the log holds all that
	// Aggregate needs, and heartbeats need not be events.
	InactiveSince time.Time
	// Expires is when its lease ends unless it heartbeats; Lease is how long
	// each heartbeat extends it by.
	Expires time.Time
	Lease   time.Duration
}

// Live reports whether the endpoint's lease runs at now.
func (e Endpoint) Live(now time.Time) bool { return now.Before(e.Expires) }

// Preferred is the status a user chose for every endpoint, until a time (zero:
// until cleared).
type Preferred struct {
	Status Status // Unknown: none
	Until  time.Time
}

// Holds reports whether the preferred status applies at now.
func (p Preferred) Holds(now time.Time) bool {
	return p.Status != Unknown && (p.Until.IsZero() || now.Before(p.Until))
}

// Settings are a contact's own: whether idle is transmitted, and after how
// long without input an endpoint counts as idle, then away.
type Settings struct {
	TransmitIdle bool
	IdleAfter    time.Duration // zero: DefaultIdleAfter
	AwayAfter    time.Duration // zero: DefaultAwayAfter; from the last input, not from idle
}

// The default thresholds: OCS 2007's inactive after 5 minutes, away after 15
// more.
const (
	DefaultIdleAfter = 5 * time.Minute
	DefaultAwayAfter = 20 * time.Minute
)

// DefaultSettings are a contact's settings until it changes them: idle is
// transmitted. (The zero Settings transmit no idle.)
var DefaultSettings = Settings{TransmitIdle: true, IdleAfter: DefaultIdleAfter, AwayAfter: DefaultAwayAfter}

func (s Settings) thresholds() (idle, away time.Duration) {
	idle, away = s.IdleAfter, s.AwayAfter
	if idle <= 0 {
		idle = DefaultIdleAfter
	}
	if away <= 0 {
		away = DefaultAwayAfter
	}
	return idle, max(idle, away)
}

// Rule names the rule of Aggregate that decided a status.
type Rule string

// The rules, in the order they apply.
const (
	RuleNoEndpoint Rule = "no-endpoint"
	RulePreferred  Rule = "preferred"
	RuleChosen     Rule = "chosen"
	RuleDetected   Rule = "detected"
	RuleActive     Rule = "active"
	RuleIdle       Rule = "idle"
	RuleAway       Rule = "away"
	RuleAvailable  Rule = "available"
)

// Precedence orders statuses where several endpoints report one (rules 3 and
// 4): the first wins. Invisible chosen on an endpoint hides the rest, and so
// does offline (appear offline): the two must rank alike, or choosing
// invisible would show differently from choosing offline (DESIGN.md §4).
// Then do-not-disturb, busy and its kinds, available, away and its kinds.
var Precedence = []Status{Invisible, Offline, DoNotDisturb, AllowUrgentInterruptions, Busy, InAConference, OnThePhone, InAMeeting,
	Online, MayBeAvailable, Custom, BeRightBack, OutToLunch, Away, OutOfOffice, Idle}

var rank = func() map[Status]int {
	m := make(map[Status]int, len(Precedence))
	for i, s := range Precedence {
		m[s] = len(Precedence) - i
	}
	return m
}()

// Aggregated is a contact's published status as Aggregate decided it.
type Aggregated struct {
	Status Status
	Rule   Rule   // which rule decided it
	From   string // the endpoint that decided it, if one did
	// Next is when the status may next change with no input but time (a
	// lease ending, a preferred status ending, an endpoint going idle or
	// away); zero if never. The owner looks again then.
	Next time.Time
	// LastActive is when the user was last active, once every live
	// endpoint is inactive and the contact transmits idle (XEP-0319's idle
	// since): the most active endpoint's InactiveSince. Zero otherwise.
	LastActive time.Time
}

func (a Aggregated) String() string {
	if a.From == "" {
		return fmt.Sprintf("%s (%s)", a.Status, a.Rule)
	}
	return fmt.Sprintf("%s (%s, endpoint %s)", a.Status, a.Rule, a.From)
}

// moreActive reports whether a is more active than b: active beats
// inactive, and of two inactive the one inactive since later.
func moreActive(a, b *Endpoint) bool {
	switch {
	case b.InactiveSince.IsZero():
		return false
	case a.InactiveSince.IsZero():
		return true
	}
	return a.InactiveSince.After(b.InactiveSince)
}

// Aggregate decides a contact's published status at now from its endpoints,
// its preferred status and its settings, by the rules above.
func Aggregate(endpoints []Endpoint, pref Preferred, set Settings, now time.Time) Aggregated {
	var (
		next               time.Time
		chosen, detected   *Endpoint
		mostActive         *Endpoint
		chosenAvailableSet bool
	)
	soonest := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	live := 0
	for i := range endpoints {
		e := &endpoints[i]
		if !e.Live(now) {
			continue
		}
		live++
		soonest(e.Expires)
		if mostActive == nil || moreActive(e, mostActive) {
			mostActive = e
		}
		switch {
		case e.Status == Unknown:
		case e.Cause == CauseUser && e.Status == Online:
			chosenAvailableSet = true
		case e.Cause == CauseUser:
			if chosen == nil || rank[e.Status] > rank[chosen.Status] {
				chosen = e
			}
		default:
			if detected == nil || rank[e.Status] > rank[detected.Status] {
				detected = e
			}
		}
	}
	if live == 0 {
		return Aggregated{Status: Offline, Rule: RuleNoEndpoint}
	}
	a := aggregate(chosen, detected, mostActive, chosenAvailableSet, pref, set, now, soonest)
	a.Next = next
	if set.TransmitIdle {
		a.LastActive = mostActive.InactiveSince
	}
	return a
}

// aggregate is Aggregate's rules 2 to 7, for a contact with live endpoints.
func aggregate(chosen, detected, mostActive *Endpoint, chosenAvailableSet bool, pref Preferred, set Settings, now time.Time,
	soonest func(time.Time)) Aggregated {
	if pref.Holds(now) {
		if !pref.Until.IsZero() {
			soonest(pref.Until)
		}
		return Aggregated{Status: pref.Status, Rule: RulePreferred}
	}
	if !pref.Until.IsZero() {
		soonest(pref.Until)
	}
	switch {
	case chosen != nil:
		return Aggregated{Status: chosen.Status, Rule: RuleChosen, From: chosen.ID}
	case detected != nil:
		return Aggregated{Status: detected.Status, Rule: RuleDetected, From: detected.ID}
	}
	idleAfter, awayAfter := set.thresholds()
	last := mostActive.InactiveSince
	switch {
	case !set.TransmitIdle:
		return Aggregated{Status: Online, Rule: RuleAvailable, From: mostActive.ID}
	case last.IsZero() || now.Sub(last) < idleAfter:
		if !last.IsZero() {
			soonest(last.Add(idleAfter))
		}
		rule := RuleActive
		if chosenAvailableSet {
			rule = RuleChosen
		}
		return Aggregated{Status: Online, Rule: rule, From: mostActive.ID}
	case now.Sub(last) < awayAfter:
		soonest(last.Add(awayAfter))
		return Aggregated{Status: Idle, Rule: RuleIdle, From: mostActive.ID}
	}
	return Aggregated{Status: Away, Rule: RuleAway, From: mostActive.ID}
}
