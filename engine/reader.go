package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// LocalReader reads a projection in-process: it implements client.BatchReader
// for subscribers in the engine's process, and answers the service's reads.
// Positions are of two kinds, never mixed: Status and Statuses take and give
// feed positions (visible changes only), Self takes and gives log sequences
// (the contact's own). It is safe for concurrent use.
type LocalReader struct {
	Projection *projections.Projection
	// Ready reports whether the projection has caught up with the log; reads
	// without a minimum sequence are refused (ErrUnavailable) until it has. Nil
	// means always ready.
	Ready func() bool
	// Timeout bounds the wait for a minimum sequence. Zero means 2s.
	Timeout time.Duration
	// Partitions is how many partitions the log has: a contact's own log
	// sequences (Self's) are of its partition's stream. Zero means 1.
	Partitions int
}

// Applied returns the log sequence the projection has applied up to.
func (r *LocalReader) Applied() uint64 { return r.Projection.Applied() }

// AppliedFeed returns the feed position the projection has applied up to.
func (r *LocalReader) AppliedFeed() uint64 { return r.Projection.AppliedFeed() }

// wait waits until the projection has applied minSeq: a feed position with
// feed, else a log sequence.
func (r *LocalReader) wait(ctx context.Context, contact string, minSeq uint64, feed bool) error {
	if err := events.ValidateContact(contact); err != nil {
		return badRequest(err)
	}
	if minSeq == 0 {
		if r.Ready != nil && !r.Ready() {
			// No sequence in the message: how far the log goes counts hidden
			// events too.
			return unavailable(errors.New("not ready: the projection is catching up with the log; retry, or pass min_seq"))
		}
		return nil
	}
	part := events.Partition(contact, r.Partitions)
	applied := func() uint64 { return r.Projection.AppliedIn(part) }
	waitFor := func(ctx context.Context, seq uint64) error { return r.Projection.WaitAppliedIn(ctx, part, seq) }
	if feed {
		applied, waitFor = r.Projection.AppliedFeed, r.Projection.WaitAppliedFeed
	}
	if applied() >= minSeq {
		return nil // most reads: no timer to set up
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := waitFor(ctx, minSeq); err != nil {
		// Nor here how far the projection got: the log sequence it applied
		// counts hidden events, and a self read says nothing of others.
		return unavailable(fmt.Errorf("min_seq %d not reached within %s; retry (%w)", minSeq, timeout, projections.ErrNotReached))
	}
	return nil
}

// Status returns the contact as everyone else sees it, once the projection has
// applied the feed position minSeq: invisible reads offline, and a hidden
// change changes nothing in the reply. Its Seq is the feed position of the
// contact's last visible change; a never-seen contact reads Unknown with Seq 0.
func (r *LocalReader) Status(ctx context.Context, contact string, minSeq uint64) (client.Reply, error) {
	if err := r.wait(ctx, contact, minSeq, true); err != nil {
		return client.Reply{}, err
	}
	v, err := r.Projection.View(contact)
	if err != nil {
		return client.Reply{}, r.failed(err)
	}
	return client.Reply{Contact: contact, Name: v.Name, Status: v.Status, Seq: v.Seq, LastActive: v.LastActive}, nil
}

// Statuses returns the contacts as everyone else sees them, in the order given,
// as Status does, once the projection has applied the feed position minSeq.
func (r *LocalReader) Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]client.Reply, error) {
	if len(contacts) == 0 {
		return nil, nil
	}
	if err := r.wait(ctx, contacts[0], minSeq, true); err != nil {
		return nil, err
	}
	for _, c := range contacts {
		if err := events.ValidateContact(c); err != nil {
			return nil, badRequest(err)
		}
	}
	views, err := r.Projection.Views(contacts)
	if err != nil {
		return nil, r.failed(err)
	}
	out := make([]client.Reply, len(contacts))
	for i, v := range views {
		out[i] = client.Reply{Contact: contacts[i], Name: v.Name, Status: v.Status, Seq: v.Seq, LastActive: v.LastActive}
	}
	return out, nil
}

// Self returns the contact's own status, invisible included (MyStatus), once
// the projection has applied the log sequence minSeq (a set's seq); its Seq is
// the log sequence of the contact's last event. Only the contact itself may be
// given it.
func (r *LocalReader) Self(ctx context.Context, contact string, minSeq uint64) (client.Reply, error) {
	if err := r.wait(ctx, contact, minSeq, false); err != nil {
		return client.Reply{}, err
	}
	st, _, err := r.Projection.State(contact)
	if err != nil {
		return client.Reply{}, r.failed(err)
	}
	return client.Reply{Contact: contact, Name: st.Name, Status: st.Status, Seq: st.Seq}, nil
}

func (r *LocalReader) failed(err error) error {
	if errors.Is(err, projections.ErrClosed) {
		return unavailable(err)
	}
	return fmt.Errorf("read the projection: %w", err)
}
