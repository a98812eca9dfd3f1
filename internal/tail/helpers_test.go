package tail

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/engine/natstest"
)

// The tests read a stream of their own: one subject per contact, each
// record a contact's status in plain text.

const (
	streamName  = "TAIL"
	testTimeout = natstest.Timeout
	alice       = "alice"
	bob         = "bob"
	carol       = "carol"
)

func subject(contact string) string { return "tail." + contact }

// history is what a test appends to its stream, in order.
type history struct {
	subjects []string
	records  []Record
}

func newHistory() *history { return &history{} }

// set adds a record of contact's status.
func (h *history) set(contact, name, status string) {
	seq := uint64(len(h.records) + 1)
	h.subjects = append(h.subjects, subject(contact))
	h.records = append(h.records, Record{Seq: seq, Data: fmt.Appendf(nil, "%s %s %s #%d", contact, name, status, seq)})
}

// randomHistory is n records over the given number of contacts.
func randomHistory(rng *rand.Rand, contacts, n int) *history {
	h := newHistory()
	for range n {
		h.set(fmt.Sprintf("c%d", rng.IntN(contacts)), "", []string{"online", "away", "busy"}[rng.IntN(3)])
	}
	return h
}

func startLog(t testing.TB) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	_, js := natstest.JetStream(t, natstest.Start(t))
	return js, createLog(t, js)
}

func createLog(t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(natstest.Context(t), jetstream.StreamConfig{Name: streamName, Subjects: []string{"tail.>"}})
	if err != nil {
		t.Fatalf("create stream %s: %v", streamName, err)
	}
	return s
}

func deleteLog(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	if err := js.DeleteStream(natstest.Context(t), streamName); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("delete stream %s: %v", streamName, err)
	}
}

// publish appends the history's records from i on, each at its sequence.
func publish(t testing.TB, js jetstream.JetStream, h *history, from int) {
	t.Helper()
	for i := from; i < len(h.records); i++ {
		ack, err := js.Publish(natstest.Context(t), h.subjects[i], h.records[i].Data)
		if err != nil {
			t.Fatalf("publish seq %d: %v", h.records[i].Seq, err)
		}
		if ack.Sequence != h.records[i].Seq {
			t.Fatalf("published the record of seq %d at seq %d: the test's history and the stream disagree", h.records[i].Seq, ack.Sequence)
		}
	}
}
