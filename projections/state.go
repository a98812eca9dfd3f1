package projections

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/presence-engine/presence/events"
)

// State is what the projection holds of one contact: the truth, as the contact
// itself sees it (MyStatus), and what everyone else sees. A State is a plain value.
type State struct {
	Contact  string
	Name     string        // friendly name as of the last event
	Status   events.Status // the true status, invisible included
	Previous events.Status // the true status before the last event
	Seq      uint64        // log sequence of the last event: in its partition's stream, with several (events.Origin)
	At       time.Time     // time of the last event
	Cause    events.Cause  // cause of the last event

	// Visible is what everyone but the contact sees: the visible status, and the
	// name, feed position and time of the last visible change. A hidden change
	// (offline to invisible or back) leaves it as it was, so nothing in it
	// reveals one.
	Visible View
}

// View is a contact as subscribers see it. A View is a plain value.
type View struct {
	Contact string
	Name    string        // friendly name as of the last visible change
	Status  events.Status // the visible status: never Invisible
	// Seq is the feed position of the last visible change: how many visible
	// changes the log holds up to it. 0 if never seen. Never a log sequence,
	// which counts hidden changes too.
	Seq uint64
	At  time.Time // time of the last visible change
	// LastActive is when the contact's user was last active, while every
	// endpoint of it is inactive and it transmits idle (XEP-0319's idle
	// since, events.Event.LastActive); zero otherwise, and while it is
	// shown offline. It moves with the contact's events that are shown,
	// or that change nothing shown; never with one held back or hidden.
	LastActive time.Time
}

// Fold applies one event at log sequence seq to the state of its contact; feed
// is the event's feed position if its change is visible (the number of visible
// changes in the log up to and including it), and is not used otherwise. This
// is the whole fold: the event carries everything, the state is only its last
// word. The zero State is a never-seen contact (Unknown).
func (s *State) Fold(e events.Event, seq, feed uint64) {
	s.Contact, s.Name, s.Status, s.Previous, s.Seq, s.At, s.Cause =
		e.Contact, e.Name, e.Status, e.Previous, seq, e.At, e.Cause
	if c, ok := events.ChangeOf(e); ok {
		s.Visible = View{Contact: e.Contact, Name: c.Name, Status: e.Status.Visible(), Seq: feed, At: e.At, LastActive: lastActive(e)}
	} else if !e.Held && e.Status.Visible() == s.Visible.Status { // nothing shown changes (lastActive: none for offline)
		s.Visible.LastActive = lastActive(e)
	}
}

// lastActive is the LastActive an event shows: none for a contact shown
// offline.
func lastActive(e events.Event) time.Time {
	if !e.Status.IsOnline() {
		return time.Time{}
	}
	return e.LastActive
}

// The stored form of a State: a version byte, then fixed and varint fields, then
// the names. Both halves (truth and visible) live in one value so that one read
// answers either question.
const stateVersion = 1

func (s *State) marshal(buf []byte) []byte {
	buf = append(buf, stateVersion)
	buf = binary.BigEndian.AppendUint16(buf, uint16(s.Status))
	buf = binary.BigEndian.AppendUint16(buf, uint16(s.Previous))
	buf = binary.AppendUvarint(buf, s.Seq)
	buf = appendTime(buf, s.At)
	buf = appendString(buf, string(s.Cause))
	buf = appendString(buf, s.Name)
	buf = binary.BigEndian.AppendUint16(buf, uint16(s.Visible.Status))
	buf = binary.AppendUvarint(buf, s.Visible.Seq)
	buf = appendTime(buf, s.Visible.At)
	buf = appendString(buf, s.Visible.Name)
	if !s.Visible.LastActive.IsZero() { // written only when there is one
		buf = appendTime(buf, s.Visible.LastActive)
	}
	return buf
}

// appendTime writes seconds and nanoseconds since the Unix epoch: every year an
// event may carry (0000 to 9999) fits, where UnixNano covers 1678 to 2262 only.
// The zero time is written as such.
func appendTime(buf []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(buf, 0)
	}
	buf = append(buf, 1)
	buf = binary.AppendVarint(buf, t.Unix())
	return binary.AppendUvarint(buf, uint64(t.Nanosecond()))
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decoder reads the stored form; the first problem sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (d *decoder) u16() uint16 {
	if d.err != nil || len(d.b) < 2 {
		d.fail("short value")
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) { // only the shortest form is written
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	if d.err != nil || len(d.b) == 0 {
		d.fail("short value")
		return time.Time{}
	}
	kind := d.b[0]
	d.b = d.b[1:]
	switch kind {
	case 0:
		return time.Time{}
	case 1:
		sec, nsec := d.varint(), d.uvarint()
		if d.err == nil && nsec >= 1e9 {
			d.fail("bad nanoseconds")
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	d.fail("bad time")
	return time.Time{}
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("bad string length")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) status() events.Status {
	s := events.Status(d.u16())
	if d.err == nil && !s.Valid() {
		d.fail(fmt.Sprintf("status 0x%04X is not a MISTATUS value", uint16(s)))
	}
	return s
}

func unmarshalState(contact string, b []byte) (State, error) {
	if len(b) == 0 || b[0] != stateVersion {
		return State{}, fmt.Errorf("%w: state of %q has an unknown format", ErrCorrupt, contact)
	}
	d := decoder{b: b[1:]}
	s := State{Contact: contact}
	s.Status = d.status()
	s.Previous = d.status()
	s.Seq = d.uvarint()
	s.At = d.time()
	s.Cause = events.Cause(d.str())
	s.Name = d.str()
	s.Visible.Contact = contact
	s.Visible.Status = d.status()
	s.Visible.Seq = d.uvarint()
	s.Visible.At = d.time()
	s.Visible.Name = d.str()
	if d.err == nil && len(d.b) != 0 {
		if s.Visible.LastActive = d.time(); d.err == nil && s.Visible.LastActive.IsZero() {
			d.fail("a zero last active is not written")
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return State{}, fmt.Errorf("state of %q: %w", contact, d.err)
	}
	return s, nil
}
