package client

import (
	"errors"
	"fmt"
)

var (
	// ErrBadRequest: the request is malformed or asks for something not
	// accepted (400). Nothing was applied.
	ErrBadRequest = errors.New("presence: bad request")
	// ErrConflict: the contact's last event is not the one expect_seq named
	// (409). Nothing was applied.
	ErrConflict = errors.New("presence: expect_seq does not match")
	// ErrTooMany: a contact's sets went past their bound (429). Nothing was
	// applied; the message says when to retry.
	ErrTooMany = errors.New("presence: too many sets for the contact")
	// ErrUnavailable: the engine cannot answer now (503: not ready, the log
	// unreachable, min_seq not reached in time, no engine answering). A set
	// may or may not have been applied: retry it with the same request ID.
	ErrUnavailable = errors.New("presence: unavailable")
	// ErrForbidden: the server refused the request for the connection's user
	// (a permissions violation): its role does not allow it.
	ErrForbidden = errors.New("presence: not permitted")
	// ErrFeedWentBack: a subscription found the feed going back under it (the
	// log was restored or recreated, and the engine derived the feed again).
	// What it was handed is no longer the feed's history; subscribe again,
	// and read the statuses the application keeps afresh.
	ErrFeedWentBack = errors.New("presence: the feed went back")
	// ErrSlowSubscriber: a hub subscriber fell so far behind that its queue
	// filled up, and was cut off so as not to hold up the others.
	ErrSlowSubscriber = errors.New("presence: subscriber too slow, cut off")
)

// ServiceError is an error reply of the service: its code and description, as
// the micro error headers carry them.
type ServiceError struct {
	Code        int    // 400, 409, 429, 503 or 500
	Description string // what went wrong, naming the bad value
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s (%d)", e.Description, e.Code)
}

// Unwrap maps the code to ErrBadRequest, ErrConflict, ErrTooMany or
// ErrUnavailable.
func (e *ServiceError) Unwrap() error {
	switch e.Code {
	case 400:
		return ErrBadRequest
	case 409:
		return ErrConflict
	case 429:
		return ErrTooMany
	case 503:
		return ErrUnavailable
	}
	return nil
}

// KindError is an error of a kind callers branch on (ErrBadRequest,
// ErrUnavailable, ...) in words of its own: errors.Is finds both the kind and
// what Err wraps.
type KindError struct {
	Kind error // one of the package's sentinels
	Err  error // what went wrong, naming the bad value
}

func (e *KindError) Error() string   { return e.Err.Error() }
func (e *KindError) Unwrap() []error { return []error{e.Kind, e.Err} }

// badRequest wraps err (which says what is wrong) as a 400.
func badRequest(err error) error { return &KindError{Kind: ErrBadRequest, Err: err} }

// unavailable wraps err as a 503.
func unavailable(err error) error { return &KindError{Kind: ErrUnavailable, Err: err} }
