package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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
	// Seq is, for status, the log sequence of the contact's last visible change;
	// for self, of its last event. 0 for a never-seen contact.
	Seq uint64
}

type replyJSON struct {
	Contact string        `json:"contact"`
	Name    string        `json:"name"`
	Status  events.Status `json:"status"`
	Code    int           `json:"code"`
	Seq     uint64        `json:"seq"`
}

// MarshalJSON writes {"contact","name","status","code","seq"}.
func (r Reply) MarshalJSON() ([]byte, error) {
	return appendReply(nil, r), nil
}

// UnmarshalJSON reads what MarshalJSON writes. A contact already in r is what
// the request asked for: the reply's, when it is the same, is not copied.
func (r *Reply) UnmarshalJSON(data []byte) error {
	w := wireReader{b: data, ok: true}
	if fast := w.reply(r.Contact); w.ok && len(bytes.TrimSpace(w.b)) == 0 {
		*r = fast
		return nil
	}
	var j replyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*r = Reply{Contact: j.Contact, Name: j.Name, Status: j.Status, Seq: j.Seq}
	return nil
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

type setResultJSON struct {
	Contact  string        `json:"contact"`
	Status   events.Status `json:"status"`
	Code     int           `json:"code"`
	Previous events.Status `json:"previous"`
	Seq      uint64        `json:"seq"`
	Changed  bool          `json:"changed"`
}

// MarshalJSON writes {"contact","status","code","previous","seq","changed"}.
func (r SetResult) MarshalJSON() ([]byte, error) {
	return appendSetResult(nil, r), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *SetResult) UnmarshalJSON(data []byte) error {
	if fast, ok := readSetResult(data); ok {
		*r = fast
		return nil
	}
	var j setResultJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*r = SetResult{Contact: j.Contact, Status: j.Status, Previous: j.Previous, Seq: j.Seq, Changed: j.Changed}
	return nil
}

// requestFields reads a request body: empty, or one JSON object whose fields are
// all among accepted. Each problem is a 400 that names it.
func requestFields(data []byte, accepted ...string) (map[string]json.RawMessage, error) {
	return requestFieldsUpTo(data, MaxRequestSize, accepted...)
}

func requestFieldsUpTo(data []byte, maxSize int, accepted ...string) (map[string]json.RawMessage, error) {
	if len(data) > maxSize {
		return nil, badRequest(fmt.Errorf("request is %d bytes; at most %d are accepted", len(data), maxSize))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if !utf8.Valid(data) {
		return nil, badRequest(fmt.Errorf("request is not valid UTF-8"))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		why := "" // what a parser would say, for example of a raw control character in a string
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			why = fmt.Sprintf(" (%s at byte %d)", syntax, syntax.Offset)
		}
		return nil, badRequest(fmt.Errorf("request %s is not a JSON object%s; accepted fields: %s",
			events.Quote(string(data)), why, strings.Join(accepted, ", ")))
	}
	var unknown *string
	for name := range fields {
		// The first in byte order, so that the same request is answered alike.
		if !slices.Contains(accepted, name) && (unknown == nil || name < *unknown) {
			unknown = &name
		}
	}
	if unknown != nil {
		return nil, badRequest(fmt.Errorf("unknown field %s; accepted fields: %s",
			events.Quote(*unknown), strings.Join(accepted, ", ")))
	}
	return fields, nil
}

// stringField reads an optional JSON string.
func stringField(fields map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, badRequest(fmt.Errorf("field %s is %s; want a JSON string", name, events.Quote(string(raw))))
	}
	return s, true, nil
}

// seqField reads an optional log sequence: a whole JSON number from 0 to 2^63-1.
func seqField(fields map[string]json.RawMessage, name string) (*uint64, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || n > math.MaxInt64 {
		return nil, badRequest(fmt.Errorf("field %s is %s; want a log sequence, a whole number from 0 to %d",
			name, events.Quote(string(raw)), int64(math.MaxInt64)))
	}
	return &n, nil
}

// DecodeSetRequest reads the body of a set request for contact:
// {"status":"away","name":"Alice","request_id":"...","expect_seq":N,"cause":"user"},
// only status required. The status may be a name, a MISTATUS constant name or a
// number; cause "engine" is the engine's own and is refused.
func DecodeSetRequest(contact string, data []byte) (SetRequest, error) {
	req, cause, ok := readSetRequest(data)
	if !ok {
		var err error
		if req, cause, err = decodeSetRequestFields(data); err != nil {
			return SetRequest{}, err
		}
	}
	req.Contact = contact
	var err error
	if req.Cause, err = events.ParseClientCause(cause); err != nil {
		return SetRequest{}, badRequest(err)
	}
	return req, req.Validate()
}

// decodeSetRequestFields reads a set request field by field, naming whatever is
// wrong; it returns the cause as given.
func decodeSetRequestFields(data []byte) (req SetRequest, cause string, err error) {
	fields, err := requestFields(data, "status", "name", "request_id", "expect_seq", "cause")
	if err != nil {
		return req, "", err
	}
	raw, ok := fields["status"]
	if !ok {
		return req, "", badRequest(fmt.Errorf(`field "status" is required, for example {"status":"away"}`))
	}
	if err := json.Unmarshal(raw, &req.Status); err != nil {
		return req, "", badRequest(err)
	}
	if req.Name, _, err = stringField(fields, "name"); err != nil {
		return req, "", err
	}
	if req.RequestID, _, err = stringField(fields, "request_id"); err != nil {
		return req, "", err
	}
	if cause, _, err = stringField(fields, "cause"); err != nil {
		return req, "", err
	}
	if req.ExpectSeq, err = seqField(fields, "expect_seq"); err != nil {
		return req, "", err
	}
	return req, cause, nil
}

