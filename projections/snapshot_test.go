package projections

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/presence-engine/presence/events"
)

func digest(t *testing.T, p *Projection) Digest {
	t.Helper()
	d, err := p.Digest()
	if err != nil {
		t.Fatalf("Digest() = %v", err)
	}
	return d
}

func TestDigestIsTheStateAtASequence(t *testing.T) {
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(1, 1)), 50, 2000)
	recs := h.records()

	// However the log was cut into batches, the same state has the same digest.
	one, many := openMem(t), openMem(t)
	apply(t, one, recs...)
	for i := 0; i < len(recs); i += 7 {
		apply(t, many, recs[i:min(i+7, len(recs))]...)
	}
	d1, d2 := digest(t, one), digest(t, many)
	if d1 != d2 || d1.Seq != h.last() || d1.Contacts != 50 || !strings.HasPrefix(d1.Sum, "sha256:") {
		t.Fatalf("digests %s and %s; want equal, at seq %d, 50 contacts", d1, d2, h.last())
	}

	// A snapshot keeps its digest while the projection moves on.
	snap, err := one.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	more := h.set("c0", "Zed", events.Busy)
	if more.Seq != h.last() {
		t.Fatal("history out of step")
	}
	apply(t, one, h.records(len(recs))...)
	ds, err := snap.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if ds != d1 || snap.Checkpoint().Seq != d1.Seq {
		t.Errorf("snapshot digest %s after the projection moved on, want %s", ds, d1)
	}
	if d := digest(t, one); d == d1 || d.Seq != more.Seq {
		t.Errorf("digest after one more event %s; want another, at seq %d", d, more.Seq)
	}
}

