package projections

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/tail"
)

// Keys. Contact states live under stateKeyPrefix followed by the contact ID; the
// checkpoint has a key of its own. Both are written in the same batch.
const (
	stateKeyPrefix = "s/"
	checkpointKey  = "m/checkpoint"
	// partsKey holds, for a log of several partitions, the sequence in each
	// partition of the last event applied from it (events.Origin): written
	// in the batch of the checkpoint, absent with one partition.
	partsKey     = "m/parts"
	formatKey    = "m/format"
	formatPrefix = "presence-projection-"
	// formatVersion is the store's format: 2 had times as seconds and
	// nanoseconds; 3 has feed positions (the checkpoint's Feed, View.Seq).
	formatVersion = formatPrefix + "3"
)

// Record is one message of the log as the fold consumes it: its stream sequence
// and its data, undecoded.
type Record = tail.Record

// Projection is the read model: the current state of every contact, folded from
// the log into Pebble, with the checkpoint of the last record applied. All its
// methods are safe for concurrent use; Apply and Reset are serialised.
type Projection struct {
	db     *pebble.DB
	dir    string
	opts   Options
	logger *slog.Logger

	writeMu sync.Mutex // serialises Apply and Reset

	mu         sync.Mutex
	checkpoint Checkpoint
	parts      []uint64      // per partition, the sequence of the last event applied (partsKey)
	advanced   chan struct{} // closed and replaced when the checkpoint moves

	applied   atomic.Uint64 // checkpoint.Seq, for lock-free reads
	feed      atomic.Uint64 // checkpoint.Feed, for lock-free reads
	folded    atomic.Uint64 // events folded
	malformed atomic.Uint64 // records skipped as malformed
	batches   atomic.Uint64 // Pebble batches committed

	// cache keeps the states read last (nil: none). A read that fills it
	// holds cacheMu shared from its read of the store to its put; the fold
	// takes cacheMu to update the cache after each commit, and only then moves
	// the checkpoint. So a fill that read the store before a commit is updated
	// by it, one that read after it holds what it committed, and whoever has
	// waited for a checkpoint finds the cache at least that new.
	cache   *stateCache
	cacheMu sync.RWMutex
	// testHookAdvance, in tests, runs as the fold is about to move the
	// checkpoint.
	testHookAdvance func()

	// closeMu guards db against use after Close: readers hold it shared.
	closeMu  sync.RWMutex
	closed   bool
	closeErr error
}

// Open opens (or creates) the projection stored in dir. It refuses a directory
// that holds something other than a projection.
func Open(dir string, opts Options) (*Projection, error) {
	opts = opts.withDefaults()
	if err := recoverSwap(dir, opts); err != nil {
		return nil, fmt.Errorf("open projection %q: finish an interrupted rebuild: %w", dir, err)
	}
	db, err := openPebble(dir, opts)
	if err != nil {
		return nil, err
	}
	p := &Projection{db: db, dir: dir, opts: opts, logger: opts.Logger, advanced: make(chan struct{}),
		cache: newStateCache(opts.StateCache)}
	if err := p.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open projection %q: %w", dir, err)
	}
	return p, nil
}

// openPebble opens the store in dir with opts.
func openPebble(dir string, opts Options) (*pebble.DB, error) {
	logger := opts.Logger
	popts := &pebble.Options{FS: fsOf(opts), Logger: pebbleLogger{logger}, DisableWAL: opts.DisableWAL,
		ErrorIfNotExists: opts.errorIfNotExists,
		EventListener: &pebble.EventListener{
			// Pebble's default is to stop the process; the read that found the
			// damage fails with ErrCorrupt instead, and the engine rebuilds.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				logger.Error("pebble: a file of the projection is damaged", "path", info.Path, "err", info.Details)
			},
		}}
	if opts.CacheSize > 0 {
		cache := pebble.NewCache(opts.CacheSize)
		defer cache.Unref()
		popts.Cache = cache
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("open projection %q: %w", dir, damaged(err))
	}
	return db, nil
}

