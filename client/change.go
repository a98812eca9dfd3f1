package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/presence-engine/presence/events"
)

// Change is one visible change handed to a subscriber: the contact and its
// previous visible status only, like OnContactStatusChange. The current status is
// read with Current, which is never older than the change.
type Change struct {
	Contact  string
	Name     string        // friendly name as of the change
	Previous events.Status // the previous visible status; never Invisible
	// Seq is the change's feed position: its sequence in the feed, which
	// counts visible changes only (the change is the Seq-th visible change).
	// It is what a status read takes as min_seq, and what a status reply's
	// Seq is compared with.
	Seq uint64
	At  time.Time // when the change was accepted
	// FeedSeq is Seq, under the name it had when Seq was a log sequence.
	//
	// Deprecated: use Seq.
	FeedSeq uint64

	reader Reader
	memo   lookup // shared with other changes or subscribers: fewer reads
}

// Current reads the contact's current visible status from the projection, once
// it has applied the feed at least up to this change (min_seq Seq): it may be
// newer than the change, never older.
func (c Change) Current(ctx context.Context) (Reply, error) {
	if c.reader == nil {
		return Reply{}, errors.New("client: change has no reader")
	}
	if c.memo != nil {
		return c.memo.current(ctx, &c)
	}
	return c.reader.Status(ctx, c.Contact, c.Seq)
}

// Handler handles one change. Returning an error has the change handed over
// again, after a pause, until it returns nil or the subscriber stops.
type Handler func(ctx context.Context, c Change) error

// lookup serves Current for changes that share their reads.
type lookup interface {
	current(ctx context.Context, c *Change) (Reply, error)
}

// carried is the lookup of a change whose repeat carried the current status.
type carried Reply

func (k *carried) current(context.Context, *Change) (Reply, error) { return Reply(*k), nil }

// lookupOne reads the status of one change once, for every subscriber of a
// hub that asks; a failed read is not kept.
type lookupOne struct {
	once  sync.Once
	reply Reply
	err   error
}

func (l *lookupOne) current(ctx context.Context, c *Change) (Reply, error) {
	l.once.Do(func() { l.reply, l.err = c.reader.Status(ctx, c.Contact, c.Seq) })
	if l.err != nil {
		return c.reader.Status(ctx, c.Contact, c.Seq)
	}
	return l.reply, nil
}

// lookupBatch reads the status of every contact of a batch of changes at once,
// on the first Current of the batch, at least as new as its last change.
type lookupBatch struct {
	reader   BatchReader
	contacts []string
	seen     map[string]bool
	minSeq   uint64

	once    sync.Once
	replies map[string]Reply
	err     error
}

func (b *lookupBatch) add(contact string, seq uint64) {
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	if !b.seen[contact] {
		b.seen[contact] = true
		b.contacts = append(b.contacts, contact)
	}
	b.minSeq = max(b.minSeq, seq)
}

// prefetch reads the batch now, on the calling goroutine, unless a Current
// did already: run in the background, the read travels while the changes
// before the batch are being handled.
func (b *lookupBatch) prefetch(ctx context.Context) {
	b.once.Do(func() { b.load(ctx) })
}

func (b *lookupBatch) current(ctx context.Context, c *Change) (Reply, error) {
	b.once.Do(func() { b.load(ctx) })
	if r, ok := b.replies[c.Contact]; ok && b.err == nil {
		return r, nil
	}
	// The batch read failed: read this one on its own, which may succeed.
	return c.reader.Status(ctx, c.Contact, c.Seq)
}

// load reads the whole batch; it runs once.
func (b *lookupBatch) load(ctx context.Context) {
	replies, err := b.reader.Statuses(ctx, b.contacts, b.minSeq)
	if err != nil {
		b.err = err
		return
	}
	b.replies = make(map[string]Reply, len(replies))
	for _, r := range replies {
		b.replies[r.Contact] = r
	}
}
