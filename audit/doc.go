// Package audit reads the log, the truth with invisible included, for the
// engine's auditors and operators; nothing here may reach a subscriber.
//
//   - Log.Replay hands over the events a Query selects (contacts, a range of
//     sequences or of times), in log order, as the log stood when it began,
//     holding a few thousand events in memory whatever the log's size.
//   - Log.At gives a contact's state at a point of the log's history (a
//     sequence or a time): its own status and what everyone else saw, with
//     the feed position a status reply would have given.
//   - Log.Report sums up how a contact spent a window: time in each status,
//     changes by cause, changes held back, and its endpoints.
//   - Verify folds the log afresh and checks the live projection, every
//     contact's chain of previous statuses and the feed against it.
//
// Bad queries are refused with an error that wraps ErrBadQuery and names
// the value. The presence commands replay, status --at, report and verify
// are built on it.
package audit
