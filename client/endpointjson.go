package client

import (
	"encoding/json"
	"time"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/jsonwire"
)

// Heartbeats are the hot path of endpoints (a million endpoints on 60s leases
// send about 17k a second), and encoding/json was a tenth of their CPU, the
// request read by the engine and the result by the client. So both have a
// fast path, as Reply has, held to encoding/json by FuzzEndpointJSON: what it
// is not sure to read exactly as encoding/json would, it leaves to it.

// endpointOnlyKeys are the keys of a heartbeat's or a sign-out's request.
var endpointOnlyKeys = jsonwire.NewKeys("endpoint")

// readEndpointOnly reads the request of a heartbeat or a sign-out,
// {"endpoint":"..."}, as DecodeEndpointRequest's encoding/json would, or
// reports false.
func readEndpointOnly(data []byte) (string, bool) {
	var o jsonwire.Object
	if !o.Read(endpointOnlyKeys, data) || o.Extra() {
		return "", false
	}
	return o.String(0)
}

// The keys of an EndpointResult, and their indexes.
var endpointResultKeys = jsonwire.NewKeys("contact", "endpoint", "status", "previous", "seq", "changed", "expires")

const (
	erContact = iota
	erEndpoint
	erStatus
	erPrevious
	erSeq
	erChanged
	erExpires
)

// endpointResultJSON is EndpointResult as encoding/json reads it.
type endpointResultJSON EndpointResult

// UnmarshalJSON reads an EndpointResult as encoding/json reads its fields.
func (r *EndpointResult) UnmarshalJSON(data []byte) error {
	if fast, ok := readEndpointResult(data); ok {
		*r = fast
		return nil
	}
	return json.Unmarshal(data, (*endpointResultJSON)(r))
}

// readEndpointResult is UnmarshalJSON's fast path: false when it is not sure
// to read data exactly as encoding/json would.
func readEndpointResult(data []byte) (r EndpointResult, ok bool) {
	var o jsonwire.Object
	if !o.Read(endpointResultKeys, data) {
		return r, false
	}
	if r.Contact, ok = o.String(erContact); !ok {
		return r, false
	}
	if r.Endpoint, ok = o.String(erEndpoint); !ok {
		return r, false
	}
	if r.Status, ok = plainStatus(&o, erStatus); !ok {
		return r, false
	}
	if r.Previous, ok = plainStatus(&o, erPrevious); !ok {
		return r, false
	}
	if o.Kind(erSeq) != jsonwire.Absent {
		if r.Seq, ok = o.Uint64(erSeq); !ok {
			return r, false
		}
	}
	switch o.Kind(erChanged) {
	case jsonwire.Absent:
	case jsonwire.Bool:
		r.Changed = string(o.Raw(erChanged)) == "true"
	default:
		return r, false
	}
	switch o.Kind(erExpires) {
	case jsonwire.Absent:
	case jsonwire.String:
		if o.Escaped(erExpires) {
			return r, false
		}
		t, err := time.Parse(time.RFC3339Nano, string(o.Raw(erExpires)))
		if err != nil || t.Format(time.RFC3339Nano) != string(o.Raw(erExpires)) {
			return r, false // encoding/json's own reading decides, and says why
		}
		r.Expires = t
	default:
		return r, false
	}
	return r, true
}

// plainStatus reads the status of key i when it is a status's name without
// escapes, as the engine writes it; Unknown when absent.
func plainStatus(o *jsonwire.Object, i int) (events.Status, bool) {
	switch o.Kind(i) {
	case jsonwire.Absent:
		return events.Unknown, true
	case jsonwire.String:
		if o.Escaped(i) {
			return events.Unknown, false
		}
		s, err := events.ParseStatus(string(o.Raw(i)))
		if err != nil || s.String() != string(o.Raw(i)) {
			return events.Unknown, false
		}
		return s, true
	}
	return events.Unknown, false
}
