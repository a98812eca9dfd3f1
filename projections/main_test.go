package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// projection, its follower and its tails start goroutines and must stop them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet swallows what the projection logs: the tests check behaviour, and a
// malformed record or a rebuild is logged at Error on purpose.
var quiet = slog.New(slog.DiscardHandler)

// openMem opens a projection in a fresh in-memory filesystem.
func openMem(t testing.TB) *Projection {
	t.Helper()
	return openAt(t, vfs.NewMem(), "projection")
}

// openAt opens the projection in dir on fs and closes it when the test ends.
func openAt(t testing.TB, fs vfs.FS, dir string) *Projection {
	t.Helper()
	p, err := Open(dir, Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// apply applies records and fails the test on an error.
func apply(t testing.TB, p *Projection, records ...Record) {
	t.Helper()
	if err := p.Apply(records); err != nil {
		t.Fatalf("Apply(%d records from seq %d) = %v", len(records), records[0].Seq, err)
	}
}

// base is the time of the history's first event; event n is n seconds later.
var base = time.Date(2026, 11, 24, 5, 25, 57, 123456789, time.UTC)

// atSeq is the time history gives the event at seq.
func atSeq(seq uint64) time.Time { return base.Add(time.Duration(seq) * time.Second) }

// entry is one event of a history and its record in the log.
type entry struct {
	Event  events.Event
	Record Record
}

// history writes a log as the writer would: sequences from 1 with no gaps, and
// for every contact each event's previous is the status of the one before, so
// the chains are correct.
type history struct {
	entries []entry
	status  map[string]events.Status
	name    map[string]string
}

func newHistory() *history {
	return &history{status: map[string]events.Status{}, name: map[string]string{}}
}

// set appends a change of contact to status. An empty name keeps the last one.
func (h *history) set(contact, name string, status events.Status) Record {
	if name == "" {
		name = h.name[contact]
	}
	seq := uint64(len(h.entries)) + 1
	cause := events.CauseUser
	if status == events.Idle {
		cause = events.CauseEndpoint
	}
	e := events.Event{
		Contact: contact, Name: name, Status: status, Previous: h.status[contact],
		At: atSeq(seq), Cause: cause,
	}
	r := Record{Seq: seq, Data: e.Encode()}
	h.entries = append(h.entries, entry{Event: e, Record: r})
	h.status[contact], h.name[contact] = status, name
	return r
}

// records returns the records of the history, all of them or those of the
// entries from i on.
func (h *history) records(from ...int) []Record {
	i := 0
	if len(from) > 0 {
		i = from[0]
	}
	out := make([]Record, 0, len(h.entries)-i)
	for _, e := range h.entries[i:] {
		out = append(out, e.Record)
	}
	return out
}

// last returns the sequence of the last event.
func (h *history) last() uint64 { return uint64(len(h.entries)) }

// settable is what random histories choose from, offline and invisible often so
// that hidden changes are common.
var settable = []events.Status{
	events.Offline, events.Invisible, events.Online, events.Offline, events.Invisible,
	events.Away, events.Busy, events.BeRightBack, events.DoNotDisturb, events.Idle, events.InAMeeting,
}

// randomHistory appends n random but correctly chained changes among contacts
// contacts.
func randomHistory(h *history, rng *rand.Rand, contacts, n int) *history {
	for range n {
		c := fmt.Sprintf("sip:user%03d@contoso.com", rng.IntN(contacts))
		var s events.Status
		for s = settable[rng.IntN(len(settable))]; s == h.status[c]; s = settable[rng.IntN(len(settable))] {
		}
		name := ""
		if rng.IntN(4) == 0 {
			name = fmt.Sprintf("User %d %s", rng.IntN(1000), strings.Repeat("x", rng.IntN(200)))
		}
		h.set(c, name, s)
	}
	return h
}

// diffState says how got differs from want, field by field, or "" when they
// are the same: times compare as instants.
func diffState(got, want State) string {
	var d []string
	field := func(name string, g, w any) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, short(g), short(w)))
		}
	}
	field("Contact", got.Contact, want.Contact)
	field("Name", got.Name, want.Name)
	field("Status", got.Status, want.Status)
	field("Previous", got.Previous, want.Previous)
	field("Seq", got.Seq, want.Seq)
	if !got.At.Equal(want.At) {
		field("At", got.At, want.At)
	}
	field("Cause", got.Cause, want.Cause)
	field("Visible.Contact", got.Visible.Contact, want.Visible.Contact)
	field("Visible.Name", got.Visible.Name, want.Visible.Name)
	field("Visible.Status", got.Visible.Status, want.Visible.Status)
	field("Visible.Seq", got.Visible.Seq, want.Visible.Seq)
	if !got.Visible.At.Equal(want.Visible.At) {
		field("Visible.At", got.Visible.At, want.Visible.At)
	}
	if !got.Visible.LastActive.Equal(want.Visible.LastActive) {
		field("Visible.LastActive", got.Visible.LastActive, want.Visible.LastActive)
	}
	return strings.Join(d, ", ")
}

