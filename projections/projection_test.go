package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/presence-engine/presence/events"
)

const (
	alice = "sip:alice@contoso.com"
	bob   = "sip:bob@contoso.com"
	carol = "sip:carol@contoso.com"
)

// step is one change a test writes to the log.
type step struct {
	contact, name string
	status        events.Status
}

func TestApplyFolds(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		// The state of contact after the steps.
		contact string
		want    State
		// feed is the checkpoint's feed position: the visible changes of the
		// steps.
		feed uint64
	}{
		{
			name:    "first event is visible",
			steps:   []step{{alice, "Alice", events.Online}},
			contact: alice,
			want: State{Contact: alice, Name: "Alice", Status: events.Online, Previous: events.Unknown,
				Seq: 1, At: atSeq(1), Cause: events.CauseUser,
				Visible: View{Contact: alice, Name: "Alice", Status: events.Online, Seq: 1, At: atSeq(1)}},
			feed: 1,
		},
		{
			name: "visible change replaces the view",
			steps: []step{
				{alice, "Alice", events.Online},
				{alice, "Alice B.", events.Away},
			},
			contact: alice,
			want: State{Contact: alice, Name: "Alice B.", Status: events.Away, Previous: events.Online,
				Seq: 2, At: atSeq(2), Cause: events.CauseUser,
				Visible: View{Contact: alice, Name: "Alice B.", Status: events.Away, Seq: 2, At: atSeq(2)}},
			feed: 2,
		},
		{
			name: "offline to invisible is hidden",
			steps: []step{
				{alice, "Alice", events.Online},
				{alice, "", events.Offline},
				{alice, "Alice (hiding)", events.Invisible},
			},
			contact: alice,
			want: State{Contact: alice, Name: "Alice (hiding)", Status: events.Invisible, Previous: events.Offline,
				Seq: 3, At: atSeq(3), Cause: events.CauseUser,
				Visible: View{Contact: alice, Name: "Alice", Status: events.Offline, Seq: 2, At: atSeq(2)}},
			feed: 2,
		},
		{
			name: "invisible to offline is hidden",
			steps: []step{
				{alice, "Alice", events.Online},
				{alice, "", events.Offline},
				{alice, "", events.Invisible},
				{alice, "", events.Offline},
			},
			contact: alice,
			want: State{Contact: alice, Name: "Alice", Status: events.Offline, Previous: events.Invisible,
				Seq: 4, At: atSeq(4), Cause: events.CauseUser,
				Visible: View{Contact: alice, Name: "Alice", Status: events.Offline, Seq: 2, At: atSeq(2)}},
			feed: 2,
		},
		{
			name: "hidden changes among another contact's",
			steps: []step{
				{alice, "Alice", events.Offline},
				{bob, "Bob", events.Online},
				{alice, "", events.Invisible},
				{bob, "", events.Away},
				{alice, "", events.Offline},
				{alice, "", events.Invisible},
			},
			contact: alice,
			want: State{Contact: alice, Name: "Alice", Status: events.Invisible, Previous: events.Offline,
				Seq: 6, At: atSeq(6), Cause: events.CauseUser,
				Visible: View{Contact: alice, Name: "Alice", Status: events.Offline, Seq: 1, At: atSeq(1)}},
			feed: 3,
		},
		{
			name:    "unknown to invisible reads as offline",
			steps:   []step{{bob, "Bob", events.Invisible}},
			contact: bob,
			want: State{Contact: bob, Name: "Bob", Status: events.Invisible, Previous: events.Unknown,
				Seq: 1, At: atSeq(1), Cause: events.CauseUser,
				Visible: View{Contact: bob, Name: "Bob", Status: events.Offline, Seq: 1, At: atSeq(1)}},
			feed: 1,
		},
		{
			name: "online to invisible reads as going offline",
			steps: []step{
				{bob, "Bob", events.Online},
				{bob, "", events.Invisible},
			},
			contact: bob,
			want: State{Contact: bob, Name: "Bob", Status: events.Invisible, Previous: events.Online,
				Seq: 2, At: atSeq(2), Cause: events.CauseUser,
				Visible: View{Contact: bob, Name: "Bob", Status: events.Offline, Seq: 2, At: atSeq(2)}},
			feed: 2,
		},
		{
			name: "invisible to busy is visible",
			steps: []step{
				{bob, "Bob", events.Invisible},
				{bob, "", events.Busy},
			},
			contact: bob,
			want: State{Contact: bob, Name: "Bob", Status: events.Busy, Previous: events.Invisible,
				Seq: 2, At: atSeq(2), Cause: events.CauseUser,
				Visible: View{Contact: bob, Name: "Bob", Status: events.Busy, Seq: 2, At: atSeq(2)}},
			feed: 2,
		},
		{
			name: "a visible change after hidden ones is at its feed position, not its log seq",
			steps: []step{
				{alice, "Alice", events.Offline},
				{bob, "Bob", events.Online},
				{alice, "", events.Invisible},
				{alice, "", events.Offline},
				{alice, "", events.Invisible},
				{alice, "", events.Busy},
			},
			contact: alice,
			want: State{Contact: alice, Name: "Alice", Status: events.Busy, Previous: events.Invisible,
				Seq: 6, At: atSeq(6), Cause: events.CauseUser,
				Visible: View{Contact: alice, Name: "Alice", Status: events.Busy, Seq: 3, At: atSeq(6)}},
			feed: 3,
		},
		{
			name: "idle from an endpoint",
			steps: []step{
				{carol, "Carol", events.Online},
				{carol, "", events.Idle},
			},
			contact: carol,
			want: State{Contact: carol, Name: "Carol", Status: events.Idle, Previous: events.Online,
				Seq: 2, At: atSeq(2), Cause: events.CauseEndpoint,
				Visible: View{Contact: carol, Name: "Carol", Status: events.Idle, Seq: 2, At: atSeq(2)}},
			feed: 2,
		},
	}
	// Every case runs with all its events in one batch, which folds hidden
	// changes over the states written earlier in the batch, and with one batch
	// per event, which reads them back from Pebble.
	batchings := []struct {
		name  string
		split func([]Record) [][]Record
	}{
		{"one batch", func(rs []Record) [][]Record { return [][]Record{rs} }},
		{"batch per event", func(rs []Record) [][]Record { return slices.Collect(slices.Chunk(rs, 1)) }},
	}
	for _, tt := range tests {
		for _, batching := range batchings {
			t.Run(tt.name+"/"+batching.name, func(t *testing.T) {
				h := newHistory()
				for _, s := range tt.steps {
					h.set(s.contact, s.name, s.status)
				}
				p := openMem(t)
				for _, batch := range batching.split(h.records()) {
					apply(t, p, batch...)
				}

				got, found, err := p.State(tt.contact)
				if err != nil || !found {
					t.Fatalf("State(%q) = _, %v, %v; want found", tt.contact, found, err)
				}
				if d := diffState(got, tt.want); d != "" {
					t.Errorf("State(%q): %s", tt.contact, d)
				}
				view, err := p.View(tt.contact)
				if err != nil {
					t.Fatalf("View(%q) = %v", tt.contact, err)
				}
				if d := diffState(State{Visible: view}, State{Visible: tt.want.Visible}); d != "" {
					t.Errorf("View(%q): %s", tt.contact, d)
				}
				last := h.entries[len(h.entries)-1].Record
				wantCP := Checkpoint{Seq: last.Seq, Sum: Sum(last.Data), Feed: tt.feed}
				if cp := p.Checkpoint(); cp != wantCP {
					t.Errorf("Checkpoint() = %+v, want %+v", cp, wantCP)
				}
				if got := p.Applied(); got != last.Seq {
					t.Errorf("Applied() = %d, want %d", got, last.Seq)
				}
				if got := p.AppliedFeed(); got != tt.feed {
					t.Errorf("AppliedFeed() = %d, want %d", got, tt.feed)
				}
				m := p.Metrics()
				if m.Folded != uint64(len(tt.steps)) || m.Applied != last.Seq || m.Malformed != 0 {
					t.Errorf("Metrics() = %+v, want Folded %d, Applied %d, Malformed 0", m, len(tt.steps), last.Seq)
				}
			})
		}
	}
}

