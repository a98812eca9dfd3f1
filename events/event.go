package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Version is the schema version of the records this package writes. Decoders
// accept records of this version and refuse newer ones; fields they do not know
// are ignored, so a version can grow fields without a bump.
const Version = 1

// MaxRequestIDLen is the longest request ID accepted, in bytes.
const MaxRequestIDLen = 128

// Event is one status change of one contact, as the log (the PRESENCE stream)
// holds it: the truth, invisible included. Its position is the stream sequence,
// which is not part of the record. Its JSON form is
//
//	{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"away","previous":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}
//
// An Event is a plain value.
type Event struct {
	Contact   string    // the contact ID
	Name      string    // friendly name as of this change ("" when none was ever given)
	Status    Status    // the new status
	Previous  Status    // the status before this change; Unknown for a first event
	At        time.Time // when the engine accepted the change, UTC
	Cause     Cause     // who or what made the change
	RequestID string    // the caller's request ID, when one was given
}

type eventJSON struct {
	V         int    `json:"v"`
	Contact   string `json:"contact"`
	Name      string `json:"name,omitempty"`
	Status    Status `json:"status"`
	Previous  Status `json:"previous"`
	At        string `json:"at"`
	Cause     Cause  `json:"cause"`
	RequestID string `json:"request_id,omitempty"`
}

// Change is one entry of the feed (the PRESENCE_CHANGES stream): a change that
// subscribers can see. Like OnContactStatusChange it carries only the previous
// visible status; the current one is read from the projection, at least as new as
// Seq. Its JSON form is
//
//	{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","seq":42,"at":"2026-11-24T05:25:57.123456789Z"}
//
// A Change is a plain value.
type Change struct {
	Contact  string    // the contact ID
	Name     string    // friendly name as of this change
	Previous Status    // the previous visible status: never Invisible
	Seq      uint64    // log sequence of the event this change comes from
	At       time.Time // when the change was accepted, UTC
}

type changeJSON struct {
	V        int    `json:"v"`
	Contact  string `json:"contact"`
	Name     string `json:"name,omitempty"`
	Previous Status `json:"previous"`
	Seq      uint64 `json:"seq"`
	At       string `json:"at"`
}

// ChangeOf derives the feed entry of an event at log sequence seq. It reports
// false when the change is not visible (offline to invisible and back): such an
// event has no feed entry. This is the one place where the feed is masked.
func ChangeOf(e Event, seq uint64) (Change, bool) {
	if !VisibleChange(e.Previous, e.Status) {
		return Change{}, false
	}
	return Change{
		Contact:  e.Contact,
		Name:     e.Name,
		Previous: e.Previous.Visible(),
		Seq:      seq,
		At:       e.At,
	}, true
}

// Encode returns the JSON form of the event. It validates nothing: the writer
// validates its input before it builds an event. It panics if Status or Previous
// is not a MISTATUS value, which the writer never builds.
func (e Event) Encode() []byte {
	status, _ := e.Status.name()
	previous, _ := e.Previous.name()
	n := len(`{"v":1,"contact":"","name":"","status":"","previous":"","at":"","cause":"","request_id":""}`) +
		len(e.Contact) + len(e.Name) + len(status) + len(previous) + maxTimeLen + len(e.Cause) + len(e.RequestID)
	return e.AppendJSON(make([]byte, 0, n))
}

// AppendJSON appends the JSON form of the event, byte for byte as Encode returns
// it, to b and returns the extended buffer: with a buffer of the right size it
// does not allocate. It panics, as Encode does, if Status or Previous is not a
// MISTATUS value.
func (e Event) AppendJSON(b []byte) []byte {
	status, ok1 := e.Status.name()
	previous, ok2 := e.Previous.name()
	if !ok1 || !ok2 {
		e.panicEncode()
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"contact":`...)
	b = appendString(b, e.Contact)
	if e.Name != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, e.Name)
	}
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","previous":"`...)
	b = append(b, previous...)
	b = append(b, `","at":"`...)
	b = appendTime(b, e.At)
	b = append(b, `","cause":`...)
	b = appendString(b, string(e.Cause))
	if e.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendString(b, e.RequestID)
	}
	return append(b, '}')
}

