package client

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// A source hands a subscriber the feed's entries in feed order, each once. A
// subscriber has one, chosen by its configuration: a liveSource (the engine's
// repeats on core NATS, and an orderedSource to catch up), an orderedSource
// (an ordered consumer of the feed) or a durableSource (a durable consumer,
// acknowledging each change handled). Each handles the faults of its own
// transport; whether the feed itself went back is the feedWatch's to tell.
type source interface {
	// next waits for the next entries and returns them, prepared. Its error
	// ends the subscription: ctx's, or one wrapping ErrFeedWentBack, or one
	// saying what is gone for good.
	next(ctx context.Context) (batch, error)
	// done says the subscriber is through with e, handed over or stepped
	// over. It reports whether the rest of e's batch may be handed over: if
	// not, the source hands it over again.
	done(e *entry) bool
	// busy says that e's handler failed, and that it will be handed over
	// again after a pause: a durable keeps the server from handing it over
	// meanwhile.
	busy(e *entry)
	// close releases what the source holds on the server.
	close()
}

// entry is one feed entry as a subscriber receives it.
type entry struct {
	data    []byte
	feedSeq uint64
	current *Reply        // the status a repeat carried, if any
	msg     jetstream.Msg // a durable consumer's delivery
	// delivery is a durable consumer's delivery sequence.
	delivery uint64
}

// batch is entries as a source hands them over: changes[i] is entries[i]'s
// change, zero for one that is stepped over; lookup, if any, reads their
// statuses at once.
type batch struct {
	entries []entry
	changes []Change
	lookup  *lookupBatch
}

// entriesOf reads the entries of a batch of feed messages from a consumer.
func entriesOf(msgs []jetstream.Msg) []entry {
	out := make([]entry, len(msgs))
	for i, m := range msgs {
		out[i] = entry{data: m.Data(), msg: m}
		if md, err := m.Metadata(); err == nil {
			out[i].feedSeq, out[i].delivery = md.Sequence.Stream, md.Sequence.Consumer
		}
	}
	return out
}

// drain appends what is already waiting in c to batch, up to max in all.
func drain[T any](batch []T, c <-chan T, max int) []T {
	for len(batch) < max {
		select {
		case m, ok := <-c:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}