func TestNeverSeenContact(t *testing.T) {
	p := openMem(t)
	h := newHistory()
	apply(t, p, h.set(alice, "Alice", events.Online))

	view, err := p.View(bob)
	if err != nil {
		t.Fatalf("View(%q) = %v", bob, err)
	}
	if want := (View{Contact: bob, Status: events.Unknown}); view != want {
		t.Errorf("View(%q) = %+v, want %+v", bob, view, want)
	}
	st, found, err := p.State(bob)
	if err != nil {
		t.Fatalf("State(%q) = %v", bob, err)
	}
	if found || st.Status != events.Unknown || st.Seq != 0 || st.Contact != bob {
		t.Errorf("State(%q) = %+v, found %v; want Unknown at seq 0, not found", bob, st, found)
	}
}

func TestSumIsTheChecksumOfTheData(t *testing.T) {
	// FNV-1a, 64 bits: the checkpoints already stored depend on it.
	tests := []struct {
		data string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	}
	for _, tt := range tests {
		if got := Sum([]byte(tt.data)); got != tt.want {
			t.Errorf("Sum(%q) = %#x, want %#x", tt.data, got, tt.want)
		}
	}
}

func TestApplySkipsWhatWasApplied(t *testing.T) {
	h := newHistory()
	h.set(alice, "Alice", events.Online)
	h.set(bob, "Bob", events.Offline)
	h.set(bob, "", events.Invisible) // hidden: folded over the stored state
	h.set(alice, "", events.Away)
	h.set(bob, "", events.Offline) // hidden
	rs := h.records()

	p := openMem(t)
	apply(t, p, rs...)
	wantStates, wantMetrics, wantCP := snapshot(t, p), p.Metrics(), p.Checkpoint()
	if wantMetrics.Batches != 1 || wantMetrics.Folded != 5 {
		t.Fatalf("after one Apply of 5 events: Metrics() = %+v, want Batches 1, Folded 5", wantMetrics)
	}

	t.Run("same batch again", func(t *testing.T) {
		apply(t, p, rs...)
		if d := diffStates(snapshot(t, p), wantStates); d != "" {
			t.Errorf("states changed on re-delivery:\n%s", d)
		}
		if m := p.Metrics(); m != wantMetrics {
			t.Errorf("Metrics() = %+v, want %+v (nothing folded, no batch)", m, wantMetrics)
		}
		if cp := p.Checkpoint(); cp != wantCP {
			t.Errorf("Checkpoint() = %+v, want %+v", cp, wantCP)
		}
	})
	t.Run("each record again", func(t *testing.T) {
		for _, r := range rs {
			apply(t, p, r)
		}
		if m := p.Metrics(); m != wantMetrics {
			t.Errorf("Metrics() = %+v, want %+v", m, wantMetrics)
		}
		if d := diffStates(snapshot(t, p), wantStates); d != "" {
			t.Errorf("states changed on re-delivery:\n%s", d)
		}
	})
	t.Run("overlapping batch", func(t *testing.T) {
		h.set(alice, "", events.Busy)
		h.set(bob, "", events.Online)
		more := h.records(2) // seqs 3 to 7: 3 to 5 again, then 6 and 7
		apply(t, p, more...)
		m := p.Metrics()
		if m.Folded != wantMetrics.Folded+2 || m.Batches != wantMetrics.Batches+1 {
			t.Errorf("Metrics() = %+v, want Folded %d, Batches %d: only seqs 6 and 7 are new, in one batch",
				m, wantMetrics.Folded+2, wantMetrics.Batches+1)
		}
		want, wantCP := freshFold(t, h.records())
		if d := diffStates(snapshot(t, p), want); d != "" {
			t.Errorf("states differ from a fold of seqs 1-7 applied once:\n%s", d)
		}
		if cp := p.Checkpoint(); cp != wantCP {
			t.Errorf("Checkpoint() = %+v, want %+v", cp, wantCP)
		}
	})
	t.Run("repeats within a batch", func(t *testing.T) {
		h.set(alice, "", events.Offline)
		h.set(alice, "", events.Invisible) // hidden: folding it twice would not show, so count
		last := h.records(7)
		before := p.Metrics()
		apply(t, p, last[0], last[0], last[1], last[0], last[1])
		if m := p.Metrics(); m.Folded != before.Folded+2 || m.Batches != before.Batches+1 {
			t.Errorf("Metrics() = %+v, want Folded %d, Batches %d", m, before.Folded+2, before.Batches+1)
		}
		want, _ := freshFold(t, h.records())
		if d := diffStates(snapshot(t, p), want); d != "" {
			t.Errorf("states differ from a fold of seqs 1-9 applied once:\n%s", d)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		before := p.Metrics()
		if err := p.Apply(nil); err != nil {
			t.Fatalf("Apply(nil) = %v", err)
		}
		if m := p.Metrics(); m != before {
			t.Errorf("Metrics() = %+v after Apply(nil), want %+v", m, before)
		}
	})
}

func TestApplyOneBatchPerCall(t *testing.T) {
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(1, 1)), 20, 1000)
	p := openMem(t)
	for i, batch := range slices.Collect(slices.Chunk(h.records(), 250)) {
		apply(t, p, batch...)
		if got, want := p.Metrics().Batches, uint64(i+1); got != want {
			t.Fatalf("after %d Apply calls: Metrics().Batches = %d, want %d", i+1, got, want)
		}
	}
	if got := p.Metrics().Folded; got != 1000 {
		t.Errorf("Metrics().Folded = %d, want 1000", got)
	}
}

