package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/presence-engine/presence/events"
)

// What an endpoint asks of the service: a contact's device or integration
// signs in with a lease, heartbeats to keep it, and signs out. The contact's
// published status is then decided from its endpoints (events.Aggregate).

// The endpoint operations.
const (
	OpSignIn    = "signin"
	OpHeartbeat = "heartbeat"
	OpReport    = "report"
	OpSignOut   = "signout"
	// A contact's own, with no endpoint: the status it prefers for every
	// endpoint, and its settings.
	OpPrefer   = "prefer"
	OpSettings = "settings"
)

// MaxInactiveFor bounds how long ago a report may say its input stopped.
const MaxInactiveFor = 24 * time.Hour

// Leases: an endpoint that does not heartbeat within its lease is signed out
// by the engine (cause expiry).
const (
	DefaultLease = time.Minute
	MinLease     = 5 * time.Second
	MaxLease     = 4 * time.Hour
)

// EndpointRequest is an endpoint's sign-in, heartbeat or sign-out.
type EndpointRequest struct {
	Contact  string
	Op       string // OpSignIn, OpHeartbeat or OpSignOut
	Endpoint string // the endpoint's ID, chosen by the client
	// For a sign-in: what the endpoint is, its lease (zero: DefaultLease)
	// and the status the user chose on it (Unknown: none).
	Kind   events.EndpointKind
	Lease  time.Duration
	Status events.Status
	// For a report: the endpoint's status now (Unknown: none), which the
	// user chose (Cause user, the default) or the endpoint detected (cause
	// endpoint: on-the-phone from a phone, in-a-meeting from a calendar), and
	// how long its user has been without input (zero: active). The engine
	// stamps the time; the endpoint only says how long ago.
	Cause       events.Cause
	InactiveFor time.Duration
	// For a prefer: the preferred status (Unknown: cleared) and until when
	// (zero: until cleared). For settings: the contact's settings.
	Preferred events.Preferred
	Settings  events.Settings
}

// EndpointResult is the service's answer to an endpoint's request.
type EndpointResult struct {
	Contact  string        `json:"contact"`
	Endpoint string        `json:"endpoint"`
	Status   events.Status `json:"status"`   // the contact's published status after the request
	Previous events.Status `json:"previous"` // before it
	Seq      uint64        `json:"seq"`      // log sequence of the event, or of the contact's last one if none was appended
	Changed  bool          `json:"changed"`  // whether an event was appended
	Expires  time.Time     `json:"expires,omitzero"`
}

// endpointJSON is the body of an endpoint's request.
type endpointJSON struct {
	Endpoint     string              `json:"endpoint,omitempty"`
	Kind         events.EndpointKind `json:"kind,omitempty"`
	LeaseS       float64             `json:"lease_s,omitempty"`
	Status       *events.Status      `json:"status,omitempty"`
	Cause        events.Cause        `json:"cause,omitempty"`
	InactiveForS float64             `json:"inactive_for_s,omitempty"`
	Until        string              `json:"until,omitempty"` // prefer
	TransmitIdle *bool               `json:"transmit_idle,omitempty"`
	IdleAfterS   float64             `json:"idle_after_s,omitempty"`
	AwayAfterS   float64             `json:"away_after_s,omitempty"`
}

// Validate checks r as the service does, and makes a zero Lease of a sign-in
// DefaultLease. Every problem is an error wrapping ErrBadRequest that names
// the value and what is accepted.
func (r *EndpointRequest) Validate() error {
	if err := events.ValidateContact(r.Contact); err != nil {
		return badRequest(err)
	}
	switch r.Op {
	case OpPrefer:
		if r.Preferred.Status != events.Unknown {
			if err := r.Preferred.Status.Settable(events.CauseUser); err != nil {
				return badRequest(err)
			}
		}
		return nil
	case OpSettings:
		// Whole seconds, as the log keeps them: the owner decides on what
		// a replay and the next owner read.
		r.Settings.IdleAfter, r.Settings.AwayAfter = r.Settings.IdleAfter.Round(time.Second), r.Settings.AwayAfter.Round(time.Second)
		if r.Settings.IdleAfter == 0 {
			r.Settings.IdleAfter = events.DefaultIdleAfter
		}
		if r.Settings.AwayAfter == 0 {
			r.Settings.AwayAfter = max(events.DefaultAwayAfter, r.Settings.IdleAfter)
		}
		if r.Settings.IdleAfter < time.Minute || r.Settings.AwayAfter < r.Settings.IdleAfter || r.Settings.AwayAfter > 24*time.Hour {
			return badRequest(fmt.Errorf("idle_after_s %v and away_after_s %v: accepted: idle after a minute or more, away no sooner, within a day",
				r.Settings.IdleAfter.Seconds(), r.Settings.AwayAfter.Seconds()))
		}
		return nil
	}
	if err := events.ValidateEndpointID(r.Endpoint); err != nil {
		return badRequest(err)
	}
	switch r.Op {
	case OpHeartbeat, OpSignOut:
		return nil
	case OpReport:
		return r.validateReport()
	case OpSignIn:
	default:
		return badRequest(fmt.Errorf("operation %q: accepted: %q, %q, %q, %q, %q, %q", r.Op, OpSignIn, OpHeartbeat, OpReport, OpSignOut, OpPrefer, OpSettings))
	}
	if _, err := events.ParseEndpointKind(string(r.Kind)); err != nil {
		return badRequest(err)
	}
	if r.Lease == 0 {
		r.Lease = DefaultLease
	}
	if r.Lease < MinLease || r.Lease > MaxLease {
		return badRequest(fmt.Errorf("lease_s %v: accepted: %v to %v", r.Lease.Seconds(), MinLease.Seconds(), MaxLease.Seconds()))
	}
	if r.Status != events.Unknown {
		if err := r.Status.Settable(events.CauseUser); err != nil {
			return badRequest(err)
		}
	}
	return nil
}