// panicEncode panics with encoding/json's account of an event it cannot encode,
// as Encode always has.
func (e Event) panicEncode() {
	_, err := json.Marshal(eventJSON{V: Version, Contact: e.Contact, Name: e.Name, Status: e.Status,
		Previous: e.Previous, At: e.At.UTC().Format(time.RFC3339Nano), Cause: e.Cause, RequestID: e.RequestID})
	panic(fmt.Sprintf("events: encode event of %q: %v", e.Contact, err))
}

// Encode returns the JSON form of the feed entry. It panics if Previous is not a
// MISTATUS value, which ChangeOf never makes.
func (c Change) Encode() []byte {
	previous, _ := c.Previous.name()
	n := len(`{"v":1,"contact":"","name":"","previous":"","seq":,"at":""}`) +
		len(c.Contact) + len(c.Name) + len(previous) + len("18446744073709551615") + maxTimeLen
	return c.AppendJSON(make([]byte, 0, n))
}

// AppendJSON appends the JSON form of the feed entry, byte for byte as Encode
// returns it, to b and returns the extended buffer: with a buffer of the right
// size it does not allocate. It panics, as Encode does, if Previous is not a
// MISTATUS value.
func (c Change) AppendJSON(b []byte) []byte {
	previous, ok := c.Previous.name()
	if !ok {
		c.panicEncode()
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"contact":`...)
	b = appendString(b, c.Contact)
	if c.Name != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, c.Name)
	}
	b = append(b, `,"previous":"`...)
	b = append(b, previous...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"at":"`...)
	b = appendTime(b, c.At)
	return append(b, `"}`...)
}

// panicEncode is Event.panicEncode for feed entries.
func (c Change) panicEncode() {
	_, err := json.Marshal(changeJSON{V: Version, Contact: c.Contact, Name: c.Name, Previous: c.Previous,
		Seq: c.Seq, At: c.At.UTC().Format(time.RFC3339Nano)})
	panic(fmt.Sprintf("events: encode change of %q: %v", c.Contact, err))
}

// maxTimeLen is the length of the longest time appendTime writes in the years
// 0000 to 9999.
const maxTimeLen = len("2006-01-02T15:04:05.999999999Z")

// appendTime appends t as RFC 3339 in UTC with nanoseconds, without trailing
// zeros. The result needs no escaping in a JSON string.
func appendTime(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, time.RFC3339Nano) }

// malformed wraps a decoding problem in ErrMalformed.
func malformed(kind, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, kind, fmt.Sprintf(format, args...))
}

// malformedBy wraps err, which says what is wrong, in ErrMalformed: errors.Is
// finds both.
func malformedBy(kind string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, kind, err)
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// checkVersion refuses a missing or newer schema version.
func checkVersion(kind string, v int) error {
	switch {
	case v == 0:
		return malformed(kind, `"v" is missing or 0; records have "v":%d`, Version)
	case v < 0:
		return malformed(kind, `"v" is %d; records have "v":%d`, v, Version)
	case v > Version:
		return fmt.Errorf("%w: %s has \"v\":%d; this engine reads up to %d", ErrUnsupportedVersion, kind, v, Version)
	}
	return nil
}

// parseTime parses the "at" of a record, RFC 3339, and returns it in UTC.
func parseTime(kind string, at []byte) (time.Time, error) {
	t, ok := parseRFC3339(at)
	if !ok {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, string(at)); err != nil {
			return time.Time{}, malformed(kind, `"at" %s is not an RFC 3339 time`, quote(string(at)))
		}
		t = t.UTC()
	}
	// Years outside 0000-9999 in UTC have no RFC 3339 form: Encode could not
	// write them back.
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, malformed(kind, `"at" %s is outside the years 0000 to 9999 in UTC`, quote(string(at)))
	}
	return t, nil
}

