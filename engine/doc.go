// Package engine is the server side of presence: the writers that append
// status changes to the log's partitions this engine owns, the feed derived
// from the log, the service that answers
// over NATS, the projection's wiring, the admin operations, and the embedded
// nats-server that holds it all on one machine. What a backend imports to talk
// to it, subscribe and read is package client.
//
// The log is the JetStream stream PRESENCE (subjects presence.events.<token>):
// every change, the truth, invisible included, for the engine and auditors only.
// It has P partitions (events.Partition), fixed when it is created: with one,
// PRESENCE is written directly; with several, each partition is a stream of
// its own that PRESENCE sources, so that every reader sees one order.
// The feed is PRESENCE_CHANGES (presence.changes.<token>): one entry per change
// that subscribers can see, carrying only the previous visible status, like
// OnContactStatusChange; a handler reads the current status from the projection,
// never older than the change (client.Change.Current). An entry's position is
// its sequence in the feed, its feed position, which counts visible changes
// only; status and statuses take and give feed positions, set and self log
// sequences. The feed knows which log event each entry came from by a header
// sealed under a key only engines read (PRESENCE_ENGINE). Where it must be
// derived again, it is deleted and created again, numbered from 1 again.
//
// Engine composes the parts: Open starts the server and opens the stores, Run
// runs them. One engine at a time owns each partition (a lease in
// events.OwnersBucket), and the engines share the partitions out: its Writer
// decides each set of the partition's contacts in memory and appends; the
// other engines pass their sets on to it. The owner of partition 0 also
// derives the feed (docs/engines.md). LocalReader
// reads the projection in-process (client.BatchReader) for subscribers and
// hubs in the engine's process. Unless a comment says otherwise, every exported type is
// safe for concurrent use.
//
// Choices the contract leaves open, and what this package does:
//   - A set with the status the contact already has appends nothing, name
//     included: the friendly name travels with status changes.
//   - Idle is automatic: it is accepted with cause "endpoint" (a client's
//     inactivity timer) or "engine", not "user".
//   - A retried request_id is answered as the first time within the log's
//     deduplication window (2 minutes by default), whatever happened in between
//     and whichever engine it reaches; after the window it is a new set.
package engine