// validateReport checks a report, and makes a zero Cause events.CauseUser.
func (r *EndpointRequest) validateReport() error {
	cause, err := events.ParseClientCause(string(r.Cause))
	if err != nil {
		return badRequest(err)
	}
	r.Cause = cause
	if r.Status != events.Unknown {
		if err := r.Status.Settable(cause); err != nil {
			return badRequest(err)
		}
	}
	if r.InactiveFor < 0 || r.InactiveFor > MaxInactiveFor {
		return badRequest(fmt.Errorf("inactive_for_s %v: accepted: 0 (active) to %v", r.InactiveFor.Seconds(), MaxInactiveFor.Seconds()))
	}
	return nil
}

// EncodeEndpointRequest returns the body of an endpoint's request.
func EncodeEndpointRequest(r EndpointRequest) []byte {
	j := endpointJSON{Endpoint: r.Endpoint, Kind: r.Kind, LeaseS: r.Lease.Seconds(), InactiveForS: r.InactiveFor.Seconds()}
	if r.Op == OpReport && r.Cause != events.CauseUser {
		j.Cause = r.Cause
	}
	switch r.Op {
	case OpPrefer:
		if r.Preferred.Status != events.Unknown {
			j.Status = &r.Preferred.Status
		}
		if !r.Preferred.Until.IsZero() {
			j.Until = r.Preferred.Until.UTC().Format(time.RFC3339Nano)
		}
		b, _ := json.Marshal(j)
		return b
	case OpSettings:
		j.TransmitIdle = &r.Settings.TransmitIdle
		j.IdleAfterS, j.AwayAfterS = r.Settings.IdleAfter.Seconds(), r.Settings.AwayAfter.Seconds()
	}
	if r.Status != events.Unknown {
		j.Status = &r.Status
	}
	b, _ := json.Marshal(j)
	return b
}

// DecodeEndpointRequest reads and validates the body of an endpoint's request
// of op on contact.
func DecodeEndpointRequest(contact, op string, data []byte) (EndpointRequest, error) {
	return decodeEndpointRequest(contact, op, data, true)
}

