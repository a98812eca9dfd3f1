package engine

import (
	"errors"
	"fmt"

	"github.com/presence-engine/presence/client"
)

// ErrIncompatibleStream: an existing stream's configuration would break the
// engine's guarantees.
var ErrIncompatibleStream = errors.New("engine: incompatible stream")

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

// Unwrap returns client.ErrConflict.
func (e *ConflictError) Unwrap() error { return client.ErrConflict }

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

// Unwrap returns client.ErrTooMany.
func (e *TooManyError) Unwrap() error { return client.ErrTooMany }

// badRequest wraps err (which says what is wrong) as a 400.
func badRequest(err error) error { return &client.KindError{Kind: client.ErrBadRequest, Err: err} }

// unavailable wraps err as a 503.
func unavailable(err error) error { return &client.KindError{Kind: client.ErrUnavailable, Err: err} }
