package projections

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/presence-engine/presence/events"
)

// The checkpoint: how far the projection has folded the log, in the log's
// sequences, in feed positions and, for a log of several partitions, in each
// partition's own sequences; and the waits on it.

// Checkpoint is how far the projection has folded the log: the sequence of the
// last record applied and a checksum of that record's data, by which a restarted
// projection recognises the log it was folding, and the feed position of the
// last visible change applied: how many visible changes (events.ChangeOf) the
// log holds up to Seq, counted from its first event.
type Checkpoint struct {
	Seq  uint64
	Sum  uint64
	Feed uint64
}

// Sum returns the checksum of a record's data, as a checkpoint holds it.
func Sum(data []byte) uint64 {
	h := fnv.New64a()
	h.Write(data)
	return h.Sum64()
}

func marshalCheckpoint(cp Checkpoint) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, cp.Seq)
	binary.BigEndian.PutUint64(b[8:], cp.Sum)
	binary.BigEndian.PutUint64(b[16:], cp.Feed)
	return b
}

func marshalParts(parts []uint64) []byte {
	b := make([]byte, 0, 8*len(parts))
	for _, s := range parts {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b
}

func unmarshalParts(b []byte) ([]uint64, error) {
	if len(b)%8 != 0 || len(b) > 8*events.MaxPartitions {
		return nil, fmt.Errorf("%w: the partitions' checkpoint is %d bytes, want a multiple of 8 up to %d", ErrCorrupt, len(b), 8*events.MaxPartitions)
	}
	parts := make([]uint64, len(b)/8)
	for i := range parts {
		parts[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return parts, nil
}

func unmarshalCheckpoint(b []byte) (Checkpoint, error) {
	if len(b) != 24 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint is %d bytes, want 24", ErrCorrupt, len(b))
	}
	cp := Checkpoint{Seq: binary.BigEndian.Uint64(b), Sum: binary.BigEndian.Uint64(b[8:]), Feed: binary.BigEndian.Uint64(b[16:])}
	if cp.Feed > cp.Seq {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint has feed position %d past its log seq %d", ErrCorrupt, cp.Feed, cp.Seq)
	}
	return cp, nil
}

// Applied returns the log sequence of the last record applied.
func (p *Projection) Applied() uint64 { return p.applied.Load() }

// AppliedFeed returns the feed position of the last visible change applied:
// how many visible changes the projection has applied.
func (p *Projection) AppliedFeed() uint64 { return p.feed.Load() }

// Checkpoint returns the checkpoint: how far the log has been applied.
func (p *Projection) Checkpoint() Checkpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checkpoint
}

// WaitApplied blocks until the projection has applied the log up to seq, or ctx
// is done. The error then wraps ErrNotReached and says how far it got.
func (p *Projection) WaitApplied(ctx context.Context, seq uint64) error {
	return p.wait(ctx, seq, false)
}

// AppliedIn returns the sequence, in partition part's own stream, of the last
// event applied from it (events.Origin): with one partition, Applied.
func (p *Projection) AppliedIn(part int) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.appliedIn(part)
}

// appliedIn is AppliedIn, with p.mu held.
func (p *Projection) appliedIn(part int) uint64 {
	switch {
	case part < len(p.parts):
		return p.parts[part]
	case len(p.parts) == 0 && part == 0:
		return p.checkpoint.Seq
	}
	return 0
}

// WaitAppliedIn blocks until the projection has applied partition part up to
// its sequence seq, or ctx is done. The error then wraps ErrNotReached and
// says how far it got.
func (p *Projection) WaitAppliedIn(ctx context.Context, part int, seq uint64) error {
	for {
		p.mu.Lock()
		ch, at := p.advanced, p.appliedIn(part)
		p.mu.Unlock()
		if at >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return &NotReachedError{Want: seq, Applied: p.AppliedIn(part), Err: ctx.Err()}
		}
	}
}

// WaitAppliedFeed blocks until the projection has applied the visible change at
// feed position pos (and so every event of the log up to it), or ctx is done.
// The error then wraps ErrNotReached and says how far it got, in feed
// positions.
func (p *Projection) WaitAppliedFeed(ctx context.Context, pos uint64) error {
	return p.wait(ctx, pos, true)
}

// wait is WaitApplied, or with feed WaitAppliedFeed.
func (p *Projection) wait(ctx context.Context, want uint64, feed bool) error {
	applied := &p.applied
	if feed {
		applied = &p.feed
	}
	for {
		if applied.Load() >= want {
			return nil
		}
		p.mu.Lock()
		ch, at := p.advanced, p.checkpoint.Seq
		if feed {
			at = p.checkpoint.Feed
		}
		p.mu.Unlock()
		if at >= want {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return &NotReachedError{Want: want, Applied: applied.Load(), Feed: feed, Err: ctx.Err()}
		}
	}
}

// partsCopy returns a copy of the partitions' checkpoint.
func (p *Projection) partsCopy() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.parts)
}

// advance publishes a new checkpoint (and, unless nil, the partitions') and
// wakes the waiters.
func (p *Projection) advance(cp Checkpoint, parts []uint64) {
	p.mu.Lock()
	p.checkpoint = cp
	if parts != nil {
		p.parts = parts
	}
	p.applied.Store(cp.Seq)
	p.feed.Store(cp.Feed)
	close(p.advanced)
	p.advanced = make(chan struct{})
	p.mu.Unlock()
}
