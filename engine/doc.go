// Package engine runs the presence engine: the writer that appends status
// changes to the log, the feed derived from it, the service that answers over
// NATS, subscribers that consume the feed, and the embedded nats-server that
// holds it all on one machine.
//
// The log is the JetStream stream PRESENCE (subjects presence.events.<token>):
// every change, the truth, invisible included, for the engine and auditors only.
// The feed is PRESENCE_CHANGES (presence.changes.<token>): one entry per change
// that subscribers can see, carrying only the previous visible status, like
// OnContactStatusChange; a handler reads the current status from the projection,
// never older than the change (Change.Current).
//
// Engine composes the parts; each part can also be used on its own (Writer,
// Feed, Service, Subscriber, Client). Unless a comment says otherwise, every
// exported type is safe for concurrent use.
//
// Choices the contract leaves open, and what this package does:
//   - A set with the status the contact already has appends nothing, name
//     included: the friendly name travels with status changes.
//   - Idle is automatic: it is accepted with cause "endpoint" (a client's
//     inactivity timer) or "engine", not "user".
//   - A retried request_id is answered as the first time: from the writer's
//     memory of recent requests (RequestWindow, 2 minutes by default), from the
//     contact's last event, or from the log's deduplication window. Across
//     several engines, a retry sent to another engine after the window, or after
//     the contact went back to the same status, may be taken as a new set.
//   - Durable subscribers acknowledge each change once their handler returns
//     nil; a clean stop hands back what was fetched and not handled, so the next
//     run resumes with nothing missed or repeated. After a crash of the
//     subscriber, what it had not acknowledged is handed over again after
//     AckWait: at least once, each change with its log sequence.
package engine
