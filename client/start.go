package client

import "time"

// Start says where a subscription without a stored position begins.
type Start struct {
	kind int
	seq  uint64
	at   time.Time
}

const (
	startNew = iota
	startAll
	startSeq
	startTime
)

// StartNew begins with changes after the subscription starts. It is the default.
func StartNew() Start { return Start{kind: startNew} }

// StartAll begins with the first change the feed holds.
func StartAll() Start { return Start{kind: startAll} }

// StartAtSeq begins with the change at feed position seq (a Change's Seq, or a
// status reply's), or the first after it the feed holds; 0 is as 1. A
// position the feed has not reached yet begins with the change at it, once it
// comes.
func StartAtSeq(seq uint64) Start { return Start{kind: startSeq, seq: seq} }

// StartAtTime begins with the first change stored in the feed at or after t
// (an entry is stored a moment after its change is accepted). From a time
// still to come, the changes accepted before it are stepped over (by a durable,
// acknowledged without being handed over).
//
// A Hub does not start at a time: NewHub refuses it.
func StartAtTime(t time.Time) Start { return Start{kind: startTime, at: t} }
