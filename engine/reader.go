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
// for subscribers in the engine's process, and answers the service's reads. It
// is safe for concurrent use.
type LocalReader struct {
	Projection *projections.Projection
	// Ready reports whether the projection has caught up with the log; reads
	// without a minimum sequence are refused (ErrUnavailable) until it has. Nil
	// means always ready.
	Ready func() bool
	// Timeout bounds the wait for a minimum sequence. Zero means 2s.
	Timeout time.Duration
}

// Applied returns the log sequence the projection has applied up to.
func (r *LocalReader) Applied() uint64 { return r.Projection.Applied() }

func (r *LocalReader) wait(ctx context.Context, contact string, minSeq uint64) error {
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
	if r.Projection.Applied() >= minSeq {
		return nil // most reads: no timer to set up
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := r.Projection.WaitApplied(ctx, minSeq); err != nil {
		// Nor here: the sequence applied counts hidden events.
		return unavailable(fmt.Errorf("min_seq %d not reached within %s; retry (%w)", minSeq, timeout, projections.ErrNotReached))
	}
	return nil
}

// Status returns the contact as everyone else sees it: invisible reads offline,
// and a hidden change changes nothing in the reply. A never-seen contact reads
// Unknown with sequence 0.
func (r *LocalReader) Status(ctx context.Context, contact string, minSeq uint64) (client.Reply, error) {
	if err := r.wait(ctx, contact, minSeq); err != nil {
		return client.Reply{}, err
	}
	v, err := r.Projection.View(contact)
	if err != nil {
		return client.Reply{}, r.failed(err)
	}
	return client.Reply{Contact: contact, Name: v.Name, Status: v.Status, Seq: v.Seq}, nil
}

// Statuses returns the contacts as everyone else sees them, in the order given.
func (r *LocalReader) Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]client.Reply, error) {
	if len(contacts) == 0 {
		return nil, nil
	}
	if err := r.wait(ctx, contacts[0], minSeq); err != nil {
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
		out[i] = client.Reply{Contact: contacts[i], Name: v.Name, Status: v.Status, Seq: v.Seq}
	}
	return out, nil
}

// Self returns the contact's own status, invisible included (MyStatus). Only the
// contact itself may be given it.
func (r *LocalReader) Self(ctx context.Context, contact string, minSeq uint64) (client.Reply, error) {
	if err := r.wait(ctx, contact, minSeq); err != nil {
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
