package engine

import (
	"errors"
	"fmt"
)

var (
	// ErrBadRequest: the request is malformed or asks for something not
	// accepted. The service answers 400.
	ErrBadRequest = errors.New("engine: bad request")
	// ErrConflict: the contact's last event is not the one expect_seq named. The
	// service answers 409.
	ErrConflict = errors.New("engine: expect_seq does not match")
	// ErrUnavailable: the engine cannot answer now (not ready, the log
	// unreachable, min_seq not reached in time). The service answers 503.
	ErrUnavailable = errors.New("engine: unavailable")
	// ErrTooMany: a contact's sets went past their bound (TooManyError). The
	// service answers 429.
	ErrTooMany = errors.New("engine: too many sets for the contact")
	// ErrForbidden: the server refused the request for the connection's user
	// (a permissions violation): its role does not allow it.
	ErrForbidden = errors.New("engine: not permitted")
	// ErrIncompatibleStream: an existing stream's configuration would break the
	// engine's guarantees.
	ErrIncompatibleStream = errors.New("engine: incompatible stream")
	// ErrFeedWentBack: an ephemeral subscription found the feed going back
	// under it (the log was restored or recreated, and the engine derived the
	// feed again). What it was handed is no longer the feed's history;
	// subscribe again, and read the statuses the application keeps afresh.
	ErrFeedWentBack = errors.New("engine: the feed went back")
)

// ConflictError says what the contact's last event is, when expect_seq named
// another.
type ConflictError struct {
	Contact string
	Expect  uint64 // the expect_seq given
	Actual  uint64 // the log sequence of the contact's last event (0: never seen)
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("expect_seq %d does not match: the last event of %q is at seq %d", e.Expect, e.Contact, e.Actual)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// TooManyError says which contact went past which bound.
type TooManyError struct {
	Contact string
	Rate    float64 // sets a second, on average
	Burst   int     // sets at once
}

func (e *TooManyError) Error() string {
	return fmt.Sprintf("too many sets for %q: at most %g a second (%d at once); this one was refused and appended nothing; retry later",
		e.Contact, e.Rate, e.Burst)
}

// Unwrap returns ErrTooMany.
func (e *TooManyError) Unwrap() error { return ErrTooMany }

// badRequest wraps err (which says what is wrong) as a 400.
func badRequest(err error) error {
	return &requestError{err: err, kind: ErrBadRequest}
}

// unavailable wraps err as a 503.
func unavailable(err error) error {
	return &requestError{err: err, kind: ErrUnavailable}
}

type requestError struct {
	err  error
	kind error
}

func (e *requestError) Error() string   { return e.err.Error() }
func (e *requestError) Unwrap() []error { return []error{e.kind, e.err} }
