package projections

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

var (
	// ErrCorrupt: the stored projection cannot be read. It is rebuildable from
	// the log.
	ErrCorrupt = errors.New("projections: corrupt projection")
	// ErrNotReached: a wait for a log sequence or a feed position ended
	// before the projection applied it.
	ErrNotReached = errors.New("projections: sequence not reached")
	// ErrClosed: the projection is closed.
	ErrClosed = errors.New("projections: closed")
	// ErrLogMismatch: the log no longer holds what the projection was folded from
	// (it was deleted, recreated, or is behind the checkpoint).
	ErrLogMismatch = errors.New("projections: log does not match the projection")
)

// damaged marks an error of Pebble that says its files are damaged as
// ErrCorrupt; others pass through.
func damaged(err error) error {
	if err != nil && pebble.IsCorruptionError(err) && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("%w: the store's files are damaged: %v", ErrCorrupt, err)
	}
	return err
}

// NotReachedError says how far the projection got while a reader waited.
type NotReachedError struct {
	Want    uint64 // the sequence waited for
	Applied uint64 // the sequence applied when the wait ended
	// Feed says Want and Applied are feed positions (WaitAppliedFeed), not
	// log sequences.
	Feed bool
	Err  error // why the wait ended (the context's error)
}

func (e *NotReachedError) Error() string {
	if e.Feed {
		return fmt.Sprintf("projection has applied the feed up to position %d, not yet %d: %v", e.Applied, e.Want, e.Err)
	}
	return fmt.Sprintf("projection has applied the log up to seq %d, not yet %d: %v", e.Applied, e.Want, e.Err)
}

// Unwrap returns ErrNotReached and the context's error.
func (e *NotReachedError) Unwrap() []error { return []error{ErrNotReached, e.Err} }
