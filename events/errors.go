package events

import (
	"errors"
	"strconv"
)

// Sentinel errors, for callers that branch with errors.Is.
var (
	// ErrUnknownStatus: the input is not a MISTATUS state.
	ErrUnknownStatus = errors.New("events: unknown status")
	// ErrNotSettable: the status exists but no write path accepts it.
	ErrNotSettable = errors.New("events: status cannot be set")
	// ErrInvalidCause: the cause of a change is not one of the accepted ones.
	ErrInvalidCause = errors.New("events: invalid cause")
	// ErrInvalidContact: a contact ID breaks the rules of contact IDs.
	ErrInvalidContact = errors.New("events: invalid contact ID")
	// ErrInvalidToken: a subject token does not decode to a contact ID.
	ErrInvalidToken = errors.New("events: invalid subject token")
	// ErrInvalidName: a friendly name breaks the rules of names.
	ErrInvalidName = errors.New("events: invalid name")
	// ErrMalformed: an event or feed entry does not decode.
	ErrMalformed = errors.New("events: malformed record")
	// ErrUnsupportedVersion: a record has a schema version this code cannot
	// read, newer than it knows.
	ErrUnsupportedVersion = errors.New("events: unsupported schema version")
	// ErrOldVersion: a record has a schema version older than this code reads
	// (a feed entry of version 1).
	ErrOldVersion = errors.New("events: old schema version")
)

// StatusError says which status input was refused and why.
type StatusError struct {
	Input  string // the input as given, quoted, or the status with its value
	Reason string // why it was refused and what is accepted
	Err    error  // ErrUnknownStatus or ErrNotSettable
}

func (e *StatusError) Error() string {
	if errors.Is(e.Err, ErrNotSettable) {
		return "status " + e.Input + " cannot be set: " + e.Reason
	}
	return "unknown status " + e.Input + ": " + e.Reason
}

// Unwrap returns the sentinel.
func (e *StatusError) Unwrap() error { return e.Err }

// ValueError says which value of a field was refused and what is accepted.
type ValueError struct {
	Field  string // "contact", "name", "token", ...
	Value  string // the value, quoted and shortened for display
	Reason string // what is wrong and what is accepted
	Err    error  // the sentinel
}

func (e *ValueError) Error() string {
	return "invalid " + e.Field + " " + e.Value + ": " + e.Reason
}

// Unwrap returns the sentinel.
func (e *ValueError) Unwrap() error { return e.Err }

// quote renders an input for an error message: quoted, with anything unprintable
// escaped, and shortened past 64 bytes so a huge input does not make a huge error.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return strconv.Quote(s)
}

// Quote renders an outside value for an error message the way this package does:
// quoted, escaped and shortened.
func Quote(s string) string { return quote(s) }