// decodeEndpointRequest is DecodeEndpointRequest; with fast unset it reads
// data with encoding/json alone, the contract the fast path is held to.
func decodeEndpointRequest(contact, op string, data []byte, fast bool) (EndpointRequest, error) {
	if fast && (op == OpHeartbeat || op == OpSignOut) {
		if endpoint, ok := readEndpointOnly(data); ok {
			r := EndpointRequest{Contact: contact, Op: op, Endpoint: endpoint}
			return r, r.Validate()
		}
	}
	var j endpointJSON
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return EndpointRequest{}, badRequest(fmt.Errorf(`an endpoint's request is {"endpoint":"desk-1","kind":"desktop","lease_s":60,"status":"busy"} `+
			`(kind, lease_s and status for a sign-in only): %w`, err))
	}
	r := EndpointRequest{Contact: contact, Op: op, Endpoint: j.Endpoint, Kind: j.Kind,
		Lease: time.Duration(j.LeaseS * float64(time.Second)), Cause: j.Cause,
		InactiveFor: time.Duration(j.InactiveForS * float64(time.Second))}
	if j.Status != nil {
		// Given, it is a status: "unknown" is none of them (leave
		// "status" out for none).
		if *j.Status == events.Unknown {
			return EndpointRequest{}, badRequest(events.Unknown.Settable(events.CauseUser))
		}
		r.Status = *j.Status
	}
	switch op {
	case OpPrefer:
		r = EndpointRequest{Contact: contact, Op: op, Preferred: events.Preferred{Status: r.Status}}
		if j.Until != "" {
			until, err := time.Parse(time.RFC3339Nano, j.Until)
			if err != nil {
				return EndpointRequest{}, badRequest(fmt.Errorf("until %q: accepted: an RFC 3339 time", j.Until))
			}
			r.Preferred.Until = until.UTC()
		}
		if j.Endpoint != "" || j.Kind != "" || j.LeaseS != 0 || j.Cause != "" || j.InactiveForS != 0 || j.TransmitIdle != nil || j.IdleAfterS != 0 || j.AwayAfterS != 0 {
			return EndpointRequest{}, badRequest(fmt.Errorf(`a prefer is {"status":"busy","until":"<RFC 3339>"}, both optional (no status: cleared)`))
		}
		return r, r.Validate()
	case OpSettings:
		if j.TransmitIdle == nil || j.Endpoint != "" || j.Kind != "" || j.LeaseS != 0 || j.Status != nil || j.Cause != "" || j.InactiveForS != 0 || j.Until != "" {
			return EndpointRequest{}, badRequest(fmt.Errorf(`settings are {"transmit_idle":true,"idle_after_s":300,"away_after_s":1200}, transmit_idle required`))
		}
		r = EndpointRequest{Contact: contact, Op: op, Settings: events.Settings{TransmitIdle: *j.TransmitIdle,
			IdleAfter: time.Duration(j.IdleAfterS * float64(time.Second)), AwayAfter: time.Duration(j.AwayAfterS * float64(time.Second))}}
		return r, r.Validate()
	}
	switch {
	case (op == OpHeartbeat || op == OpSignOut) && (j.Kind != "" || j.LeaseS != 0 || j.Status != nil || j.Cause != "" || j.InactiveForS != 0):
		return EndpointRequest{}, badRequest(fmt.Errorf("a %s names the endpoint only", op))
	case op == OpSignIn && (j.Cause != "" || j.InactiveForS != 0):
		return EndpointRequest{}, badRequest(fmt.Errorf("cause and inactive_for_s are a report's: a sign-in is active, and its status the user's"))
	case op == OpReport && (j.Kind != "" || j.LeaseS != 0):
		return EndpointRequest{}, badRequest(fmt.Errorf("kind and lease_s are a sign-in's: a report keeps them"))
	}
	return r, r.Validate()
}

// SignIn signs an endpoint in (or again, with a new lease and status): the
// contact's published status is then decided from its endpoints.
func (c *Client) SignIn(ctx context.Context, req EndpointRequest) (EndpointResult, error) {
	req.Op = OpSignIn
	return c.endpoint(ctx, events.SignInPrefix, req)
}

// Heartbeat keeps an endpoint's lease. It appends nothing; an endpoint that
// is not signed in (its lease ended) gets ErrConflict, and signs in again.
func (c *Client) Heartbeat(ctx context.Context, contact, endpoint string) (EndpointResult, error) {
	return c.endpoint(ctx, events.HeartbeatPrefix, EndpointRequest{Contact: contact, Op: OpHeartbeat, Endpoint: endpoint})
}

// Report tells what changed on a signed-in endpoint: its status (chosen or
// detected) and its user's activity. It appends an event; an endpoint that is
// not signed in gets ErrConflict.
func (c *Client) Report(ctx context.Context, req EndpointRequest) (EndpointResult, error) {
	req.Op = OpReport
	return c.endpoint(ctx, events.ReportPrefix, req)
}

// Prefer sets the status the contact prefers for every endpoint, until until
// (zero: until cleared); status Unknown clears it. It holds while the contact
// has an endpoint signed in.
func (c *Client) Prefer(ctx context.Context, contact string, status events.Status, until time.Time) (EndpointResult, error) {
	return c.endpoint(ctx, events.PreferPrefix, EndpointRequest{Contact: contact, Op: OpPrefer,
		Preferred: events.Preferred{Status: status, Until: until}})
}

// SetSettings sets the contact's settings: whether idle is transmitted, and
// after how long without input it is idle, then away.
func (c *Client) SetSettings(ctx context.Context, contact string, s events.Settings) (EndpointResult, error) {
	return c.endpoint(ctx, events.SettingsPrefix, EndpointRequest{Contact: contact, Op: OpSettings, Settings: s})
}

// SignOut signs an endpoint out.
func (c *Client) SignOut(ctx context.Context, contact, endpoint string) (EndpointResult, error) {
	return c.endpoint(ctx, events.SignOutPrefix, EndpointRequest{Contact: contact, Op: OpSignOut, Endpoint: endpoint})
}

func (c *Client) endpoint(ctx context.Context, prefix string, req EndpointRequest) (EndpointResult, error) {
	if err := req.Validate(); err != nil {
		return EndpointResult{}, err
	}
	var res EndpointResult
	err := c.Request(ctx, prefix+events.Token(req.Contact), EncodeEndpointRequest(req), &res)
	return res, err
}