func TestApplyStepsOverMalformedRecords(t *testing.T) {
	h := newHistory()
	good1 := h.set(alice, "Alice", events.Online)
	good2 := h.set(alice, "", events.Away)
	bad := []struct {
		name string
		data string
	}{
		{"not JSON", `this is not an event`},
		{"wrong schema", `{"v":1,"contact":"sip:alice@contoso.com"}`},
		{"not a change", `{"v":1,"contact":"sip:alice@contoso.com","status":"away","previous":"away","at":"2026-11-24T05:25:57Z"}`},
		{"empty", ``},
	}
	// The log: good1 at 1, the bad records at 2..6, good2 at 7.
	log := []Record{{Seq: 1, Data: good1.Data}}
	for i, b := range bad {
		log = append(log, Record{Seq: uint64(2 + i), Data: []byte(b.data)})
	}
	log = append(log, Record{Seq: uint64(2 + len(bad)), Data: good2.Data})

	t.Run("in one batch", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, log...)
		checkMalformed(t, p, log, len(bad))
	})
	t.Run("batch ends on a bad record", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, log[:len(log)-1]...)
		lastBad := log[len(log)-2]
		if cp, want := p.Checkpoint(), (Checkpoint{Seq: lastBad.Seq, Sum: Sum(lastBad.Data), Feed: 1}); cp != want {
			t.Errorf("Checkpoint() = %+v, want %+v: the checkpoint moves past a malformed record, which is no feed position", cp, want)
		}
		apply(t, p, log[len(log)-1])
		checkMalformed(t, p, log, len(bad))
	})
	for i, b := range bad {
		t.Run("only "+b.name, func(t *testing.T) {
			p := openMem(t)
			r := Record{Seq: 1, Data: []byte(b.data)}
			apply(t, p, r)
			if cp, want := p.Checkpoint(), (Checkpoint{Seq: 1, Sum: Sum(r.Data)}); cp != want {
				t.Errorf("Checkpoint() = %+v, want %+v", cp, want)
			}
			if m := p.Metrics(); m.Malformed != 1 || m.Folded != 0 || m.Batches != 1 {
				t.Errorf("Metrics() = %+v, want Malformed 1, Folded 0, Batches 1", m)
			}
			if st := snapshot(t, p); len(st) != 0 {
				t.Errorf("record %d (%s) left states %v, want none", i, b.name, st)
			}
		})
	}
}

