// Package client is what a backend service imports to use presence over NATS:
// the service client (New: Set, Status, Self, Statuses), the Subscriber that
// hands each visible change to a handler, the Hub that fans the feed out to
// many handlers in one process, and the wire types and errors of the service.
// It depends on nats.go and package events only.
//
// A change carries the contact and its previous visible status only, like
// OnContactStatusChange in the Office Communicator SDK; the handler reads the
// current status with Change.Current, which is never older than the change.
// Invisible is never seen here: it reads as offline, and a change between
// offline and invisible is not in the feed.
//
// One Subscriber, three sources, chosen by SubscriberConfig:
//   - By default it follows the engine's repeats of the feed on core NATS
//     (presence.live.*), each carrying the contact's current status, with no
//     JetStream consumer while it keeps up; it reads the feed itself to catch
//     up from where it starts and over any gap.
//   - With Contacts, or a negative LiveCheck, it reads the feed with an
//     ordered consumer.
//   - With Durable, it reads it with a durable consumer and acknowledges each
//     change once its handler returns nil: after a clean stop nothing is missed
//     or repeated; after a crash the change in hand may come again (at least
//     once, in order, each with its feed position). One process at a time runs
//     a given durable.
//
// Whatever the source, changes come in feed order, each once, and a feed that
// goes back under a subscription (the log restored or recreated, the feed
// derived again and so created again) ends it with ErrFeedWentBack rather
// than hand over another history.
//
// Positions are of two kinds, never mixed. A feed position counts visible
// changes only: a change's Seq is its sequence in the feed (the Seq-th visible
// change of the log), and it is what Status and Statuses take as minSeq and
// give as Reply.Seq, and what StartAtSeq starts at. A log sequence counts
// every change, hidden ones included: it is what Set gives (SetResult.Seq,
// ExpectSeq) and Self takes and gives, the contact's own. Nothing a
// subscriber reads carries a log sequence: its gaps would tell that some
// contact went invisible, and when. (Before feed positions, Change.Seq,
// Reply.Seq of Status, minSeq of Status and StartAtSeq were log sequences,
// and the feed entry carried one; Change.FeedSeq, now equal to Seq, is
// deprecated.)
//
// Errors of the service are a *ServiceError; errors.Is tells ErrBadRequest
// (400: nothing applied), ErrConflict (409), ErrTooMany (429) and
// ErrUnavailable (503: a set may or may not have been applied; retry it with
// the same request ID). Unless a comment says otherwise, every exported type is
// safe for concurrent use.
package client
