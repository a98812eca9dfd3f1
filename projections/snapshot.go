package projections

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot is a consistent view of a projection as of one checkpoint: the states
// and the checkpoint it holds do not move while the projection goes on folding.
// Close it when done; a projection that is closed or rebuilt under it makes its
// reads fail with ErrClosed. A walk (Each, Digest, Compare) holds off a
// rebuild's switch and Close until it ends. A Snapshot is for one goroutine.
type Snapshot struct {
	p    *Projection
	db   *pebble.DB // the store the snapshot was taken of
	snap *pebble.Snapshot
	cp   Checkpoint
}

// Snapshot takes a snapshot of the projection.
func (p *Projection) Snapshot() (*Snapshot, error) {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return nil, ErrClosed
	}
	snap := p.db.NewSnapshot()
	raw, closer, err := snap.Get([]byte(checkpointKey))
	if err != nil {
		snap.Close()
		return nil, fmt.Errorf("%w: read checkpoint: %v", ErrCorrupt, err)
	}
	cp, err := unmarshalCheckpoint(raw)
	closer.Close()
	if err != nil {
		snap.Close()
		return nil, err
	}
	return &Snapshot{p: p, db: p.db, snap: snap, cp: cp}, nil
}

// Checkpoint returns how far the log had been applied when the snapshot was taken.
func (s *Snapshot) Checkpoint() Checkpoint { return s.cp }

// use runs fn with the snapshot's store still open.
func (s *Snapshot) use(fn func() error) error {
	s.p.closeMu.RLock()
	defer s.p.closeMu.RUnlock()
	if s.p.closed || s.p.db != s.db || s.snap == nil {
		return ErrClosed
	}
	return fn()
}

// Each calls fn with every contact's state in contact ID order, until fn returns
// false or an error occurs. A state that does not decode is an error naming the
// contact.
func (s *Snapshot) Each(fn func(State) bool) error {
	return s.use(func() error { return eachState(s.snap, fn) })
}

// Close releases the snapshot. It is safe to call more than once.
func (s *Snapshot) Close() error {
	s.p.closeMu.RLock()
	defer s.p.closeMu.RUnlock()
	if s.snap == nil || s.p.closed || s.p.db != s.db {
		s.snap = nil // released with its store
		return nil
	}
	err := s.snap.Close()
	s.snap = nil
	return err
}

// reader is what a state can be read from: the store or a snapshot of it.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func eachState(r reader, fn func(State) bool) error {
	it, err := newStateIter(r)
	if err != nil {
		return err
	}
	defer it.close()
	for ; it.valid(); it.next() {
		st, err := it.state()
		if err != nil {
			return err
		}
		if !fn(st) {
			break
		}
	}
	return damaged(it.it.Error())
}

func readState(r reader, contact string) (State, bool, error) {
	v, closer, err := r.Get(stateKey(contact))
	if errors.Is(err, pebble.ErrNotFound) {
		return State{Contact: contact, Visible: View{Contact: contact}}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("read state of %q: %w", contact, damaged(err))
	}
	defer closer.Close()
	st, err := unmarshalState(contact, v)
	if err != nil {
		return State{}, false, err
	}
	return st, true, nil
}

// Digest identifies a projection's whole state at one log sequence: two replicas,
// or a replica and a rebuild, that folded the same log up to the same sequence
// have the same digest, whatever their history or storage.
type Digest struct {
	Seq      uint64 `json:"seq"`      // the log sequence the state is at (the checkpoint)
	Contacts uint64 `json:"contacts"` // contacts in the state
	Sum      string `json:"sum"`      // "sha256:" and the hex of the hash
}

func (d Digest) String() string {
	return fmt.Sprintf("seq %d, %d contacts, %s", d.Seq, d.Contacts, d.Sum)
}

// digestVersion names the form hashed: change it when that form changes. 2:
// the checkpoint's feed position, and feed positions in the visible view.
const digestVersion = "presence-digest-2\n"