func checkMalformed(t *testing.T, p *Projection, log []Record, bad int) {
	t.Helper()
	last := log[len(log)-1]
	// The two good events are the two visible changes: the malformed records
	// between them are no feed positions.
	if cp, want := p.Checkpoint(), (Checkpoint{Seq: last.Seq, Sum: Sum(last.Data), Feed: 2}); cp != want {
		t.Errorf("Checkpoint() = %+v, want %+v", cp, want)
	}
	if m := p.Metrics(); m.Malformed != uint64(bad) || m.Folded != 2 {
		t.Errorf("Metrics() = %+v, want Malformed %d, Folded 2", m, bad)
	}
	st, _, err := p.State(alice)
	if err != nil {
		t.Fatalf("State(%q) = %v", alice, err)
	}
	if st.Status != events.Away || st.Previous != events.Online || st.Seq != last.Seq || st.Visible.Seq != 2 {
		t.Errorf("State(%q) = %+v, want away after online at seq %d, feed position 2: the event after the bad records applies",
			alice, st, last.Seq)
	}
}

func TestApplyKeepsEventTime(t *testing.T) {
	// DecodeEvent accepts any time from year 0000 to 9999 in UTC: the log is the
	// truth, so the projection must give back the time each event carries.
	tests := []struct {
		name string
		at   time.Time
	}{
		{"now-ish", base},
		{"Unix epoch", time.Unix(0, 0).UTC()},
		{"before 1970", time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)},
		{"year 2300", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year 1600", time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"year 0000", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := events.Event{Contact: alice, Name: "Alice", Status: events.Online, Previous: events.Unknown,
				At: tt.at, Cause: events.CauseUser}
			data := e.Encode()
			if _, err := events.DecodeEvent(data); err != nil {
				t.Fatalf("DecodeEvent refuses the test's event: %v", err)
			}
			p := openMem(t)
			apply(t, p, Record{Seq: 1, Data: data})
			st, _, err := p.State(alice)
			if err != nil {
				t.Fatalf("State(%q) = %v", alice, err)
			}
			if !st.At.Equal(tt.at) || !st.Visible.At.Equal(tt.at) {
				t.Errorf("State(%q): At = %v, Visible.At = %v; want both %v", alice, st.At, st.Visible.At, tt.at)
			}
		})
	}
}

func TestReopenResumes(t *testing.T) {
	dir := t.TempDir()
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(4, 4)), 30, 500)

	p, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	for _, batch := range slices.Collect(slices.Chunk(h.records(), 100)) {
		apply(t, p, batch...)
	}
	want, wantCP := snapshot(t, p), p.Checkpoint()
	if err := p.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}

	p2 := openAt(t, vfs.Default, dir)
	if cp := p2.Checkpoint(); cp != wantCP {
		t.Errorf("reopened Checkpoint() = %+v, want %+v", cp, wantCP)
	}
	if got := p2.Applied(); got != wantCP.Seq {
		t.Errorf("reopened Applied() = %d, want %d", got, wantCP.Seq)
	}
	if d := diffStates(snapshot(t, p2), want); d != "" {
		t.Errorf("reopened states differ:\n%s", d)
	}
	// Resuming: re-delivered records are skipped, the next ones fold.
	randomHistory(h, rand.New(rand.NewPCG(5, 5)), 30, 50)
	apply(t, p2, h.records(450)...)
	if m := p2.Metrics(); m.Folded != 50 {
		t.Errorf("after reopening, Metrics().Folded = %d, want 50: only seqs 501-550 are new", m.Folded)
	}
	wantAll, _ := freshFold(t, h.records())
	if d := diffStates(snapshot(t, p2), wantAll); d != "" {
		t.Errorf("states differ from a fold of the whole log:\n%s", d)
	}
}

func TestClosed(t *testing.T) {
	p := openMem(t)
	apply(t, p, newHistory().set(alice, "Alice", events.Online))
	if err := p.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Apply", func() error { return p.Apply([]Record{{Seq: 2, Data: []byte("x")}}) }},
		{"State", func() error { _, _, err := p.State(alice); return err }},
		{"View", func() error { _, err := p.View(alice); return err }},
		{"Each", func() error { return p.Each(func(State) bool { return true }) }},
		{"Reset", p.Reset},
		{"Close", p.Close},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if c.name == "Close" {
				if err != nil {
					t.Errorf("Close() twice = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", c.name, err)
			}
		})
	}
}