// load reads the format marker and the checkpoint, writing them on a new store.
// A store of another projection format is emptied, to be rebuilt from the log; a
// store that holds anything else is refused.
func (p *Projection) load() error {
	format, err := p.get(formatKey)
	err = damaged(err)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		empty, err := p.empty()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w: it holds something other than a projection (no format marker)", ErrCorrupt)
		}
		return p.initialize()
	case err != nil:
		return err
	case string(format) != formatVersion && strings.HasPrefix(string(format), formatPrefix):
		// Rebuildable from the log, a store of another format is folded
		// again: an older one is an upgrade, expected; a newer one was
		// written by a newer engine, and is said louder.
		level, msg := slog.LevelInfo, "projection: stored in an older format (upgrade); emptying it to rebuild it from the log"
		if !olderFormat(string(format)) {
			level, msg = slog.LevelWarn, "projection: stored in another format (a newer engine's?); emptying it to rebuild it from the log"
		}
		p.logger.Log(context.Background(), level, msg, "dir", p.dir, "format", string(format), "want", formatVersion)
		if err := p.db.DeleteRange([]byte{0}, []byte{0xff}, p.sync()); err != nil {
			return err
		}
		return p.initialize()
	case string(format) != formatVersion:
		return fmt.Errorf("%w: format marker %q is not a projection's", ErrCorrupt, format)
	}
	raw, err := p.get(checkpointKey)
	if err != nil {
		return fmt.Errorf("%w: read checkpoint: %v", ErrCorrupt, err)
	}
	cp, err := unmarshalCheckpoint(raw)
	if err != nil {
		return err
	}
	var parts []uint64
	switch raw, err := p.get(partsKey); {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("%w: read the partitions' checkpoint: %v", ErrCorrupt, err)
	default:
		if parts, err = unmarshalParts(raw); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.checkpoint, p.parts = cp, parts
	p.applied.Store(cp.Seq)
	p.feed.Store(cp.Feed)
	p.mu.Unlock()
	return nil
}

// olderFormat reports whether format, a projection's, is older than
// formatVersion.
func olderFormat(format string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(format, formatPrefix))
	want, _ := strconv.Atoi(strings.TrimPrefix(formatVersion, formatPrefix))
	return err == nil && n < want
}

// empty reports whether the store holds no key at all.
func (p *Projection) empty() (bool, error) {
	it, err := p.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	defer it.Close()
	return !it.First(), it.Error()
}

// initialize writes the format marker and a zero checkpoint.
func (p *Projection) initialize() error {
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.Set([]byte(formatKey), []byte(formatVersion), nil); err != nil {
		return err
	}
	if err := b.Set([]byte(checkpointKey), marshalCheckpoint(Checkpoint{}), nil); err != nil {
		return err
	}
	return b.Commit(p.sync())
}

// sync is the write option of the commits that wait for the disk: without a
// write-ahead log there is nothing to wait for.
func (p *Projection) sync() *pebble.WriteOptions {
	if p.opts.DisableWAL {
		return pebble.NoSync
	}
	return pebble.Sync
}

