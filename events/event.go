package events

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Version is the newest schema version of the log's events this package
// writes: 2 for an event that records what the flap window did (Held, Shown,
// OpShow) or LastActive, which a reader of version 1 would misread (it would
// show a change held back); 1 for any other, which engines of version 1 read
// as before. DecodeEvent accepts versions 1 and 2 and refuses newer ones;
// fields it does not know are ignored, so a version can grow fields that
// change no meaning without a bump.
const Version = 2

// version is the schema version e is written with.
func (e Event) version() int {
	if e.Held || e.Shown != Unknown || e.Op == OpShow || !e.LastActive.IsZero() {
		return 2
	}
	return 1
}

// ChangeVersion is the schema version of the feed entries this package
// writes. DecodeChange accepts entries of this version only: version 1 entries
// carried the log sequence of their event ("seq"), which counts hidden changes
// too, and are refused (ErrOldVersion); an engine that finds them derives the
// feed again.
const ChangeVersion = 2

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

	// What the event records besides the published status (Op), and for
	// each op its fields: the endpoint (signin, report, signout, expire),
	// its state (signin, report), the preferred status (prefer), the
	// settings (settings). An op may leave Status as Previous was.
	Op        Op
	Endpoint  string
	EP        EndpointState
	Preferred Preferred
	Settings  Settings

	// What subscribers are shown of it, when the owner's flap window
	// coalesced it (docs/presence.md): Held marks a change held back, which has no feed
	// entry; Shown, on a change after held ones, is the visible status
	// subscribers were last shown, which its feed entry names as previous
	// in place of Previous's. Unknown: Previous's.
	Held  bool
	Shown Status

	// LastActive is, on an event the owner decided from the contact's
	// endpoints, when its user was last active (XEP-0319's idle since): the
	// most recent input of any live endpoint, once every one is inactive
	// and the contact transmits idle. Zero otherwise.
	LastActive time.Time
}

// Change is one entry of the feed (the PRESENCE_CHANGES stream): a change that
// subscribers can see. Like OnContactStatusChange it carries only the previous
// visible status; the current one is read from the projection. Its JSON form
// (ChangeVersion 2) is
//
//	{"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","at":"2026-11-24T05:25:57.123456789Z"}
//
// It carries no position: an entry's position, its feed position, is its
// sequence in the feed stream, which counts visible changes only (the
// entry at feed sequence F is the F-th visible change of the log). The log
// sequence of its event is not in it, nor in anything else a subscriber
// reads: it counts hidden changes too. The engine keeps it sealed in the
// entry's LogRefHeader, which only engines can open.
//
// A Change is a plain value.
type Change struct {
	Contact  string    // the contact ID
	Name     string    // friendly name as of this change
	Previous Status    // the previous visible status: never Invisible
	At       time.Time // when the change was accepted, UTC
}

// ChangeOf derives the feed entry of an event. It reports false when
// subscribers are not shown the change: it is not visible (offline to
// invisible and back, or back to what they were shown), or it is held. Such
// an event has no feed entry, and does not count as a feed position. This is
// the one place where the feed is masked.
func ChangeOf(e Event) (Change, bool) {
	if !e.Visible() {
		return Change{}, false
	}
	return Change{
		Contact:  e.Contact,
		Name:     e.Name,
		Previous: e.shownBefore(),
		At:       e.At,
	}, true
}

// Visible reports whether subscribers are shown the event: whether it has a
// feed entry (ChangeOf).
func (e Event) Visible() bool {
	return !e.Held && e.shownBefore() != e.Status.Visible()
}

// shownBefore is the visible status subscribers were shown before the event.
func (e Event) shownBefore() Status {
	if e.Shown != Unknown {
		return e.Shown
	}
	return e.Previous.Visible()
}

// malformed wraps a decoding problem in ErrMalformed.
func malformed(kind, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, kind, fmt.Sprintf(format, args...))
}

// malformedBy wraps err, which says what is wrong, in ErrMalformed: errors.Is
// finds both.
func malformedBy(kind string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, kind, err)
}