func TestOpenRefusesWhatIsNotAProjection(t *testing.T) {
	tests := []struct {
		name string
		keys map[string][]byte
	}{
		{"foreign format marker", map[string][]byte{formatKey: []byte("someone-else-1"), checkpointKey: make([]byte, 24)}},
		{"checkpoint without format", map[string][]byte{checkpointKey: make([]byte, 24)}},
		{"foreign keys", map[string][]byte{"users/1": []byte("x")}},
		{"short checkpoint", map[string][]byte{formatKey: []byte(formatVersion), checkpointKey: make([]byte, 23)}},
		{"checkpoint of format 2 in format 3", map[string][]byte{formatKey: []byte(formatVersion), checkpointKey: make([]byte, 16)}},
		{"feed position past the log seq", map[string][]byte{formatKey: []byte(formatVersion),
			checkpointKey: marshalCheckpoint(Checkpoint{Seq: 3, Sum: 1, Feed: 4})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db, err := pebble.Open("store", &pebble.Options{FS: fs, Logger: pebbleLogger{quiet}})
			if err != nil {
				t.Fatalf("pebble.Open: %v", err)
			}
			for k, v := range tt.keys {
				if err := db.Set([]byte(k), v, pebble.Sync); err != nil {
					t.Fatalf("Set(%q): %v", k, err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			p, err := Open("store", Options{FS: fs, Logger: quiet})
			if err == nil {
				p.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open() = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestOpenEmptiesAnotherProjectionFormat: a projection written in another
// format is emptied, to be rebuilt from the log, not read wrongly: an older
// one (an upgrade: format 2 had log sequences in its views and no feed
// position) is said at Info, a newer one at Warn.
func TestOpenEmptiesAnotherProjectionFormat(t *testing.T) {
	format2Checkpoint := make([]byte, 16) // log seq 42, sum 7: format 2's
	format2Checkpoint[7], format2Checkpoint[15] = 42, 7
	tests := []struct {
		name       string
		format     string
		checkpoint []byte
		level      slog.Level
	}{
		{"format 1", formatPrefix + "1", format2Checkpoint, slog.LevelInfo},
		{"format 2, the one before feed positions", formatPrefix + "2", format2Checkpoint, slog.LevelInfo},
		{"a newer format", formatPrefix + "99", marshalCheckpoint(Checkpoint{Seq: 42, Sum: 7, Feed: 3}), slog.LevelWarn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db, err := pebble.Open("store", &pebble.Options{FS: fs, Logger: pebbleLogger{quiet}})
			if err != nil {
				t.Fatalf("pebble.Open: %v", err)
			}
			for k, v := range map[string][]byte{formatKey: []byte(tt.format), checkpointKey: tt.checkpoint, string(stateKey(alice)): {1, 2, 3}} {
				if err := db.Set([]byte(k), v, pebble.Sync); err != nil {
					t.Fatalf("Set(%q): %v", k, err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var logged recordedLogs
			p, err := Open("store", Options{FS: fs, Logger: slog.New(&logged)})
			if err != nil {
				t.Fatalf("Open of a projection in %s: %v", tt.format, err)
			}
			defer p.Close()
			if got := p.Checkpoint(); got != (Checkpoint{}) {
				t.Errorf("checkpoint = %+v, want zero: the projection must be rebuilt", got)
			}
			if got := p.AppliedFeed(); got != 0 {
				t.Errorf("AppliedFeed() = %d, want 0", got)
			}
			if _, seen, err := p.State(alice); err != nil || seen {
				t.Errorf("State(alice) after emptying = seen %v, err %v; want never seen", seen, err)
			}
			if got := logged.find("emptying it to rebuild it from the log"); got == nil || got.Level != tt.level {
				t.Errorf("logged %v; want the rebuild said at %s", logged.all(), tt.level)
			}
			// Written again in this format, it opens as it is.
			h := newHistory()
			apply(t, p, h.set(alice, "Alice", events.Online))
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			again, err := Open("store", Options{FS: fs, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if cp := again.Checkpoint(); cp.Seq != 1 || cp.Feed != 1 {
				t.Errorf("reopened checkpoint = %+v, want seq 1, feed 1", cp)
			}
		})
	}
}

// recordedLogs is a slog.Handler that keeps what is logged, for tests that
// check what was said and how loud.
type recordedLogs struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *recordedLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordedLogs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *recordedLogs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *recordedLogs) WithGroup(string) slog.Handler      { return l }

// find returns the first record whose message holds text, or nil.
func (l *recordedLogs) find(text string) *slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.records {
		if strings.Contains(l.records[i].Message, text) {
			return &l.records[i]
		}
	}
	return nil
}

func (l *recordedLogs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		out = append(out, r.Level.String()+" "+r.Message)
	}
	return out
}

func TestCorruptStoredState(t *testing.T) {
	p := openMem(t)
	h := newHistory()
	apply(t, p, h.set(alice, "Alice", events.Offline))
	if err := p.db.Set(stateKey(alice), []byte{stateVersion, 0xFF}, pebble.Sync); err != nil {
		t.Fatalf("write a corrupt state: %v", err)
	}
	if _, err := p.View(alice); !errors.Is(err, ErrCorrupt) {
		t.Errorf("View of a corrupt state = %v, want ErrCorrupt", err)
	}
	if err := p.Each(func(State) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Each over a corrupt state = %v, want ErrCorrupt", err)
	}
	// A hidden change reads the stored state: it cannot fold over a corrupt one,
	// and the checkpoint stays where it was.
	before := p.Checkpoint()
	if err := p.Apply([]Record{h.set(alice, "", events.Invisible)}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Apply of a hidden change over a corrupt state = %v, want ErrCorrupt", err)
	}
	if cp := p.Checkpoint(); cp != before {
		t.Errorf("Checkpoint() = %+v after a failed Apply, want %+v", cp, before)
	}
}

func TestWaitApplied(t *testing.T) {
	h := newHistory()
	for i := range 5 {
		h.set(alice, "", []events.Status{events.Online, events.Away}[i%2])
	}
	rs := h.records()

	t.Run("already reached", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, rs[:3]...)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // an answer that needs no waiting must not look at ctx
		for _, seq := range []uint64{0, 1, 3} {
			if err := p.WaitApplied(ctx, seq); err != nil {
				t.Errorf("WaitApplied(%d) with seq 3 applied = %v, want nil", seq, err)
			}
		}
	})
	t.Run("reached later", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, rs[:1]...)
		done := waitInBackground(p.WaitApplied, 4)
		apply(t, p, rs[1:3]...) // up to 3: not yet
		notReturned(t, done, "WaitApplied(4) with only seq 3 applied")
		apply(t, p, rs[3:]...) // up to 5: past it
		returnsNil(t, done, "WaitApplied(4) once seq 5 is applied")
	})
	t.Run("many waiters", func(t *testing.T) {
		p := openMem(t)
		done := make(chan error, 5)
		for seq := uint64(1); seq <= 5; seq++ {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				done <- p.WaitApplied(ctx, seq)
			}()
		}
		for _, r := range rs {
			apply(t, p, r)
		}
		for range 5 {
			if err := <-done; err != nil {
				t.Errorf("WaitApplied = %v, want nil", err)
			}
		}
	})
	t.Run("times out", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, rs[:2]...)
		nre, _ := timesOut(t, p.WaitApplied, 5, "WaitApplied(5)")
		if nre.Want != 5 || nre.Applied != 2 {
			t.Errorf("NotReachedError{Want: %d, Applied: %d}, want {Want: 5, Applied: 2}", nre.Want, nre.Applied)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		p := openMem(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := p.WaitApplied(ctx, 1)
		if !errors.Is(err, ErrNotReached) || !errors.Is(err, context.Canceled) {
			t.Errorf("WaitApplied(1) on an empty projection = %v, want ErrNotReached and context.Canceled", err)
		}
	})
}

// TestWaitAppliedFeed waits for feed positions: they count the visible changes
// only, so a wait for position 2 ends with the second visible change, whatever
// hidden changes came before it.
func TestWaitAppliedFeed(t *testing.T) {
	h := newHistory()
	h.set(alice, "Alice", events.Offline) // log 1, feed 1
	h.set(alice, "", events.Invisible)    // log 2, hidden
	h.set(alice, "", events.Offline)      // log 3, hidden
	h.set(bob, "Bob", events.Online)      // log 4, feed 2
	h.set(alice, "", events.Invisible)    // log 5, hidden
	h.set(alice, "", events.Away)         // log 6, feed 3
	rs := h.records()

	t.Run("already reached", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, rs[:4]...)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // an answer that needs no waiting must not look at ctx
		for _, pos := range []uint64{0, 1, 2} {
			if err := p.WaitAppliedFeed(ctx, pos); err != nil {
				t.Errorf("WaitAppliedFeed(%d) with feed position 2 applied = %v, want nil", pos, err)
			}
		}
	})
	t.Run("reached later", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, rs[:1]...)
		done := waitInBackground(p.WaitAppliedFeed, 2)
		apply(t, p, rs[1:3]...) // hidden changes: the feed position stays at 1
		notReturned(t, done, "WaitAppliedFeed(2) with only hidden changes applied after position 1")
		if got := p.AppliedFeed(); got != 1 {
			t.Errorf("AppliedFeed() = %d after two hidden changes, want 1", got)
		}
		apply(t, p, rs[3])
		returnsNil(t, done, "WaitAppliedFeed(2) once bob's change (feed position 2) is applied")
		apply(t, p, rs[4:]...)
		if got, v := p.AppliedFeed(), mustView(t, p, alice); got != 3 || v.Seq != 3 {
			t.Errorf("AppliedFeed() = %d, alice's view at %d; want both 3 (log seq 6)", got, v.Seq)
		}
	})
	t.Run("times out", func(t *testing.T) {
		p := openMem(t)
		apply(t, p, rs[:5]...)
		nre, err := timesOut(t, p.WaitAppliedFeed, 3, "WaitAppliedFeed(3)")
		if nre.Want != 3 || nre.Applied != 2 || !nre.Feed {
			t.Errorf("NotReachedError = %+v, want {Want: 3, Applied: 2, Feed: true}", nre)
		}
		if msg := err.Error(); !strings.Contains(msg, "feed up to position 2") || strings.Contains(msg, "seq 5") {
			t.Errorf("error %q: want it to say feed position 2, not the log seq applied", msg)
		}
	})
	t.Run("survives a reopen", func(t *testing.T) {
		fs := vfs.NewMem()
		p := openAt(t, fs, "projection")
		apply(t, p, rs...)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		again := openAt(t, fs, "projection")
		if cp := again.Checkpoint(); cp.Seq != 6 || cp.Feed != 3 || again.AppliedFeed() != 3 {
			t.Errorf("reopened: Checkpoint() = %+v, AppliedFeed() = %d; want seq 6, feed 3", cp, again.AppliedFeed())
		}
		// Folding on counts on from there.
		apply(t, again, h.set(bob, "", events.Busy))
		if got := again.AppliedFeed(); got != 4 {
			t.Errorf("AppliedFeed() after one more visible change = %d, want 4", got)
		}
	})
}