// get returns a copy of the value of key.
func (p *Projection) get(key string) ([]byte, error) {
	v, closer, err := p.db.Get([]byte(key))
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// Dir returns the directory the projection is stored in.
func (p *Projection) Dir() string { return p.dir }

// Apply folds records, in log order, into the projection and moves the checkpoint
// to the last of them, all in one Pebble batch: after a crash the projection holds
// all of them or none. Each visible change moves the checkpoint's feed position
// on by one, and is the feed position of its contact's View. Records at or below the checkpoint are skipped, so a record
// is never applied twice. A record that does not decode as an event is logged,
// counted and stepped over: the log is the truth, and a bad record in it must not
// stop the fold. An event of a newer schema version stops it instead (the error
// wraps events.ErrUnsupportedVersion): it is a change this engine cannot read.
func (p *Projection) Apply(records []Record) error {
	if len(records) == 0 {
		return nil
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}

	cp := p.Checkpoint()
	feed := cp.Feed
	var parts []uint64 // a copy, once an event came from a partition's stream
	b := p.db.NewBatch()
	defer b.Close()
	var (
		touched map[string]*State // states written in this batch, for hidden changes
		// endpoints written in this batch
		touchedEndpoints map[string]*Endpoints
		buf              []byte
		folded           uint64
		malformed        uint64
		last             *Record
	)
	for i := range records {
		r := &records[i]
		if r.Seq <= cp.Seq || (last != nil && r.Seq <= last.Seq) {
			continue
		}
		last = r
		source := r.Header.Get(events.SourceHeader)
		part, partSeq, err := events.Origin(source, r.Seq)
		if err != nil {
			// Not from a partition of this log: the log's sources are not
			// the engine's. Stop, with nothing of this batch applied.
			return fmt.Errorf("%w: the log sources a stream that is not one of its partitions", err)
		}
		if source != "" {
			// Every record of a partition moves its sequence on, an event
			// or not: its owner waits for the projection to reach its
			// stream's last sequence.
			if parts == nil {
				parts = p.partsCopy()
			}
			for len(parts) <= part {
				parts = append(parts, 0)
			}
			parts[part] = partSeq
		}
		e, err := events.DecodeEvent(r.Data)
		if errors.Is(err, events.ErrUnsupportedVersion) {
			// Written by a newer engine: stepping over it would serve state the
			// log contradicts. Stop, with nothing of this batch applied.
			return fmt.Errorf("log seq %d: %w: upgrade this engine", r.Seq, err)
		}
		if err != nil {
			malformed++
			p.logger.Error("projection: skipping a log record that is not an event", "seq", r.Seq, "err", err)
			continue
		}
		st, err := p.prior(e, touched)
		if err != nil {
			return p.damaged(fmt.Errorf("apply seq %d: %w", r.Seq, err))
		}
		if folded := p.opts.EventListener.Folded; folded != nil {
			folded(r.Seq, e)
		}
		if e.Visible() {
			feed++
		}
		st.Fold(e, partSeq, feed)
		if touched == nil {
			touched = make(map[string]*State)
		}
		touched[e.Contact] = st
		buf = st.marshal(buf[:0])
		if err := b.Set(stateKey(e.Contact), buf, nil); err != nil {
			return err
		}
		if e.Op != events.OpSet && e.Op != events.OpShow {
			if err := p.foldEndpoints(b, e, &touchedEndpoints); err != nil {
				return err
			}
		}
		folded++
	}
	if last == nil {
		return nil
	}
	next := Checkpoint{Seq: last.Seq, Sum: Sum(last.Data), Feed: feed}
	if err := b.Set([]byte(checkpointKey), marshalCheckpoint(next), nil); err != nil {
		return err
	}
	if parts != nil {
		if err := b.Set([]byte(partsKey), marshalParts(parts), nil); err != nil {
			return err
		}
	}
	// The projection is rebuildable from the log, so its commits need not wait for
	// fsync: a crash loses at most a suffix, and the checkpoint goes with it.
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit projection batch up to seq %d: %w", next.Seq, err)
	}
	if p.cache != nil {
		p.cacheMu.Lock()
		for contact, st := range touched {
			p.cache.update(contact, *st)
		}
		p.cacheMu.Unlock()
	}
	p.folded.Add(folded)
	p.malformed.Add(malformed)
	p.batches.Add(1)
	if p.testHookAdvance != nil {
		p.testHookAdvance()
	}
	p.advance(next, parts)
	return nil
}

// prior returns the state an event applies to. A visible change replaces every
// field, so it needs no read; a hidden one keeps the visible half, so it reads the
// state written earlier in this batch or stored.
func (p *Projection) prior(e events.Event, touched map[string]*State) (*State, error) {
	if st, ok := touched[e.Contact]; ok {
		return st, nil
	}
	if e.Visible() {
		return &State{}, nil
	}
	st, _, err := p.state(e.Contact)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

func stateKey(contact string) []byte {
	return append([]byte(stateKeyPrefix), contact...)
}

// State returns the whole state of a contact, the truth included, and whether the
// contact has ever been seen. Only the contact itself may be shown the truth:
// everything that faces others reads View.
func (p *Projection) State(contact string) (State, bool, error) {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return State{}, false, ErrClosed
	}
	st, seen, err := p.state(contact)
	return st, seen, p.damaged(err)
}

func (p *Projection) state(contact string) (State, bool, error) {
	if p.cache == nil {
		return readState(p.db, contact)
	}
	p.cacheMu.RLock()
	defer p.cacheMu.RUnlock()
	if st, seen, ok := p.cache.get(contact); ok {
		return st, seen, nil
	}
	st, seen, err := readState(p.db, contact)
	if err == nil {
		p.cache.put(contact, st)
	}
	return st, seen, err
}

// View returns a contact as subscribers see it: the visible status, and the name,
// feed position and time of the last visible change. A never-seen contact reads
// Unknown with position 0.
func (p *Projection) View(contact string) (View, error) {
	st, _, err := p.State(contact)
	return st.Visible, err
}