// short quotes strings, cutting long ones, and leaves other values as they are.
func short(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	if len(s) > 24 {
		s = s[:20] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// snapshot returns every state of p, by contact.
func snapshot(t testing.TB, p *Projection) map[string]State {
	t.Helper()
	out, err := states(p)
	if err != nil {
		t.Fatalf("Each() = %v", err)
	}
	return out
}

// states returns every state of p, by contact.
func states(p *Projection) (map[string]State, error) {
	out := map[string]State{}
	err := p.Each(func(s State) bool { out[s.Contact] = s; return true })
	return out, err
}

// freshFold folds records into a new in-memory projection and returns its
// states and checkpoint: what any projection of exactly these records holds.
func freshFold(t testing.TB, records []Record) (map[string]State, Checkpoint) {
	t.Helper()
	p, err := Open("fresh", Options{FS: vfs.NewMem(), Logger: quiet})
	if err != nil {
		t.Fatalf("open a fresh projection: %v", err)
	}
	defer p.Close()
	if len(records) > 0 {
		apply(t, p, records...)
	}
	return snapshot(t, p), p.Checkpoint()
}

// diffStates says how two sets of states differ, or "" when they are equal.
func diffStates(got, want map[string]State) string {
	var d []string
	for _, c := range sortedKeys(want) {
		g, ok := got[c]
		if !ok {
			d = append(d, fmt.Sprintf("%s: missing", c))
			continue
		}
		if diff := diffState(g, want[c]); diff != "" {
			d = append(d, fmt.Sprintf("%s: %s", c, diff))
		}
	}
	for _, c := range sortedKeys(got) {
		if _, ok := want[c]; !ok {
			d = append(d, fmt.Sprintf("%s: present (status %v, seq %d), want absent", c, got[c].Status, got[c].Seq))
		}
	}
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("... and %d more", len(d)-5))
	}
	return strings.Join(d, "\n")
}

func sortedKeys(m map[string]State) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// eventually polls cond until it holds or timeout passes, for conditions no
// event announces. It reports whether cond held.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// The log on a real nats-server.

const testTimeout = 10 * time.Second

// startLog starts a nats-server with JetStream and creates the log stream.
func startLog(t testing.TB) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	_, js := natstest.JetStream(t, natstest.Start(t))
	return js, createLog(t, js)
}

// createLog creates the PRESENCE stream as DESIGN.md §2 describes it.
func createLog(t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cfg := jetstream.StreamConfig{
		Name:     "PRESENCE",
		Subjects: []string{events.EventsPrefix + ">"},
		Storage:  jetstream.FileStorage,
	}
	var (
		s   jetstream.Stream
		err error
	)
	// Right after a stream is deleted, nats-server may still be removing its
	// files and refuse to create one of the same name ("error creating store
	// for stream", err_code 10049): try again until the deadline.
	eventually(testTimeout, func() bool {
		s, err = js.CreateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		return err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != 10049
	})
	if err != nil {
		t.Fatalf("create stream PRESENCE: %v", err)
	}
	return s
}

// deleteLog deletes the PRESENCE stream.
func deleteLog(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := js.DeleteStream(ctx, "PRESENCE"); err != nil {
		t.Fatalf("delete stream PRESENCE: %v", err)
	}
}

// publish appends the history's entries from i on to the log, each on its
// contact's subject, and checks the log gives them the history's sequences.
// Each append has testTimeout: a benchmark's log takes longer than that.
func publish(t testing.TB, js jetstream.JetStream, h *history, from int) {
	t.Helper()
	for _, e := range h.entries[from:] {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		ack, err := js.Publish(ctx, events.EventSubject(e.Event.Contact), e.Record.Data)
		cancel()
		if err != nil {
			t.Fatalf("publish seq %d: %v", e.Record.Seq, err)
		}
		if ack.Sequence != e.Record.Seq {
			t.Fatalf("published the event of seq %d at seq %d: the test's history and the log disagree", e.Record.Seq, ack.Sequence)
		}
	}
}

// waitApplied waits up to testTimeout for p to apply seq.
func waitApplied(t testing.TB, p *Projection, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := p.WaitApplied(ctx, seq); err != nil {
		t.Fatalf("WaitApplied(%d) = %v", seq, err)
	}
}
