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
// Everything in this package is a plain value or a pure function, safe for
// concurrent use.
package events