// Views returns the View of each contact, in the order given, as View does,
// each at least as new as the checkpoint when it was called. It reads the
// states that are not in the cache in key order with one iterator, which costs
// less than a point read each when there are many.
func (p *Projection) Views(contacts []string) (_ []View, err error) {
	defer func() { err = p.damaged(err) }()
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.cacheMu.RLock()
	defer p.cacheMu.RUnlock()
	out := make([]View, len(contacts))
	var missed []int // the contacts not in the cache
	for i, c := range contacts {
		if st, _, ok := p.cache.get(c); ok {
			out[i] = st.Visible
		} else {
			missed = append(missed, i)
		}
	}
	if len(missed) == 0 {
		return out, nil
	}
	slices.SortFunc(missed, func(a, b int) int { return strings.Compare(contacts[a], contacts[b]) })
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(stateKeyPrefix), UpperBound: []byte("s0")})
	if err != nil {
		return nil, damaged(err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("read states: %w", damaged(cerr))
		}
	}()
	var key []byte
	for _, i := range missed {
		c := contacts[i]
		key = append(append(key[:0], stateKeyPrefix...), c...)
		if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
			if err := it.Error(); err != nil {
				return nil, fmt.Errorf("read state of %q: %w", c, damaged(err))
			}
			out[i] = View{Contact: c}
			p.cache.put(c, State{Contact: c, Visible: out[i]})
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read state of %q: %w", c, damaged(err))
		}
		st, err := unmarshalState(c, v)
		if err != nil {
			return nil, err
		}
		out[i] = st.Visible
		p.cache.put(c, st)
	}
	return out, nil
}

// Reset empties the projection: every state goes and the checkpoint (log
// sequence and feed position) returns to zero, in one synced batch. The fold then rebuilds it from the log.
func (p *Projection) Reset() error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte(stateKeyPrefix), []byte("s0"), nil); err != nil { // '0' follows '/'
		return err
	}
	if err := b.DeleteRange([]byte(endpointsKeyPrefix), []byte("e0"), nil); err != nil {
		return err
	}
	if err := b.Set([]byte(checkpointKey), marshalCheckpoint(Checkpoint{}), nil); err != nil {
		return err
	}
	if err := b.Delete([]byte(partsKey), nil); err != nil {
		return err
	}
	if err := b.Commit(p.sync()); err != nil {
		return fmt.Errorf("reset projection %q: %w", p.dir, err)
	}
	p.cacheMu.Lock()
	p.cache.clear()
	p.cacheMu.Unlock()
	p.mu.Lock()
	p.checkpoint, p.parts = Checkpoint{}, nil
	p.applied.Store(0)
	p.feed.Store(0)
	p.mu.Unlock()
	return nil
}

// Each calls fn with every contact's state in contact ID order, until fn returns
// false or an error occurs.
func (p *Projection) Each(fn func(State) bool) error {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	return p.damaged(eachState(p.db, fn))
}

// damaged tells the EventListener when err says the store is damaged, and
// returns err.
func (p *Projection) damaged(err error) error {
	if corrupt := p.opts.EventListener.Corrupt; corrupt != nil && errors.Is(err, ErrCorrupt) {
		corrupt(err)
	}
	return err
}

// Metrics is a snapshot of the projection's counters.
type Metrics struct {
	Applied   uint64 `json:"applied"`   // log sequence of the last record applied
	Folded    uint64 `json:"folded"`    // events folded since Open
	Malformed uint64 `json:"malformed"` // log records skipped since Open because they are not events
	Batches   uint64 `json:"batches"`   // Pebble batches committed since Open
}

// Metrics returns a snapshot of the projection's counters.
func (p *Projection) Metrics() Metrics {
	return Metrics{Applied: p.Applied(), Folded: p.folded.Load(), Malformed: p.malformed.Load(), Batches: p.batches.Load()}
}

// Close flushes and closes the store; every later call fails with ErrClosed. It
// is safe to call more than once.
func (p *Projection) Close() error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return p.closeErr
	}
	p.closed = true
	if err := p.db.Flush(); err != nil {
		p.closeErr = err
	}
	if err := p.db.Close(); err != nil && p.closeErr == nil {
		p.closeErr = err
	}
	return p.closeErr
}
