package client

import (
	"time"

	"github.com/presence-engine/presence/events"
)

// MaxRequestSize is the largest request body the service reads, in bytes, but
// for a statuses request (MaxStatusesRequestSize).
const MaxRequestSize = 4096

// MaxStatuses is the most contacts one statuses request may name, and
// MaxStatusesRequestSize the largest body it may have.
const (
	MaxStatuses            = 1000
	MaxStatusesRequestSize = 300 << 10
)

// Reply is a contact's status as the service returns it: for status, what
// subscribers see; for self, the truth. A Reply is a plain value.
type Reply struct {
	Contact string
	Name    string
	Status  events.Status
	// Seq is, for status, the feed position of the contact's last visible
	// change (how many visible changes the log holds up to it); for self, the
	// log sequence of its last event. 0 for a never-seen contact.
	Seq uint64
	// LastActive, for status, is when the contact's user was last active,
	// while every endpoint of it is inactive and it transmits idle
	// (XEP-0319's idle since; Synapse's last_active_ago is the time since);
	// zero otherwise, and for a contact shown offline. Self leaves it zero.
	LastActive time.Time
}

// SetRequest is one status change asked of the service.
type SetRequest struct {
	Contact string
	Status  events.Status
	// Name is the contact's friendly name; empty keeps the one the contact has.
	Name string
	// Cause of the change. Zero means events.CauseUser.
	Cause events.Cause
	// RequestID makes the set idempotent: a retry with the same ID is answered
	// as the first time and appends nothing. Empty means none.
	RequestID string
	// ExpectSeq, when set, is the log sequence the caller expects the contact's
	// last event to have (0: never seen); otherwise the set fails with
	// ErrConflict (409).
	ExpectSeq *uint64
}

// Validate checks r as the service does, and makes a zero Cause
// events.CauseUser. Every problem is an error wrapping ErrBadRequest that
// names the value and what is accepted.
func (r *SetRequest) Validate() error {
	if err := events.ValidateContact(r.Contact); err != nil {
		return badRequest(err)
	}
	cause, err := events.ParseCause(string(r.Cause))
	if err != nil {
		return badRequest(err)
	}
	r.Cause = cause
	if err := r.Status.Settable(cause); err != nil {
		return badRequest(err)
	}
	if err := events.ValidateName(r.Name); err != nil {
		return badRequest(err)
	}
	if err := events.ValidateRequestID(r.RequestID); err != nil {
		return badRequest(err)
	}
	return nil
}

// SetResult is the service's answer to a SetRequest.
type SetResult struct {
	Contact  string
	Status   events.Status // the contact's status after the set
	Previous events.Status // the status before it (equal to Status when nothing changed)
	Seq      uint64        // log sequence of the event; for no change, of the contact's last event
	Changed  bool          // whether an event was appended
}

// StatusesReply is the reply of a statuses request: the statuses in the order
// of the request.
type StatusesReply struct {
	Statuses []Reply `json:"statuses"`
	// asked, when reading a reply, are the contacts the request named.
	asked []string
}

// Headers of an entry the engine repeats on events.LivePrefix.
const (
	// FeedSeqHeader carries the entry's feed sequence: its feed position.
	FeedSeqHeader = "Presence-Feed-Seq"
	// FeedCreatedHeader carries when the feed the entry is stored in was
	// created (RFC 3339, as the stream's info says): a feed derived again is
	// created again, its positions numbered from 1 again, so a repeat of
	// another feed than the one a subscriber follows is not of its history.
	FeedCreatedHeader = "Presence-Feed-Created"
	// CurrentHeader carries the contact's current visible status (a status
	// reply, as JSON, whose seq is a feed position) as the engine's projection
	// had it once it had applied the entry's change: never older than the
	// change. It is missing when the
	// projection was not there in time; the subscriber then reads the status
	// itself.
	CurrentHeader = "Presence-Current"
)
