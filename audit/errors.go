package audit

import (
	"errors"
	"fmt"
)

// ErrBadQuery: a query that cannot select anything as asked. Callers branch on
// it with errors.Is; the error returned says, in its own words and without
// this text, which value is refused and what is accepted.
var ErrBadQuery = errors.New("audit: bad query")

// queryError is a refused query: its text names the bad value and what is
// accepted, for a user to read as it is; it unwraps to ErrBadQuery.
type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

// Unwrap returns ErrBadQuery.
func (e *queryError) Unwrap() error { return ErrBadQuery }

// badQuery returns a queryError with the text format makes of args.
func badQuery(format string, args ...any) error {
	return &queryError{msg: fmt.Sprintf(format, args...)}
}