// checkVersion refuses a missing or newer schema version than want, and an
// older one than oldest.
func checkVersion(kind string, v, oldest, want int) error {
	switch {
	case v == 0:
		return malformed(kind, `"v" is missing or 0; records have "v":%d`, want)
	case v < 0:
		return malformed(kind, `"v" is %d; records have "v":%d`, v, want)
	case v > want:
		return fmt.Errorf("%w: %s has \"v\":%d; this engine reads up to %d", ErrUnsupportedVersion, kind, v, want)
	case v < oldest:
		return fmt.Errorf("%w: %s has \"v\":%d, a format this engine no longer reads; it reads \"v\":%d", ErrOldVersion, kind, v, want)
	}
	return nil
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

// DecodeEvent decodes and validates a log event. It never panics; every error
// wraps ErrMalformed or ErrUnsupportedVersion and says what is wrong.
func DecodeEvent(data []byte) (Event, error) { return decodeEvent(data, true) }

// decodeEvent is DecodeEvent. With fast unset it reads data with encoding/json
// alone: the contract that the tests hold the fast path to.
func decodeEvent(data []byte, fast bool) (Event, error) {
	const kind = "event"
	var j eventJSON
	if !fast || !readEvent(data, &j) {
		var slow eventJSON // apart from j, which stays on the stack
		if err := strictJSON(data, &slow); err != nil {
			return Event{}, malformedBy(kind, err)
		}
		j = slow
	}
	if err := checkVersion(kind, j.V, 1, Version); err != nil {
		return Event{}, err
	}
	if err := ValidateContact(j.Contact); err != nil {
		return Event{}, malformedBy(kind, err)
	}
	if err := ValidateName(j.Name); err != nil {
		return Event{}, malformedBy(kind, err)
	}
	// Who may set what is the write path's rule (Settable), not the log's: the
	// log holds what was accepted, and a reader takes any protocol status and
	// any cause, so that a rule or a cause added later never hides an event.
	cause, err := logCause(j.Cause)
	if err != nil {
		return Event{}, malformedBy(kind, err)
	}
	if j.Status == Unknown || j.Status.Local() || !j.Status.Valid() {
		return Event{}, malformed(kind, `"status" %s is not a status a change can have`, j.Status)
	}
	if j.Previous.Local() || !j.Previous.Valid() {
		return Event{}, malformed(kind, `"previous" %s is not a protocol status`, j.Previous)
	}
	if j.Previous == j.Status && j.Op == OpSet {
		return Event{}, malformed(kind, `"previous" and "status" are both %s; a set is a change`, j.Status)
	}
	if j.Shown != Unknown && (j.Shown.Local() || !j.Shown.Valid() || j.Shown == Invisible) {
		return Event{}, malformed(kind, `"shown" %s is not a visible status`, j.Shown)
	}
	if j.Held && j.Shown != Unknown {
		return Event{}, malformed(kind, `"held" and "shown" together: a change held back shows nothing`)
	}
	if err := ValidateRequestID(j.RequestID); err != nil {
		return Event{}, malformedBy(kind, err)
	}
	at, err := parseTime(kind, j.At)
	if err != nil {
		return Event{}, err
	}
	e := Event{Contact: j.Contact, Name: j.Name, Status: j.Status, Previous: j.Previous,
		At: at, Cause: cause, RequestID: j.RequestID, Held: j.Held, Shown: j.Shown}
	if j.LastActive != "" {
		if e.LastActive, err = parseTime(kind, j.LastActive); err != nil {
			return Event{}, malformed(kind, `"last_active" %s is not an RFC 3339 time in the years 0000 to 9999`, quote(j.LastActive))
		}
	}
	if err := decodeOp(kind, &j, &e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// DecodeChange decodes and validates a feed entry. It never panics; every error
// wraps ErrMalformed, ErrUnsupportedVersion (newer than ChangeVersion) or
// ErrOldVersion (a version 1 entry) and says what is wrong.
func DecodeChange(data []byte) (Change, error) { return decodeChange(data, true) }

// decodeChange is DecodeChange; fast is as for decodeEvent.
func decodeChange(data []byte, fast bool) (Change, error) {
	const kind = "feed entry"
	var j changeJSON
	if !fast || !readChange(data, &j) {
		var slow changeJSON // apart from j, which stays on the stack
		if err := strictJSON(data, &slow); err != nil {
			return Change{}, malformedBy(kind, err)
		}
		j = slow
	}
	if err := checkVersion(kind, j.V, ChangeVersion, ChangeVersion); err != nil {
		if errors.Is(err, ErrOldVersion) {
			err = fmt.Errorf("%w (version 1 entries carry the log sequence of their event; the engine derives the feed again as version %d when it upgrades)",
				err, ChangeVersion)
		}
		return Change{}, err
	}
	if err := ValidateContact(j.Contact); err != nil {
		return Change{}, malformedBy(kind, err)
	}
	if err := ValidateName(j.Name); err != nil {
		return Change{}, malformedBy(kind, err)
	}
	if j.Previous.Local() || !j.Previous.Valid() || j.Previous == Invisible {
		return Change{}, malformed(kind, `"previous" %s is not a visible status`, j.Previous)
	}
	at, err := parseTime(kind, j.At)
	if err != nil {
		return Change{}, err
	}
	return Change{Contact: j.Contact, Name: j.Name, Previous: j.Previous, At: at}, nil
}

// parseTime parses the "at" of a record, RFC 3339, and returns it in UTC.
func parseTime(kind, at string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, malformed(kind, `"at" %s is not an RFC 3339 time`, quote(at))
	}
	// Years outside 0000-9999 in UTC have no RFC 3339 form: Encode could not
	// write them back.
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, malformed(kind, `"at" %s is outside the years 0000 to 9999 in UTC`, quote(at))
	}
	return t.UTC(), nil
}
