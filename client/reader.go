package client

import "context"

// Reader reads the current status of contacts. The Client, over NATS, and the
// engine's in-process reader both implement it, so that a subscriber's
// handler reads the same way wherever it runs.
type Reader interface {
	// Status returns the contact as everyone else sees it, from a projection
	// that has applied the feed at least up to the feed position minSeq (0: no
	// minimum).
	Status(ctx context.Context, contact string, minSeq uint64) (Reply, error)
}

// BatchReader reads the current status of many contacts at once: what a
// subscriber uses to read, in one request, the statuses of a batch of changes.
type BatchReader interface {
	Reader
	// Statuses returns the contacts as everyone else sees them, in the order
	// given, from a projection that has applied the feed at least up to the
	// feed position minSeq.
	Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]Reply, error)
}