func TestCompareNamesEveryDifference(t *testing.T) {
	h := newHistory()
	h.set("alice", "Alice", events.Online)
	h.set("bob", "Bob", events.Away)
	h.set("carol", "Carol", events.Busy)
	want, found := openMem(t), openMem(t)
	apply(t, want, h.records()...)
	apply(t, found, h.records()...)

	compare := func() []Difference {
		t.Helper()
		ws, err := want.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		fs, err := found.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer fs.Close()
		var out []Difference
		if _, err := Compare(ws, fs, func(d Difference) bool { out = append(out, d); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if d := compare(); len(d) != 0 {
		t.Fatalf("equal projections differ: %v", d)
	}

	// Behind the projection's back: bob's status changed, carol gone, dave added.
	st, _, _ := found.State("bob")
	st.Status, st.Visible.Status = events.Busy, events.Busy
	dave := State{Contact: "dave", Status: events.Online, Seq: 9, Visible: View{Contact: "dave", Status: events.Online, Seq: 9}}
	b := found.db.NewBatch()
	b.Set(stateKey("bob"), st.marshal(nil), nil)
	b.Delete(stateKey("carol"), nil)
	b.Set(stateKey("dave"), dave.marshal(nil), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	got := compare()
	wantDiffs := []Difference{
		{Contact: "bob", Seq: 2, What: "status", Expected: "away", Found: "busy"},
		{Contact: "bob", Seq: 2, What: "visible status", Expected: "away", Found: "busy"},
		{Contact: "carol", Seq: 3, What: "contact", Expected: "a state", Found: "none"},
		{Contact: "dave", Seq: 9, What: "contact", Expected: "never seen", Found: "a state"},
	}
	if len(got) != len(wantDiffs) {
		t.Fatalf("differences %v, want %v", got, wantDiffs)
	}
	for i := range got {
		if got[i] != wantDiffs[i] {
			t.Errorf("difference %d = %v, want %v", i, got[i], wantDiffs[i])
		}
	}

	// A projection further along differs in its checkpoint first.
	h.set("alice", "Alice", events.Away)
	apply(t, found, h.records(3)...)
	if got := compare(); len(got) == 0 || got[0].What != "checkpoint" {
		t.Errorf("differences of projections at other checkpoints: %v; want the checkpoint first", got)
	}
}

func TestFoldLogStopsAtTheSequence(t *testing.T) {
	js, stream := startLog(t)
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(2, 2)), 20, 500)
	publish(t, js, h, 0)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	p := openMem(t)
	var last uint64
	if err := p.FoldLog(ctx, stream, 321, func(applied uint64) { last = applied }); err != nil {
		t.Fatal(err)
	}
	want, cp := freshFold(t, h.records()[:321])
	if p.Checkpoint() != cp || last != 321 {
		t.Fatalf("folded to %+v (progress %d), want %+v", p.Checkpoint(), last, cp)
	}
	if d := diffStates(snapshot(t, p), want); d != "" {
		t.Fatalf("state after FoldLog(321): %s", d)
	}
	// On from there to the end; past the end is refused at once.
	if err := p.FoldLog(ctx, stream, h.last(), nil); err != nil || p.Applied() != h.last() {
		t.Fatalf("FoldLog to the end: applied %d, %v", p.Applied(), err)
	}
	if err := p.FoldLog(ctx, stream, h.last()+1, nil); err == nil {
		t.Error("FoldLog past the log's end: no error")
	}
}

func TestRebuildSwitchesStores(t *testing.T) {
	js, stream := startLog(t)
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(3, 3)), 30, 1000)
	publish(t, js, h, 0)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	fs := vfs.NewMem()
	p := openAt(t, fs, "projection")
	apply(t, p, h.records()...)
	before := digest(t, p)
	// Damage one state: the rebuild must not carry it over.
	st, _, _ := p.State("c1")
	st.Name = "forged"
	if err := p.db.Set(stateKey("c1"), st.marshal(nil), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// And one that a read then keeps in memory: the rebuild must not serve it.
	st2, _, err := readState(p.db, "c2")
	if err != nil {
		t.Fatal(err)
	}
	name2 := st2.Name
	st2.Name = "forged"
	if err := p.db.Set(stateKey("c2"), st2.marshal(nil), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := p.State("c2"); got.Name != "forged" {
		t.Fatalf("the damaged c2 reads %+v", got)
	}
	var progress []Progress
	snap, err := p.Rebuild(ctx, stream, func(pr Progress) { progress = append(progress, pr) })
	if err != nil {
		t.Fatal(err)
	}
	cp := snap.Checkpoint()
	snap.Close()
	if cp.Seq != h.last() || len(progress) == 0 || progress[len(progress)-1].Done != h.last() {
		t.Fatalf("rebuild switched at %+v with progress %v; want seq %d", cp, progress, h.last())
	}
	if d := digest(t, p); d != before {
		t.Errorf("digest after the rebuild %s, want %s (the undamaged state)", d, before)
	}
	if got, _, _ := p.State("c2"); got.Name != name2 {
		t.Errorf("after the rebuild c2 reads name %q, want %q: a state of the replaced store was kept", got.Name, name2)
	}
	for _, dir := range []string{"projection" + rebuildSuffix, "projection" + oldSuffix} {
		if _, err := fs.Stat(dir); err == nil {
			t.Errorf("%s is left after the rebuild", dir)
		}
	}
	// The projection goes on folding into the new store.
	h.set("c1", "Cee", events.Busy)
	publish(t, js, h, int(h.last())-1)
	apply(t, p, h.records(int(h.last())-1)...)
	if st, _, _ := p.State("c1"); st.Status != events.Busy || st.Name != "Cee" {
		t.Errorf("after the rebuild c1 is %+v", st)
	}
}

func TestOpenFinishesAnInterruptedSwitch(t *testing.T) {
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(4, 4)), 10, 100)
	fs := vfs.NewMem()
	p, err := Open("projection", Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, p, h.records()...)
	want := digest(t, p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash after the old store was moved aside, before the new one took its
	// place: the old one comes back, and the half-switched new one goes.
	if err := fs.Rename("projection", "projection"+oldSuffix); err != nil {
		t.Fatal(err)
	}
	if err := fs.MkdirAll("projection"+rebuildSuffix, 0o755); err != nil {
		t.Fatal(err)
	}
	p = openAt(t, fs, "projection")
	if d := digest(t, p); d != want {
		t.Errorf("after an interrupted switch the digest is %s, want %s", d, want)
	}
	for _, dir := range []string{"projection" + rebuildSuffix, "projection" + oldSuffix} {
		if _, err := fs.Stat(dir); err == nil {
			t.Errorf("%s is left after Open", dir)
		}
	}
}
