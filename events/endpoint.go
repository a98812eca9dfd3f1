package events

import (
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Op says what an event records besides a contact's published status: an
// endpoint signing in, reporting, signing out or expiring, a preferred status,
// settings. The empty Op is a plain set, as every event was before endpoints.
// Every event carries the published status before (Previous) and after
// (Status), Aggregate's, which an Op may leave as it was: so each contact's
// chain holds, and the feed derives from Status and Previous alone.
type Op string

// The ops.
const (
	OpSet      Op = ""
	OpSignIn   Op = "signin"   // an endpoint signed in: Endpoint, EP
	OpReport   Op = "report"   // an endpoint's state changed: Endpoint, EP
	OpSignOut  Op = "signout"  // an endpoint signed out: Endpoint
	OpExpire   Op = "expire"   // an endpoint's lease ended: Endpoint
	OpPrefer   Op = "prefer"   // the preferred status: Preferred (Unknown: cleared)
	OpSettings Op = "settings" // the contact's settings: Settings
	// OpShow shows subscribers, once the flap window after the last change
	// they were shown has passed, the status changes held back within it
	// left: Status is Previous, and Shown what they were last shown.
	OpShow Op = "show"
)

// CauseExpiry is the cause of a change the end of a lease made.
const CauseExpiry Cause = "expiry"

// MaxEndpointIDLen is the longest endpoint ID accepted, in bytes.
const MaxEndpointIDLen = 128

// EndpointState is an endpoint as a signin or report event records it.
type EndpointState struct {
	Kind          EndpointKind
	Status        Status // Unknown: none
	Cause         Cause  // CauseUser: chosen on the endpoint; CauseEndpoint: detected
	InactiveSince time.Time
	Lease         time.Duration // how long it lives without a heartbeat
}

// ValidateEndpointID checks an endpoint ID: 1 to MaxEndpointIDLen bytes of
// UTF-8 without control characters or spaces.
func ValidateEndpointID(id string) error {
	bad := func(reason string) error {
		return &ValueError{Field: "endpoint", Value: quote(id), Err: ErrMalformed, Reason: reason}
	}
	switch {
	case id == "":
		return bad("it is empty")
	case len(id) > MaxEndpointIDLen:
		return bad(fmt.Sprintf("it is %d bytes; at most %d are accepted", len(id), MaxEndpointIDLen))
	case !utf8.ValidString(id):
		return bad("it is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return bad("it holds " + strconv.QuoteRune(r) + "; no control characters or spaces are accepted")
		}
	}
	return nil
}

// The JSON forms of an event's op fields.
type (
	endpointJSON struct {
		Kind          EndpointKind `json:"kind"`
		Status        Status       `json:"status,omitempty"`
		Cause         Cause        `json:"cause,omitempty"`
		InactiveSince string       `json:"inactive_since,omitempty"`
		LeaseMS       int64        `json:"lease_ms"`
	}
	preferredJSON struct {
		Status Status `json:"status,omitempty"`
		Until  string `json:"until,omitempty"`
	}
	settingsJSON struct {
		TransmitIdle bool  `json:"transmit_idle"`
		IdleAfterS   int64 `json:"idle_after_s"`
		AwayAfterS   int64 `json:"away_after_s"`
	}
)

// opJSON sets the op fields of j from e.
func opJSON(e Event, j *eventJSON) {
	j.Op, j.Endpoint = e.Op, e.Endpoint
	switch e.Op {
	case OpSignIn, OpReport:
		ep := &endpointJSON{Kind: e.EP.Kind, Status: e.EP.Status, Cause: e.EP.Cause, LeaseMS: e.EP.Lease.Milliseconds()}
		if !e.EP.InactiveSince.IsZero() {
			ep.InactiveSince = e.EP.InactiveSince.UTC().Format(time.RFC3339Nano)
		}
		j.EP = ep
	case OpPrefer:
		p := &preferredJSON{Status: e.Preferred.Status}
		if !e.Preferred.Until.IsZero() {
			p.Until = e.Preferred.Until.UTC().Format(time.RFC3339Nano)
		}
		j.Preferred = p
	case OpSettings:
		j.Settings = &settingsJSON{TransmitIdle: e.Settings.TransmitIdle,
			IdleAfterS: int64(e.Settings.IdleAfter / time.Second), AwayAfterS: int64(e.Settings.AwayAfter / time.Second)}
	}
}

// decodeOp checks the op fields of j and sets them in e.
func decodeOp(kind string, j *eventJSON, e *Event) error {
	e.Op = j.Op
	switch j.Op {
	case OpSet:
		// A set may say which endpoint made it; what other ops record
		// is not a set's, and ignored as unknown fields are.
		if j.Endpoint != "" {
			if err := ValidateEndpointID(j.Endpoint); err != nil {
				return malformedBy(kind, err)
			}
			e.Endpoint = j.Endpoint
		}
		return nil
	case OpSignIn, OpReport, OpSignOut, OpExpire:
		if err := ValidateEndpointID(j.Endpoint); err != nil {
			return malformedBy(kind, err)
		}
		e.Endpoint = j.Endpoint
	case OpPrefer, OpSettings:
	case OpShow:
		switch {
		case j.Shown == Unknown:
			return malformed(kind, `show has no "shown": the status subscribers were last shown`)
		case j.Held:
			return malformed(kind, `show is "held": a show is never held back`)
		case j.Status != j.Previous:
			return malformed(kind, `show has "status" %s and "previous" %s; a show changes no status`, j.Status, j.Previous)
		}
	default:
		return malformed(kind, `"op" %s: accepted: "signin", "report", "signout", "expire", "prefer", "settings", "show"`, quote(string(j.Op)))
	}
	switch j.Op {
	case OpSignIn, OpReport:
		if j.EP == nil {
			return malformed(kind, `%s has no "ep": the endpoint's state`, j.Op)
		}
		k, err := ParseEndpointKind(string(j.EP.Kind))
		if err != nil {
			return malformedBy(kind, err)
		}
		cause, err := logCause(j.EP.Cause)
		if err != nil {
			return malformedBy(kind, err)
		}
		if j.EP.Status.Local() || !j.EP.Status.Valid() {
			return malformed(kind, `"ep" "status" %s is not a protocol status`, j.EP.Status)
		}
		if j.EP.LeaseMS <= 0 {
			return malformed(kind, `"ep" "lease_ms" is %d; a lease is positive`, j.EP.LeaseMS)
		}
		e.EP = EndpointState{Kind: k, Status: j.EP.Status, Cause: cause, Lease: time.Duration(j.EP.LeaseMS) * time.Millisecond}
		if j.EP.InactiveSince != "" {
			if e.EP.InactiveSince, err = parseTime(kind, j.EP.InactiveSince); err != nil {
				return err
			}
		}
	case OpPrefer:
		if j.Preferred == nil {
			return malformed(kind, `prefer has no "preferred"`)
		}
		if j.Preferred.Status.Local() || !j.Preferred.Status.Valid() {
			return malformed(kind, `"preferred" "status" %s is not a protocol status`, j.Preferred.Status)
		}
		e.Preferred.Status = j.Preferred.Status
		if j.Preferred.Until != "" {
			var err error
			if e.Preferred.Until, err = parseTime(kind, j.Preferred.Until); err != nil {
				return err
			}
		}
	case OpSettings:
		if j.Settings == nil {
			return malformed(kind, `settings has no "settings"`)
		}
		if j.Settings.IdleAfterS < 0 || j.Settings.AwayAfterS < 0 {
			return malformed(kind, `"settings" thresholds are %ds and %ds; none is negative`, j.Settings.IdleAfterS, j.Settings.AwayAfterS)
		}
		e.Settings = Settings{TransmitIdle: j.Settings.TransmitIdle,
			IdleAfter: time.Duration(j.Settings.IdleAfterS) * time.Second, AwayAfter: time.Duration(j.Settings.AwayAfterS) * time.Second}
	}
	return nil
}