// waitInBackground runs wait(want) on a goroutine of its own, for up to
// testTimeout, and returns where its error comes.
func waitInBackground(wait func(context.Context, uint64) error, want uint64) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		done <- wait(ctx, want)
	}()
	return done
}

// notReturned fails the test if the wait behind done has returned.
func notReturned(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned %v", what, err)
	default:
	}
}

// returnsNil fails the test unless the wait behind done returns nil in time.
func returnsNil(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s = %v, want nil", what, err)
		}
	case <-time.After(testTimeout):
		t.Fatalf("%s still waiting", what)
	}
}

// timesOut waits for want with 20ms to wait, and checks that it fails with a
// *NotReachedError wrapping ErrNotReached and context.DeadlineExceeded.
func timesOut(t *testing.T, wait func(context.Context, uint64) error, want uint64, what string) (*NotReachedError, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := wait(ctx, want)
	if !errors.Is(err, ErrNotReached) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s = %v, want ErrNotReached and context.DeadlineExceeded", what, err)
	}
	var nre *NotReachedError
	if !errors.As(err, &nre) {
		t.Fatalf("%s = %T, want a *NotReachedError", what, err)
	}
	return nre, err
}

// mustView returns the View of contact.
func mustView(t *testing.T, p *Projection, contact string) View {
	t.Helper()
	v, err := p.View(contact)
	if err != nil {
		t.Fatalf("View(%q) = %v", contact, err)
	}
	return v
}

