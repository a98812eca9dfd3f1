package projections

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/presence-engine/presence/events"
)

// TestCachedReadsFollowTheFold: states read once (and so kept in memory) read
// as the store holds them after later changes, through State, View and Views,
// as a fresh fold of the same log has them; after Reset they are gone.
func TestCachedReadsFollowTheFold(t *testing.T) {
	p := openMem(t)
	h := newHistory()
	rng := rand.New(rand.NewPCG(11, 11))
	var contacts []string
	for i := range 40 { // 30 to 39 never seen until later rounds
		contacts = append(contacts, fmt.Sprintf("sip:user%03d@contoso.com", i))
	}
	check := func(round int) {
		t.Helper()
		want, _ := freshFold(t, h.records())
		views, err := p.Views(contacts)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range contacts {
			w, ok := want[c]
			if !ok {
				w = State{Contact: c, Visible: View{Contact: c}}
			}
			got, seen, err := p.State(c)
			if err != nil {
				t.Fatal(err)
			}
			if seen != ok || diffState(got, w) != "" {
				t.Errorf("round %d: State(%s) = %+v (seen %v), want %+v (seen %v)", round, c, got, seen, w, ok)
			}
			if v, err := p.View(c); err != nil || v != w.Visible {
				t.Errorf("round %d: View(%s) = %+v, %v; want %+v", round, c, v, err, w.Visible)
			}
			if views[i] != w.Visible {
				t.Errorf("round %d: Views, %s: %+v; want %+v", round, c, views[i], w.Visible)
			}
		}
	}
	for round := range 6 {
		n := int(h.last())
		for range 50 {
			c := contacts[rng.IntN(30+round*2)]
			h.set(c, fmt.Sprintf("User %d", round), settable[rng.IntN(len(settable))])
		}
		apply(t, p, h.records(n)...)
		check(round)
	}
	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	for _, c := range contacts {
		if st, seen, err := p.State(c); err != nil || seen || st.Visible != (View{Contact: c}) {
			t.Errorf("after Reset: State(%s) = %+v, seen %v, %v; want never seen", c, st, seen, err)
		}
	}
}

// TestCachedReadsRaceTheFold: readers fill the cache while the fold commits
// changes of the same contacts, with more contacts than the cache holds so
// that reads keep missing it; once a batch is applied, every read gives what
// it committed, never a state read before it and kept.
func TestCachedReadsRaceTheFold(t *testing.T) {
	p, err := Open("p", Options{FS: vfs.NewMem(), Logger: quiet, StateCache: cacheShards})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := newHistory()
	var contacts []string
	for i := range 4 * cacheShards {
		contacts = append(contacts, fmt.Sprintf("sip:user%03d@contoso.com", i))
	}
	statuses := []events.Status{events.Online, events.Away, events.Busy, events.Offline}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				var err error
				if r%2 == 0 {
					_, _, err = p.State(contacts[rng.IntN(len(contacts))])
				} else {
					i := rng.IntN(len(contacts) - 8)
					_, err = p.Views(contacts[i : i+8])
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() { close(done); readers.Wait() }()
	for round := range 100 {
		n := int(h.last())
		for i, c := range contacts {
			h.set(c, "", statuses[(round+i)%len(statuses)])
		}
		apply(t, p, h.records(n)...)
		views, err := p.Views(contacts)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range contacts {
			st, _, err := p.State(c)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(n + i + 1); st.Seq != want || views[i].Seq != want {
				t.Fatalf("round %d: %s: State at seq %d, Views at seq %d, want %d: a read kept from before the batch",
					round, c, st.Seq, views[i].Seq, want)
			}
		}
	}
}

// TestStateCacheIsBounded: reading many contacts keeps about StateCache of
// them in memory, and a projection without the cache reads the same.
func TestStateCacheIsBounded(t *testing.T) {
	h := randomHistory(newHistory(), rand.New(rand.NewPCG(3, 3)), 500, 2000)
	var contacts []string
	for i := range 3000 {
		contacts = append(contacts, fmt.Sprintf("sip:user%03d@contoso.com", i))
	}
	read := func(opts Options) []View {
		opts.FS, opts.Logger = vfs.NewMem(), quiet
		p, err := Open("p", opts)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		apply(t, p, h.records()...)
		out, err := p.Views(contacts)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range contacts {
			if _, err := p.View(c); err != nil {
				t.Fatal(err)
			}
		}
		held := 0
		if p.cache != nil {
			for i := range p.cache.shards {
				held += len(p.cache.shards[i].states)
			}
		}
		if limit := max(opts.StateCache, 0); held > limit {
			t.Errorf("StateCache %d: %d states held", opts.StateCache, held)
		}
		return out
	}
	cached, uncached := read(Options{StateCache: 256}), read(Options{StateCache: -1})
	for i := range contacts {
		if cached[i] != uncached[i] {
			t.Errorf("%s: %+v with the cache, %+v without", contacts[i], cached[i], uncached[i])
		}
	}
}

// TestCacheIsCurrentBeforeTheCheckpointMoves: whoever waits for a checkpoint
// (WaitApplied, Applied) reads from the cache at once, in another goroutine
// than the fold's; so by the time the checkpoint moves, every state the cache
// holds of the batch's contacts is the one the batch committed.
func TestCacheIsCurrentBeforeTheCheckpointMoves(t *testing.T) {
	p := openMem(t)
	h := newHistory()
	var contacts []string
	for i := range 200 {
		contacts = append(contacts, fmt.Sprintf("sip:user%04d@contoso.com", i))
	}
	statuses := []events.Status{events.Online, events.Away, events.Busy, events.Offline}
	var want map[string]uint64 // each contact's seq once the batch is applied
	var stale []string
	p.testHookAdvance = func() {
		for c, seq := range want {
			if st, _, ok := p.cache.get(c); ok && st.Seq != seq {
				stale = append(stale, fmt.Sprintf("%s cached at seq %d, committed at %d", c, st.Seq, seq))
			}
		}
	}
	for k := range 5 {
		n := int(h.last())
		want = map[string]uint64{}
		for i, c := range contacts {
			want[c] = h.set(c, "", statuses[(k+i)%len(statuses)]).Seq
		}
		apply(t, p, h.records(n)...)
		if _, err := p.Views(contacts); err != nil { // all of them in the cache
			t.Fatal(err)
		}
	}
	if len(stale) > 0 {
		t.Errorf("%d states in the cache older than the checkpoint, for example %s", len(stale), stale[0])
	}
}