// ValidateRequestID checks a request ID: at most MaxRequestIDLen bytes of UTF-8
// without control characters. The empty ID means "none".
func ValidateRequestID(id string) error {
	bad := func(reason string) error {
		return &ValueError{Field: "request_id", Value: quote(id), Err: ErrMalformed, Reason: reason}
	}
	if len(id) > MaxRequestIDLen {
		return bad("it is " + strconv.Itoa(len(id)) + " bytes; at most 128 are accepted")
	}
	if printableASCII(id, ' ') {
		return nil
	}
	if !utf8.ValidString(id) {
		return bad("it is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return bad("it holds a control character (" + strconv.QuoteRune(r) + "); none are accepted")
		}
	}
	return nil
}

// logCause reads the cause of a logged event: any short printable token, empty
// meaning CauseUser.
func logCause(c Cause) (Cause, error) {
	if c == "" {
		return CauseUser, nil
	}
	if len(c) <= 64 && printableASCII(string(c), ' ') {
		return c, nil
	}
	if len(c) > 64 || !utf8.ValidString(string(c)) || strings.IndexFunc(string(c), unicode.IsControl) >= 0 {
		return "", &ValueError{Field: "cause", Value: quote(string(c)), Err: ErrInvalidCause,
			Reason: "a cause is at most 64 bytes of UTF-8 without control characters"}
	}
	return c, nil
}

// eventFieldsOf is an event as its JSON form spells it, before validation.
type eventFieldsOf struct {
	v                        int
	contact, name, requestID string
	cause                    Cause
	status, previous         Status
	at                       []byte
}

// readEvent reads the fields of an event the fast way, or reports false when
// data is for encoding/json to decide.
func readEvent(data []byte) (j eventFieldsOf, ok bool) {
	var r record
	if !r.read(data, eventFields) ||
		!r.isString(fieldContact) || !r.isString(fieldName) || !r.isString(fieldCause) ||
		!r.isString(fieldRequestID) || !r.isString(fieldAt) {
		return j, false
	}
	if j.v, ok = r.int(fieldV); !ok {
		return j, false
	}
	if j.status, ok = r.status(fieldStatus); !ok {
		return j, false
	}
	if j.previous, ok = r.status(fieldPrevious); !ok {
		return j, false
	}
	// The strings share one allocation, and none of them holds on to data,
	// which the caller may reuse. Keeping one keeps the bytes of the others.
	var sb strings.Builder
	sb.Grow(len(r.text(fieldContact)) + len(r.text(fieldName)) + len(r.text(fieldRequestID)) + len(r.text(fieldCause)))
	r.writeText(&sb, fieldContact)
	contactEnd := sb.Len()
	r.writeText(&sb, fieldName)
	nameEnd := sb.Len()
	r.writeText(&sb, fieldRequestID)
	requestIDEnd := sb.Len()
	switch string(r.text(fieldCause)) { // the usual causes are constants, not copies
	case string(CauseUser):
		j.cause = CauseUser
	case string(CauseEndpoint):
		j.cause = CauseEndpoint
	case string(CauseEngine):
		j.cause = CauseEngine
	default:
		r.writeText(&sb, fieldCause)
	}
	s := sb.String()
	j.contact, j.name, j.requestID = s[:contactEnd], s[contactEnd:nameEnd], s[nameEnd:requestIDEnd]
	if j.cause == "" {
		j.cause = Cause(s[requestIDEnd:])
	}
	j.at = r.text(fieldAt)
	if r.values[fieldAt].escaped {
		j.at = appendUnescaped(nil, j.at)
	}
	return j, true
}