func TestReset(t *testing.T) {
	fs := vfs.NewCrashableMem()
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(7, 7)), 10, 100)
	// Fold the log and close, so that what Reset removes is on disk, synced.
	first := openAt(t, fs, "projection")
	apply(t, first, h.records()...)
	want := snapshot(t, first)
	if err := first.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	p := openAt(t, fs, "projection")
	if err := p.Reset(); err != nil {
		t.Fatalf("Reset() = %v", err)
	}
	checkEmpty := func(t *testing.T, p *Projection) {
		t.Helper()
		if cp := p.Checkpoint(); cp != (Checkpoint{}) {
			t.Errorf("Checkpoint() = %+v, want zero", cp)
		}
		if got := p.Applied(); got != 0 {
			t.Errorf("Applied() = %d, want 0", got)
		}
		if got := p.AppliedFeed(); got != 0 {
			t.Errorf("AppliedFeed() = %d, want 0", got)
		}
		if st := snapshot(t, p); len(st) != 0 {
			t.Errorf("Each() found %d states, want none", len(st))
		}
		for c := range want {
			if v, err := p.View(c); err != nil || v != (View{Contact: c}) {
				t.Errorf("View(%q) = %+v, %v; want Unknown at seq 0", c, v, err)
			}
		}
	}
	t.Run("empties", func(t *testing.T) { checkEmpty(t, p) })
	t.Run("survives a crash", func(t *testing.T) {
		// Only what was synced survives: Reset must have synced.
		crashed := fs.CrashClone(vfs.CrashCloneCfg{})
		checkEmpty(t, openAt(t, crashed, "projection"))
	})
	t.Run("rebuilds from the log", func(t *testing.T) {
		apply(t, p, h.records()...)
		if d := diffStates(snapshot(t, p), want); d != "" {
			t.Errorf("states after folding the log again:\n%s", d)
		}
	})
}

