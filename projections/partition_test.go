package projections

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/events"
)

// sourced is rec as the log holds it when sourced from partition part of the
// log, at seq there.
func sourced(rec Record, part int, seq uint64) Record {
	rec.Header = nats.Header{events.SourceHeader: []string{
		fmt.Sprintf("%s %d presence.events.%d.* presence.events.{{wildcard(1)}} x abc", events.PartitionStream(part, 2), seq, part)}}
	return rec
}

// TestApplyKeepsEachPartitionsSequence: each record sourced from a partition
// moves that partition's applied sequence on, a malformed one too (its owner
// waits for the projection to reach its stream's last sequence); a contact's
// state holds its event's sequence in its partition; and the partitions'
// sequences survive a reopening.
func TestApplyKeepsEachPartitionsSequence(t *testing.T) {
	fs, dir := vfs.NewMem(), "projection"
	p := openAt(t, fs, dir)
	h := newHistory()
	log := []Record{
		sourced(h.set(alice, "Alice", events.Online), 1, 1),
		sourced(Record{Seq: 2, Data: []byte("not an event")}, 1, 2),
		sourced(h.set(bob, "Bob", events.Away), 0, 1),
	}
	log[2].Seq = 3
	if err := p.Apply(log); err != nil {
		t.Fatal(err)
	}
	check := func(p *Projection) {
		t.Helper()
		if got0, got1 := p.AppliedIn(0), p.AppliedIn(1); got0 != 1 || got1 != 2 {
			t.Errorf("applied in partitions 0 and 1: %d and %d, want 1 and 2 (the malformed record counts)", got0, got1)
		}
		if st, _, err := p.State(alice); err != nil || st.Seq != 1 {
			t.Errorf("alice: seq %d, %v; want 1, her event's sequence in partition 1", st.Seq, err)
		}
	}
	check(p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	check(openAt(t, fs, dir))
}

// TestApplyStopsAtASourceOfAnotherStream: a record sourced from a stream that
// is not a partition of the log stops the fold, with nothing of its batch
// applied, rather than be stepped over: its partition's owner would wait for
// it for ever.
func TestApplyStopsAtASourceOfAnotherStream(t *testing.T) {
	p := openMem(t)
	h := newHistory()
	good := sourced(h.set(alice, "Alice", events.Online), 0, 1)
	foreign := h.set(bob, "Bob", events.Away)
	foreign.Header = nats.Header{events.SourceHeader: []string{"ORDERS 7 orders.> orders.> x abc"}}
	if err := p.Apply([]Record{good, foreign}); err == nil {
		t.Fatal("Apply of a record sourced from ORDERS: nil, want an error")
	}
	if got := p.Applied(); got != 0 {
		t.Errorf("applied %d, want nothing of the batch", got)
	}
}
