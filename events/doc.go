// Package events holds the rules of presence that everything else builds on: the
// MISTATUS statuses with their exact Office Communicator 2007 values, who may set
// which, what others may see (invisible reads as offline; a change between
// offline and invisible is not visible at all), contact IDs and their subject
// tokens, and the versioned JSON records of the log (Event) and of the feed
// (Change).
//
// Visibility is decided here and nowhere else: Status.Visible masks a status,
// VisibleChange says whether a change can be seen, and ChangeOf derives the feed
// entry of an event. Every path that faces a subscriber goes through them.
//
// Two kinds of position, never mixed. An event's position is its log
// sequence, which counts every change, hidden ones included: it is for the
// contact's own writes and reads and for auditors. A feed entry's position,
// its feed position, counts visible changes only: the entry of the F-th
// visible change of the log (in log order, as ChangeOf decides, from the log's
// first event) is at sequence F of the feed stream. It is what subscribers
// see. Feed entries are version 2 (ChangeVersion): they carry no sequence
// ({"v":2,"contact","name","previous","at"}); version 1 entries carried the
// log sequence of their event, and are refused (ErrOldVersion). Which log
// event an entry came from is sealed in its LogRefHeader, for engines only.
//
// Everything in this package is a plain value or a pure function, safe for
// concurrent use.
package events