// DecodeEvent decodes and validates a log event. It never panics; every error
// wraps ErrMalformed or ErrUnsupportedVersion and says what is wrong.
func DecodeEvent(data []byte) (Event, error) {
	const kind = "event"
	j, ok := readEvent(data)
	if !ok {
		var jj eventJSON
		if err := strictJSON(data, &jj); err != nil {
			return Event{}, malformedBy(kind, err)
		}
		j = eventFieldsOf{v: jj.V, contact: jj.Contact, name: jj.Name, requestID: jj.RequestID, cause: jj.Cause,
			status: jj.Status, previous: jj.Previous, at: []byte(jj.At)}
	}
	if err := checkVersion(kind, j.v); err != nil {
		return Event{}, err
	}
	if err := ValidateContact(j.contact); err != nil {
		return Event{}, malformedBy(kind, err)
	}
	if err := ValidateName(j.name); err != nil {
		return Event{}, malformedBy(kind, err)
	}
	// Who may set what is the write path's rule (Settable), not the log's: the
	// log holds what was accepted, and a reader takes any protocol status and
	// any cause, so that a rule or a cause added later never hides an event.
	cause, err := logCause(j.cause)
	if err != nil {
		return Event{}, malformedBy(kind, err)
	}
	if j.status == Unknown || j.status.Local() || !j.status.Valid() {
		return Event{}, malformed(kind, `"status" %s is not a status a change can have`, j.status)
	}
	if j.previous.Local() || !j.previous.Valid() {
		return Event{}, malformed(kind, `"previous" %s is not a protocol status`, j.previous)
	}
	if j.previous == j.status {
		return Event{}, malformed(kind, `"previous" and "status" are both %s; an event is a change`, j.status)
	}
	if err := ValidateRequestID(j.requestID); err != nil {
		return Event{}, malformedBy(kind, err)
	}
	at, err := parseTime(kind, j.at)
	if err != nil {
		return Event{}, err
	}
	return Event{Contact: j.contact, Name: j.name, Status: j.status, Previous: j.previous,
		At: at, Cause: cause, RequestID: j.requestID}, nil
}

// changeFieldsOf is a feed entry as its JSON form spells it, before validation.
type changeFieldsOf struct {
	v             int
	contact, name string
	previous      Status
	seq           uint64
	at            []byte
}

// readChange reads the fields of a feed entry the fast way, or reports false
// when data is for encoding/json to decide.
func readChange(data []byte) (j changeFieldsOf, ok bool) {
	var r record
	if !r.read(data, changeFields) ||
		!r.isString(fieldContact) || !r.isString(fieldName) || !r.isString(fieldAt) {
		return j, false
	}
	if j.v, ok = r.int(fieldV); !ok {
		return j, false
	}
	if j.seq, ok = r.uint64(fieldSeq); !ok {
		return j, false
	}
	if j.previous, ok = r.status(fieldPrevious); !ok {
		return j, false
	}
	var sb strings.Builder // one allocation, as in readEvent
	sb.Grow(len(r.text(fieldContact)) + len(r.text(fieldName)))
	r.writeText(&sb, fieldContact)
	contactEnd := sb.Len()
	r.writeText(&sb, fieldName)
	s := sb.String()
	j.contact, j.name = s[:contactEnd], s[contactEnd:]
	j.at = r.text(fieldAt)
	if r.values[fieldAt].escaped {
		j.at = appendUnescaped(nil, j.at)
	}
	return j, true
}

// DecodeChange decodes and validates a feed entry. It never panics; every error
// wraps ErrMalformed or ErrUnsupportedVersion and says what is wrong.
func DecodeChange(data []byte) (Change, error) {
	const kind = "feed entry"
	j, ok := readChange(data)
	if !ok {
		var jj changeJSON
		if err := strictJSON(data, &jj); err != nil {
			return Change{}, malformedBy(kind, err)
		}
		j = changeFieldsOf{v: jj.V, contact: jj.Contact, name: jj.Name, previous: jj.Previous, seq: jj.Seq,
			at: []byte(jj.At)}
	}
	if err := checkVersion(kind, j.v); err != nil {
		return Change{}, err
	}
	if err := ValidateContact(j.contact); err != nil {
		return Change{}, malformedBy(kind, err)
	}
	if err := ValidateName(j.name); err != nil {
		return Change{}, malformedBy(kind, err)
	}
	if j.previous.Local() || !j.previous.Valid() || j.previous == Invisible {
		return Change{}, malformed(kind, `"previous" %s is not a visible status`, j.previous)
	}
	if j.seq == 0 {
		return Change{}, malformed(kind, `"seq" is missing or 0`)
	}
	at, err := parseTime(kind, j.at)
	if err != nil {
		return Change{}, err
	}
	return Change{Contact: j.contact, Name: j.name, Previous: j.previous, Seq: j.seq, At: at}, nil
}

// strictJSON decodes one JSON value into v, refusing invalid UTF-8 (which
// encoding/json would otherwise replace silently) and trailing data.
func strictJSON(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("not valid UTF-8")
	}
	return json.Unmarshal(data, v)
}
