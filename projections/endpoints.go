package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/presence-engine/presence/events"
)

// Endpoints is what the projection holds of a contact's endpoints, preferred
// status and settings: what events.Aggregate decides its published status
// from. It is folded from the events that record them (events.Op) and kept
// apart from the contact's State, under a key of its own, so that the fold of
// a plain set, by far the most common event, reads and writes nothing more.
// An Endpoints is a plain value; its List is its own.
type Endpoints struct {
	// List holds the endpoints signed in, by ID. Each one's Expires is as of
	// the event that recorded it last (its At plus its Lease): heartbeats,
	// which extend it, are not events.
	List      []events.Endpoint
	Preferred events.Preferred
	Settings  events.Settings // events.DefaultSettings until the contact sets its own
}

// Fold applies an event's op to the endpoints. A plain set changes nothing.
func (x *Endpoints) Fold(e events.Event) {
	i, found := slices.BinarySearchFunc(x.List, e.Endpoint, func(ep events.Endpoint, id string) int { return strings.Compare(ep.ID, id) })
	switch e.Op {
	case events.OpSignIn, events.OpReport:
		ep := events.Endpoint{ID: e.Endpoint, Kind: e.EP.Kind, Status: e.EP.Status, Cause: e.EP.Cause,
			InactiveSince: e.EP.InactiveSince, Lease: e.EP.Lease, Expires: e.At.Add(e.EP.Lease)}
		if found {
			x.List[i] = ep
		} else {
			x.List = slices.Insert(x.List, i, ep)
		}
	case events.OpSignOut, events.OpExpire:
		if found {
			x.List = slices.Delete(x.List, i, i+1)
		}
		if len(x.List) == 0 {
			x.List = nil // as a contact with none reads
		}
	case events.OpPrefer:
		x.Preferred = e.Preferred
	case events.OpSettings:
		x.Settings = e.Settings
	}
}

const (
	endpointsKeyPrefix = "e/"
	endpointsVersion   = 1
)

func endpointsKey(contact string) []byte { return append([]byte(endpointsKeyPrefix), contact...) }

func (x *Endpoints) marshal(buf []byte) []byte {
	buf = append(buf, endpointsVersion)
	buf = binary.BigEndian.AppendUint16(buf, uint16(x.Preferred.Status))
	buf = appendTime(buf, x.Preferred.Until)
	transmit := byte(0)
	if x.Settings.TransmitIdle {
		transmit = 1
	}
	buf = append(buf, transmit)
	buf = binary.AppendVarint(buf, int64(x.Settings.IdleAfter))
	buf = binary.AppendVarint(buf, int64(x.Settings.AwayAfter))
	buf = binary.AppendUvarint(buf, uint64(len(x.List)))
	for _, ep := range x.List {
		buf = appendString(buf, ep.ID)
		buf = appendString(buf, string(ep.Kind))
		buf = binary.BigEndian.AppendUint16(buf, uint16(ep.Status))
		buf = appendString(buf, string(ep.Cause))
		buf = appendTime(buf, ep.InactiveSince)
		buf = binary.AppendVarint(buf, int64(ep.Lease))
		buf = appendTime(buf, ep.Expires)
	}
	return buf
}

func unmarshalEndpoints(contact string, b []byte) (Endpoints, error) {
	if len(b) == 0 || b[0] != endpointsVersion {
		return Endpoints{}, fmt.Errorf("%w: endpoints of %q have an unknown format", ErrCorrupt, contact)
	}
	d := decoder{b: b[1:]}
	var x Endpoints
	x.Preferred.Status = d.status()
	x.Preferred.Until = d.time()
	if d.err == nil && len(d.b) > 0 {
		x.Settings.TransmitIdle = d.b[0] == 1
		d.b = d.b[1:]
	}
	x.Settings.IdleAfter = time.Duration(d.varint())
	x.Settings.AwayAfter = time.Duration(d.varint())
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("bad endpoint count")
	}
	for i := uint64(0); d.err == nil && i < n; i++ {
		var ep events.Endpoint
		ep.ID = d.str()
		ep.Kind = events.EndpointKind(d.str())
		ep.Status = d.status()
		ep.Cause = events.Cause(d.str())
		ep.InactiveSince = d.time()
		ep.Lease = time.Duration(d.varint())
		ep.Expires = d.time()
		x.List = append(x.List, ep)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Endpoints{}, fmt.Errorf("endpoints of %q: %w", contact, d.err)
	}
	return x, nil
}

// Endpoints returns what the projection holds of a contact's endpoints,
// preferred status and settings: none, no preferred status and
// events.DefaultSettings for a contact that never had an endpoint.
func (p *Projection) Endpoints(contact string) (Endpoints, error) {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return Endpoints{}, ErrClosed
	}
	return p.endpoints(contact)
}

// endpoints is Endpoints, with closeMu held.
func (p *Projection) endpoints(contact string) (Endpoints, error) {
	b, err := p.get(string(endpointsKey(contact)))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return Endpoints{Settings: events.DefaultSettings}, nil
	case err != nil:
		return Endpoints{}, p.damaged(damaged(err))
	}
	x, err := unmarshalEndpoints(contact, b)
	if err != nil {
		return Endpoints{}, p.damaged(err)
	}
	return x, nil
}

// foldEndpoints applies an event's op to its contact's endpoints in batch b:
// those written earlier in the batch (touched) or stored.
func (p *Projection) foldEndpoints(b *pebble.Batch, e events.Event, touched *map[string]*Endpoints) error {
	x, ok := (*touched)[e.Contact]
	if !ok {
		stored, err := p.endpoints(e.Contact)
		if err != nil {
			return fmt.Errorf("apply the %s of %q: %w", e.Op, e.Contact, err)
		}
		x = &stored
		if *touched == nil {
			*touched = make(map[string]*Endpoints)
		}
		(*touched)[e.Contact] = x
	}
	x.Fold(e)
	return b.Set(endpointsKey(e.Contact), x.marshal(nil), nil)
}

// EachEndpoints calls fn with every contact that has endpoints, a preferred
// status or settings of its own, in contact ID order, until fn returns false
// or an error occurs: an owner taking a partition over learns the leases it
// must end from it.
func (p *Projection) EachEndpoints(fn func(contact string, x Endpoints) bool) error {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(endpointsKeyPrefix), UpperBound: []byte("e0")})
	if err != nil {
		return p.damaged(damaged(err))
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		contact := string(it.Key()[len(endpointsKeyPrefix):])
		x, err := unmarshalEndpoints(contact, it.Value())
		if err != nil {
			return p.damaged(err)
		}
		if !fn(contact, x) {
			break
		}
	}
	return p.damaged(damaged(it.Error()))
}