func TestEach(t *testing.T) {
	contacts := []string{"sip:zed@contoso.com", "+15551234567", "0800", "Zed", "alice", "sip:alice@contoso.com",
		"~tilde", "sip:ünïcødé@contoso.com", "a", "a%2E"}
	rng := rand.New(rand.NewPCG(8, 8))
	shuffled := slices.Clone(contacts)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	h := newHistory()
	for _, c := range shuffled {
		h.set(c, "", events.Online)
	}
	p := openMem(t)
	apply(t, p, h.records()...)

	want := slices.Clone(contacts)
	slices.Sort(want)

	t.Run("all in order", func(t *testing.T) {
		var got []string
		if err := p.Each(func(s State) bool { got = append(got, s.Contact); return true }); err != nil {
			t.Fatalf("Each() = %v", err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Each() visited\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("stops", func(t *testing.T) {
		var got []string
		if err := p.Each(func(s State) bool { got = append(got, s.Contact); return len(got) < 3 }); err != nil {
			t.Fatalf("Each() = %v", err)
		}
		if !slices.Equal(got, want[:3]) {
			t.Errorf("Each() stopping after 3 visited %q, want %q", got, want[:3])
		}
	})
	t.Run("states", func(t *testing.T) {
		err := p.Each(func(s State) bool {
			st, _, err := p.State(s.Contact)
			if err != nil {
				t.Errorf("State(%q) = %v", s.Contact, err)
			} else if d := diffState(s, st); d != "" {
				t.Errorf("Each gave %q as %s", s.Contact, d)
			}
			return true
		})
		if err != nil {
			t.Fatalf("Each() = %v", err)
		}
	})
}

// Benchmarks.

// BenchmarkApply folds batches of 1000 events, each a visible change of one of
// 1000 contacts, into a projection on disk.
func BenchmarkApply(b *testing.B) {
	const batch = 1000
	// Two batches that undo each other, so that every batch is a correct chain.
	var data [2][][]byte
	for i := range batch {
		c := fmt.Sprintf("sip:user%04d@contoso.com", i)
		up := events.Event{Contact: c, Name: "User", Status: events.Online, Previous: events.Away, At: base, Cause: events.CauseUser}
		down := up
		down.Status, down.Previous = events.Away, events.Online
		data[0], data[1] = append(data[0], up.Encode()), append(data[1], down.Encode())
	}
	p, err := Open(b.TempDir(), Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	records := make([]Record, batch)
	var seq uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range records {
			seq++
			records[j] = Record{Seq: seq, Data: data[i%2][j]}
		}
		if err := p.Apply(records); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// viewBench opens a projection of 100k contacts, caches warm, and returns it
// with their IDs in a random order.
func viewBench(b *testing.B, cacheSize int64) (*Projection, []string) {
	const contacts = 100_000
	p, err := Open(b.TempDir(), Options{Logger: quiet, CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	ids := make([]string, contacts)
	records := make([]Record, 0, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("sip:user%06d@contoso.com", i)
		e := events.Event{Contact: ids[i], Name: "User", Status: events.Online, Previous: events.Unknown, At: base, Cause: events.CauseUser}
		records = append(records, Record{Seq: uint64(i + 1), Data: e.Encode()})
		if len(records) == cap(records) || i == len(ids)-1 {
			if err := p.Apply(records); err != nil {
				b.Fatal(err)
			}
			records = records[:0]
		}
	}
	// Warm the caches with one scan, as a projection that has served a while.
	if err := p.Each(func(State) bool { return true }); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return p, ids
}

// BenchmarkView: one status lookup, a random one of 100k contacts.
func BenchmarkView(b *testing.B) {
	p, ids := viewBench(b, 64<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := p.View(ids[i%len(ids)])
		if err != nil || v.Status != events.Online {
			b.Fatalf("View = %+v, %v", v, err)
		}
	}
}

// BenchmarkViews: the lookups of a subscriber's batch of 256 changes, random
// contacts of 100k, with Pebble's default cache (8 MiB) and the engine's; one
// op is one contact, to compare with BenchmarkView.
func BenchmarkViews(b *testing.B) {
	for _, cache := range []int64{0, 64 << 20} {
		b.Run(fmt.Sprintf("cache=%dMiB", max(cache>>20, 8)), func(b *testing.B) {
			p, ids := viewBench(b, cache)
			const batch = 256
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				from := i % (len(ids) - batch)
				views, err := p.Views(ids[from : from+batch])
				if err != nil || views[0].Status != events.Online {
					b.Fatalf("Views = %+v, %v", views[0], err)
				}
			}
		})
	}
}

// TestNewerSchemaStopsTheFold: an event written by a newer engine is not stepped
// over as malformed; the fold stops with nothing of the batch applied.
func TestNewerSchemaStopsTheFold(t *testing.T) {
	p := openMem(t)
	h := newHistory()
	first := h.set(alice, "Alice", events.Online)
	apply(t, p, first)
	newer := Record{Seq: first.Seq + 2, Data: []byte(`{"v":3,"contact":"bob","status":"away","previous":"unknown","at":"2026-11-24T00:00:00Z","cause":"user"}`)}
	err := p.Apply([]Record{h.set(alice, "", events.Away), newer})
	if !errors.Is(err, events.ErrUnsupportedVersion) {
		t.Fatalf("Apply with a v3 event = %v, want ErrUnsupportedVersion", err)
	}
	if got := p.Checkpoint().Seq; got != first.Seq {
		t.Errorf("checkpoint moved to %d, want it left at %d", got, first.Seq)
	}
	if st, _, _ := p.State(alice); st.Status != events.Online {
		t.Errorf("alice = %s, want online: nothing of the batch may be applied", st.Status)
	}
}

// TestViewsReadsWhatViewReads: the views of many contacts at once, in any
// order, repeated and never seen ones among them, are those View gives one by
// one, in the order asked; after more changes too (in the memtable and in
// files).
func TestViewsReadsWhatViewReads(t *testing.T) {
	p := openMem(t)
	h := newHistory()
	rng := rand.New(rand.NewPCG(7, 7))
	randomHistory(h, rng, 50, 600)
	apply(t, p, h.records()...)
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	n := h.last()
	randomHistory(h, rng, 50, 200)
	apply(t, p, h.records(int(n))...)
	var ask []string
	for range 300 {
		ask = append(ask, fmt.Sprintf("sip:user%03d@contoso.com", rng.IntN(60))) // 50 to 59 never seen
	}
	ask = append(ask, "zzz", "a", ask[0])
	got, err := p.Views(ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ask) {
		t.Fatalf("%d views for %d contacts", len(got), len(ask))
	}
	unknown := 0
	for i, c := range ask {
		want, err := p.View(c)
		if err != nil {
			t.Fatal(err)
		}
		if got[i] != want {
			t.Errorf("Views, contact %d (%s): %+v; View: %+v", i, c, got[i], want)
		}
		if want.Status == events.Unknown {
			unknown++
		}
	}
	if unknown == 0 || unknown == len(ask) {
		t.Errorf("%d of %d contacts never seen: the test needs both kinds", unknown, len(ask))
	}
}