// Digest hashes the state as of the snapshot: SHA-256 over, in contact order,
// each contact's ID and state in the projection's own version-1 encoding (which
// has exactly one form per state), then the checkpoint.
func (s *Snapshot) Digest() (Digest, error) {
	h := sha256.New()
	h.Write([]byte(digestVersion))
	var (
		buf, val []byte
		n        uint64
	)
	err := s.Each(func(st State) bool {
		val = st.marshal(val[:0])
		buf = binary.AppendUvarint(buf[:0], uint64(len(st.Contact)))
		buf = append(buf, st.Contact...)
		buf = binary.AppendUvarint(buf, uint64(len(val)))
		h.Write(buf)
		h.Write(val)
		n++
		return true
	})
	if err != nil {
		return Digest{}, err
	}
	h.Write(marshalCheckpoint(s.cp))
	return Digest{Seq: s.cp.Seq, Contacts: n, Sum: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

// Digest takes a snapshot and returns its digest.
func (p *Projection) Digest() (Digest, error) {
	s, err := p.Snapshot()
	if err != nil {
		return Digest{}, err
	}
	defer s.Close()
	return s.Digest()
}

// Difference is one way in which a projection differs from what it should hold.
type Difference struct {
	Contact  string `json:"contact,omitempty"`
	Seq      uint64 `json:"seq"`  // the log sequence concerned
	What     string `json:"what"` // what differs: a field of the state, "contact", "checkpoint", ...
	Expected string `json:"expected"`
	Found    string `json:"found"`
}

func (d Difference) String() string {
	if d.Contact == "" {
		return fmt.Sprintf("seq %d: %s: expected %s, found %s", d.Seq, d.What, d.Expected, d.Found)
	}
	return fmt.Sprintf("contact %q, seq %d: %s: expected %s, found %s", d.Contact, d.Seq, d.What, d.Expected, d.Found)
}

// Compare walks two snapshots side by side, in contact order, and calls fn with
// each way in which found differs from want (the checkpoint first), until fn
// returns false. It returns the number of contacts compared.
func Compare(want, found *Snapshot, fn func(Difference) bool) (n uint64, err error) {
	if a, b := want.Checkpoint(), found.Checkpoint(); a != b {
		if !fn(Difference{Seq: b.Seq, What: "checkpoint",
			Expected: fmt.Sprintf("seq %d sum %016x feed %d", a.Seq, a.Sum, a.Feed), Found: fmt.Sprintf("seq %d sum %016x feed %d", b.Seq, b.Sum, b.Feed)}) {
			return 0, nil
		}
	}
	lock := func(s *Snapshot, fn func() error) error { return s.use(fn) }
	if want.p == found.p { // one projection: its lock is taken once
		lock = func(s *Snapshot, fn func() error) error {
			if s.snap == nil || s.p.db != s.db {
				return ErrClosed
			}
			return fn()
		}
	}
	err = want.use(func() error {
		return lock(found, func() error {
			w, err := newStateIter(want.snap)
			if err != nil {
				return err
			}
			defer w.close()
			f, err := newStateIter(found.snap)
			if err != nil {
				return err
			}
			defer f.close()
			for w.valid() || f.valid() {
				var ds []Difference
				switch {
				case !f.valid() || (w.valid() && w.contact() < f.contact()):
					ws, err := w.state()
					if err != nil {
						return err
					}
					ds = []Difference{{Contact: ws.Contact, Seq: ws.Seq, What: "contact", Expected: "a state", Found: "none"}}
					w.next()
					n++
				case !w.valid() || f.contact() < w.contact():
					fs, err := f.state()
					if err != nil {
						return err
					}
					ds = []Difference{{Contact: fs.Contact, Seq: fs.Seq, What: "contact", Expected: "never seen", Found: "a state"}}
					f.next()
				default:
					ws, err := w.state()
					if err != nil {
						return err
					}
					fs, err := f.state()
					if err != nil {
						ds = []Difference{{Contact: ws.Contact, Seq: ws.Seq, What: "state", Expected: "a state", Found: err.Error()}}
					} else {
						ds = stateDifferences(ws, fs)
					}
					w.next()
					f.next()
					n++
				}
				for _, d := range ds {
					if !fn(d) {
						return nil
					}
				}
			}
			return errors.Join(w.it.Error(), f.it.Error())
		})
	})
	return n, err
}

// stateIter walks the states of a store in contact order.
type stateIter struct{ it *pebble.Iterator }

func newStateIter(r reader) (*stateIter, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte(stateKeyPrefix), UpperBound: []byte("s0")})
	if err != nil {
		return nil, err
	}
	it.First()
	return &stateIter{it}, nil
}

func (s *stateIter) valid() bool     { return s.it.Valid() }
func (s *stateIter) next()           { s.it.Next() }
func (s *stateIter) close()          { s.it.Close() }
func (s *stateIter) contact() string { return string(s.it.Key()[len(stateKeyPrefix):]) }
func (s *stateIter) state() (State, error) {
	return unmarshalState(s.contact(), s.it.Value())
}

// stateDifferences lists the fields in which found differs from want.
func stateDifferences(want, found State) []Difference {
	var out []Difference
	add := func(what string, w, f any) {
		out = append(out, Difference{Contact: want.Contact, Seq: want.Seq, What: what,
			Expected: fmt.Sprint(w), Found: fmt.Sprint(f)})
	}
	quoted := func(s string) string { return fmt.Sprintf("%q", s) }
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "none"
		}
		return t.Format(time.RFC3339Nano)
	}
	if want.Status != found.Status {
		add("status", want.Status, found.Status)
	}
	if want.Previous != found.Previous {
		add("previous", want.Previous, found.Previous)
	}
	if want.Seq != found.Seq {
		add("seq", want.Seq, found.Seq)
	}
	if want.Name != found.Name {
		add("name", quoted(want.Name), quoted(found.Name))
	}
	if !want.At.Equal(found.At) {
		add("at", stamp(want.At), stamp(found.At))
	}
	if want.Cause != found.Cause {
		add("cause", want.Cause, found.Cause)
	}
	wv, fv := want.Visible, found.Visible
	if wv.Status != fv.Status {
		add("visible status", wv.Status, fv.Status)
	}
	if wv.Seq != fv.Seq {
		add("visible feed position", wv.Seq, fv.Seq)
	}
	if wv.Name != fv.Name {
		add("visible name", quoted(wv.Name), quoted(fv.Name))
	}
	if !wv.At.Equal(fv.At) {
		add("visible at", stamp(wv.At), stamp(fv.At))
	}
	if !wv.LastActive.Equal(fv.LastActive) {
		add("last active", stamp(wv.LastActive), stamp(fv.LastActive))
	}
	return out
}
