package projections

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCrashConsistency crashes the projection's filesystem after every batch,
// keeping a random part of what was written but not synced, and checks that
// the projection found after each crash is a consistent prefix of the log
// (DESIGN.md §3): its checkpoint is the end of a batch that was applied, or
// zero, and its states are exactly a fold of the log up to that checkpoint.
func TestCrashConsistency(t *testing.T) {
	const (
		batches  = 30
		contacts = 40
	)
	rng := rand.New(rand.NewPCG(2026, 11))
	crashRNG := rand.New(rand.NewPCG(24, 5))

	// Batches of 1 to 60 events, of up to ~20 KiB: some fit in one 4 KiB block
	// of the filesystem, most span several. (Larger batches make a torn WAL
	// record slow to replay: Pebble looks for a bit flip in it.)
	h := newHistory()
	var ends []uint64
	for range batches {
		randomHistory(h, rng, contacts, 1+rng.IntN(60))
		ends = append(ends, h.last())
	}
	all := h.records()

	want := foldsOf(t, all)

	fs := vfs.NewCrashableMem()
	p := openAt(t, fs, "projection")
	boundary := map[uint64]bool{0: true}
	found := map[uint64]bool{} // checkpoints found after a crash
	var from uint64
	for b, end := range ends {
		apply(t, p, all[from:end]...)
		from = end
		boundary[end] = true
		for _, percent := range []int{0, 50, 100} {
			name := fmt.Sprintf("after batch %d (seq %d), %d%% of unsynced data", b+1, end, percent)
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: percent, RNG: crashRNG})
			// Even at 100% a crash may lose a suffix: a commit without sync
			// may not have reached the filesystem yet.
			found[checkCrashed(t, name, crashed, boundary, end, false, all, want)] = true
		}
	}
	// Close flushes: after it nothing is lost, even keeping no unsynced data.
	if err := p.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	checkCrashed(t, "after Close, nothing unsynced", fs.CrashClone(vfs.CrashCloneCfg{}), boundary, h.last(), true, all, want)

	// The test means something only if crashes kept different prefixes.
	delete(found, 0)
	if len(found) < 3 {
		t.Errorf("the crashes kept only %d different non-empty prefixes of the log; want at least 3 for the test to mean anything", len(found))
	}
	t.Logf("%d crashes kept %d different non-empty prefixes of the log", 3*batches, len(found))
}

// foldsOf returns the states of a fresh fold of the log up to a sequence,
// folding each prefix once.
func foldsOf(t *testing.T, log []Record) func(seq uint64) map[string]State {
	folds := map[uint64]map[string]State{}
	return func(seq uint64) map[string]State {
		if st, ok := folds[seq]; ok {
			return st
		}
		st, _ := freshFold(t, log[:seq])
		folds[seq] = st
		return st
	}
}

// checkCrashed opens the projection on a crashed filesystem, checks it, and
// returns the checkpoint it found.
func checkCrashed(t *testing.T, name string, fs vfs.FS, boundary map[uint64]bool, applied uint64, complete bool,
	all []Record, want func(uint64) map[string]State) uint64 {
	t.Helper()
	p, err := Open("projection", Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatalf("%s: Open() = %v", name, err)
	}
	defer p.Close()
	cp := p.Checkpoint()
	switch {
	case !boundary[cp.Seq] || cp.Seq > applied:
		t.Fatalf("%s: checkpoint at seq %d, which no Apply ended at (applied up to %d)", name, cp.Seq, applied)
	case complete && cp.Seq != applied:
		t.Fatalf("%s: checkpoint at seq %d, want %d: nothing was lost", name, cp.Seq, applied)
	case cp.Seq > 0 && cp.Sum != Sum(all[cp.Seq-1].Data):
		t.Fatalf("%s: checkpoint %+v has the sum of another record than seq %d's", name, cp, cp.Seq)
	}
	if d := diffStates(snapshot(t, p), want(cp.Seq)); d != "" {
		t.Fatalf("%s: checkpoint at seq %d, but the states are not a fold of seqs 1-%d:\n%s", name, cp.Seq, cp.Seq, d)
	}
	// The reopened projection resumes: the rest of the log folds onto it and
	// gives the fold of the whole log applied so far.
	if cp.Seq < applied {
		if err := p.Apply(all[cp.Seq:applied]); err != nil {
			t.Fatalf("%s: Apply after reopening = %v", name, err)
		}
		if d := diffStates(snapshot(t, p), want(applied)); d != "" {
			t.Fatalf("%s: resumed from seq %d, the states are not a fold of seqs 1-%d:\n%s", name, cp.Seq, applied, d)
		}
	}
	return cp.Seq
}

// TestCrashDuringApply crashes the filesystem while Apply is running, at
// whatever point it has reached, and checks the same as TestCrashConsistency.
func TestCrashDuringApply(t *testing.T) {
	const batches = 40
	rng := rand.New(rand.NewPCG(7, 11))
	crashRNG := rand.New(rand.NewPCG(11, 7))
	h := newHistory()
	boundary := map[uint64]bool{0: true}
	var ends []uint64
	for range batches {
		randomHistory(h, rng, 40, 1+rng.IntN(60))
		ends = append(ends, h.last())
		boundary[h.last()] = true
	}
	all := h.records()
	want := foldsOf(t, all)

	fs := vfs.NewCrashableMem()
	p := openAt(t, fs, "projection")
	start, applied := make(chan []Record), make(chan error)
	go func() {
		for batch := range start {
			applied <- p.Apply(batch)
		}
	}()
	defer close(start)
	var from uint64
	for b, end := range ends {
		start <- all[from:end]
		// The crash races with the Apply just started.
		percent := []int{100, 50}[b%2]
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: percent, RNG: crashRNG})
		if err := <-applied; err != nil {
			t.Fatalf("Apply(seqs %d-%d) = %v", from+1, end, err)
		}
		checkCrashed(t, fmt.Sprintf("during batch %d (seqs %d-%d), %d%% of unsynced data", b+1, from+1, end, percent),
			crashed, boundary, end, false, all, want)
		from = end
	}
}
