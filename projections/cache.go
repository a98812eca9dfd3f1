package projections

import (
	"hash/maphash"
	"sync"
)

// stateCache keeps the states of the contacts read last, so that the many
// readers of one change (every subscriber reads the status of every change it
// is handed) do not each go to the store. Reads fill it, the fold's own reads
// of prior states included; after each commit the fold updates the states of
// the batch it holds, and adds none. It never holds a state the store no
// longer has (see Projection's cacheMu). When full, a read's state takes the
// place of an arbitrary one.
type stateCache struct {
	seed   maphash.Seed
	max    int // states per shard
	shards [cacheShards]cacheShard
}

// cacheShards spreads the cache's locks: readers on every core, and the fold.
const cacheShards = 64

type cacheShard struct {
	mu     sync.Mutex
	states map[string]State // a never-seen contact's at sequence 0
}

// newStateCache returns a cache of about size states (at least one a shard),
// or nil for none.
func newStateCache(size int) *stateCache {
	if size <= 0 {
		return nil
	}
	c := &stateCache{seed: maphash.MakeSeed(), max: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].states = make(map[string]State)
	}
	return c
}

func (c *stateCache) shard(contact string) *cacheShard {
	return &c.shards[maphash.String(c.seed, contact)%cacheShards]
}

// get returns the contact's state, whether it was ever seen (a state of the
// store has the sequence of an event), and whether the cache holds it.
func (c *stateCache) get(contact string) (State, bool, bool) {
	if c == nil {
		return State{}, false, false
	}
	sh := c.shard(contact)
	sh.mu.Lock()
	st, ok := sh.states[contact]
	sh.mu.Unlock()
	return st, st.Seq != 0, ok
}

// put keeps a state read from the store.
func (c *stateCache) put(contact string, st State) {
	if c == nil {
		return
	}
	sh := c.shard(contact)
	sh.mu.Lock()
	if _, ok := sh.states[contact]; !ok && len(sh.states) >= c.max {
		for k := range sh.states { // Go's map order: an arbitrary one goes
			delete(sh.states, k)
			break
		}
	}
	sh.states[contact] = st
	sh.mu.Unlock()
}

// update replaces a state the cache holds with the one the fold just
// committed; a contact it does not hold stays out.
func (c *stateCache) update(contact string, st State) {
	if c == nil {
		return
	}
	sh := c.shard(contact)
	sh.mu.Lock()
	if _, ok := sh.states[contact]; ok {
		sh.states[contact] = st
	}
	sh.mu.Unlock()
}

func (c *stateCache) clear() {
	if c == nil {
		return
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.states)
		sh.mu.Unlock()
	}
}