// EncodeSetRequest writes the body DecodeSetRequest reads.
func EncodeSetRequest(req SetRequest) []byte {
	b := make([]byte, 0, 96+len(req.Name)+len(req.RequestID))
	b = append(b, `{"status":"`...)
	b = append(b, req.Status.String()...)
	b = append(b, '"')
	if req.Name != "" {
		b = append(b, `,"name":`...)
		b = events.AppendJSONString(b, req.Name)
	}
	if req.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = events.AppendJSONString(b, req.RequestID)
	}
	if req.ExpectSeq != nil {
		b = append(b, `,"expect_seq":`...)
		b = strconv.AppendUint(b, *req.ExpectSeq, 10)
	}
	if req.Cause != "" {
		b = append(b, `,"cause":`...)
		b = events.AppendJSONString(b, string(req.Cause))
	}
	return append(b, '}')
}

// DecodeReadRequest reads the body of a status or self request: empty, or
// {"min_seq":N}. It returns the minimum sequence, 0 for none.
func DecodeReadRequest(data []byte) (uint64, error) {
	fields, err := requestFields(data, "min_seq")
	if err != nil {
		return 0, err
	}
	n, err := seqField(fields, "min_seq")
	if err != nil || n == nil {
		return 0, err
	}
	return *n, nil
}

// EncodeReadRequest writes the body DecodeReadRequest reads.
func EncodeReadRequest(minSeq uint64) []byte {
	if minSeq == 0 {
		return nil
	}
	return []byte(`{"min_seq":` + strconv.FormatUint(minSeq, 10) + `}`)
}

// DecodeStatusesRequest reads the body of a statuses request:
// {"contacts":["sip:alice@contoso.com",...],"min_seq":N}, 1 to MaxStatuses
// contacts, min_seq optional.
func DecodeStatusesRequest(data []byte) (contacts []string, minSeq uint64, err error) {
	contacts, minSeq, ok := readStatusesRequest(data)
	if !ok {
		if contacts, minSeq, err = decodeStatusesRequestFields(data); err != nil {
			return nil, 0, err
		}
	}
	if len(contacts) == 0 || len(contacts) > MaxStatuses {
		return nil, 0, badRequest(fmt.Errorf(`field "contacts" names %d contacts; want 1 to %d`, len(contacts), MaxStatuses))
	}
	for _, c := range contacts {
		if err := events.ValidateContact(c); err != nil {
			return nil, 0, badRequest(err)
		}
	}
	return contacts, minSeq, nil
}

// decodeStatusesRequestFields reads a statuses request field by field, naming
// whatever is wrong; the checks of the contacts are the caller's.
func decodeStatusesRequestFields(data []byte) (contacts []string, minSeq uint64, err error) {
	fields, err := requestFieldsUpTo(data, MaxStatusesRequestSize, "contacts", "min_seq")
	if err != nil {
		return nil, 0, err
	}
	raw, ok := fields["contacts"]
	if !ok {
		return nil, 0, badRequest(fmt.Errorf(`field "contacts" is required, for example {"contacts":["sip:alice@contoso.com"]}`))
	}
	if err := json.Unmarshal(raw, &contacts); err != nil {
		return nil, 0, badRequest(fmt.Errorf(`field "contacts" is %s; want a JSON array of contact IDs`, events.Quote(string(raw))))
	}
	n, err := seqField(fields, "min_seq")
	if err != nil || n == nil {
		return contacts, 0, err
	}
	return contacts, *n, nil
}

// EncodeStatusesRequest writes the body DecodeStatusesRequest reads:
// {"contacts":[...],"min_seq":N}, byte for byte as encoding/json writes it,
// without going through it (a subscriber writes one per batch it reads).
func EncodeStatusesRequest(contacts []string, minSeq uint64) []byte {
	size := len(`{"contacts":[],"min_seq":18446744073709551615}`)
	for _, c := range contacts {
		size += len(c) + 3
	}
	b := append(make([]byte, 0, size), `{"contacts":`...)
	if contacts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, c := range contacts {
			if i > 0 {
				b = append(b, ',')
			}
			b = events.AppendJSONString(b, c)
		}
		b = append(b, ']')
	}
	if minSeq != 0 {
		b = append(b, `,"min_seq":`...)
		b = strconv.AppendUint(b, minSeq, 10)
	}
	return append(b, '}')
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
	// FeedSeqHeader carries the entry's feed sequence.
	FeedSeqHeader = "Presence-Feed-Seq"
	// CurrentHeader carries the contact's current visible status (a status
	// reply, as JSON) as the engine's projection had it once it had applied the
	// entry's change: never older than the change. It is missing when the
	// projection was not there in time; the subscriber then reads the status
	// itself.
	CurrentHeader = "Presence-Current"
)
