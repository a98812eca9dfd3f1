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
	OpSignOut   = "signout"
)

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
	Endpoint string              `json:"endpoint"`
	Kind     events.EndpointKind `json:"kind,omitempty"`
	LeaseS   float64             `json:"lease_s,omitempty"`
	Status   *events.Status      `json:"status,omitempty"`
}

// Validate checks r as the service does, and makes a zero Lease of a sign-in
// DefaultLease. Every problem is an error wrapping ErrBadRequest that names
// the value and what is accepted.
func (r *EndpointRequest) Validate() error {
	if err := events.ValidateContact(r.Contact); err != nil {
		return badRequest(err)
	}
	if err := events.ValidateEndpointID(r.Endpoint); err != nil {
		return badRequest(err)
	}
	switch r.Op {
	case OpHeartbeat, OpSignOut:
		return nil
	case OpSignIn:
	default:
		return badRequest(fmt.Errorf("endpoint operation %q: accepted: %q, %q, %q", r.Op, OpSignIn, OpHeartbeat, OpSignOut))
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

// EncodeEndpointRequest returns the body of an endpoint's request.
func EncodeEndpointRequest(r EndpointRequest) []byte {
	j := endpointJSON{Endpoint: r.Endpoint, Kind: r.Kind, LeaseS: r.Lease.Seconds()}
	if r.Status != events.Unknown {
		j.Status = &r.Status
	}
	b, _ := json.Marshal(j)
	return b
}

// DecodeEndpointRequest reads and validates the body of an endpoint's request
// of op on contact.
func DecodeEndpointRequest(contact, op string, data []byte) (EndpointRequest, error) {
	var j endpointJSON
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return EndpointRequest{}, badRequest(fmt.Errorf(`an endpoint's request is {"endpoint":"desk-1","kind":"desktop","lease_s":60,"status":"busy"} `+
			`(kind, lease_s and status for a sign-in only): %w`, err))
	}
	r := EndpointRequest{Contact: contact, Op: op, Endpoint: j.Endpoint, Kind: j.Kind,
		Lease: time.Duration(j.LeaseS * float64(time.Second))}
	if j.Status != nil {
		// Given, it is a status the user chose: "unknown" is none of them
		// (leave "status" out for none).
		if err := j.Status.Settable(events.CauseUser); err != nil {
			return EndpointRequest{}, badRequest(err)
		}
		r.Status = *j.Status
	}
	if op != OpSignIn && (j.Kind != "" || j.LeaseS != 0 || j.Status != nil) {
		return EndpointRequest{}, badRequest(fmt.Errorf("a %s names the endpoint only: kind, lease_s and status are a sign-in's", op))
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
