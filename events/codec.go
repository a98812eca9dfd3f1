package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/presence-engine/presence/internal/jsonwire"
)

// The JSON codec of the records. Their JSON forms are eventJSON and changeJSON,
// and encoding/json is the contract: Encode writes what json.Marshal writes of
// them, and DecodeEvent and DecodeChange read what json.Unmarshal reads into
// them. The log and the feed are on the hot path of every fold, feed and write,
// so each direction has a fast path, kept because its benchmark (bench_test.go)
// shows it matters, and held to encoding/json by fuzz tests (codec_test.go,
// through export_test.go), not by a copy of older code. What the fast readers
// are not sure of, they leave to encoding/json (see package jsonwire). Times
// are parsed with time.Parse: a fast parse of RFC 3339 was no faster than its
// own (within noise, no allocation saved).

// eventJSON is the JSON form of an Event.
type eventJSON struct {
	V         int    `json:"v"`
	Contact   string `json:"contact"`
	Name      string `json:"name,omitempty"`
	Status    Status `json:"status"`
	Previous  Status `json:"previous"`
	At        string `json:"at"`
	Cause     Cause  `json:"cause"`
	RequestID string `json:"request_id,omitempty"`

	Op         Op             `json:"op,omitempty"`
	Endpoint   string         `json:"endpoint,omitempty"`
	EP         *endpointJSON  `json:"ep,omitempty"`
	Preferred  *preferredJSON `json:"preferred,omitempty"`
	Settings   *settingsJSON  `json:"settings,omitempty"`
	Held       bool           `json:"held,omitempty"`
	Shown      Status         `json:"shown,omitempty"`
	LastActive string         `json:"last_active,omitempty"`
}

// changeJSON is the JSON form of a Change.
type changeJSON struct {
	V        int    `json:"v"`
	Contact  string `json:"contact"`
	Name     string `json:"name,omitempty"`
	Previous Status `json:"previous"`
	At       string `json:"at"`
}

// encodeEventJSON returns the JSON form of e as encoding/json writes it: what
// Encode writes, slower.
func encodeEventJSON(e Event) ([]byte, error) {
	j := eventJSON{V: e.version(), Contact: e.Contact, Name: e.Name, Status: e.Status,
		Previous: e.Previous, At: e.At.UTC().Format(time.RFC3339Nano), Cause: e.Cause, RequestID: e.RequestID,
		Held: e.Held, Shown: e.Shown}
	if !e.LastActive.IsZero() {
		j.LastActive = e.LastActive.UTC().Format(time.RFC3339Nano)
	}
	opJSON(e, &j)
	return json.Marshal(j)
}

// encodeChangeJSON is encodeEventJSON for feed entries.
func encodeChangeJSON(c Change) ([]byte, error) {
	return json.Marshal(changeJSON{V: ChangeVersion, Contact: c.Contact, Name: c.Name, Previous: c.Previous,
		At: c.At.UTC().Format(time.RFC3339Nano)})
}

// Encode returns the JSON form of the event. It validates nothing: the writer
// validates its input before it builds an event. It panics if Status or Previous
// is not a MISTATUS value, which the writer never builds.
func (e Event) Encode() []byte {
	status, _ := e.Status.name()
	previous, _ := e.Previous.name()
	n := len(`{"v":1,"contact":"","name":"","status":"","previous":"","at":"","cause":"","request_id":"","endpoint":""}`) +
		len(e.Contact) + len(e.Name) + len(status) + len(previous) + maxTimeLen + len(e.Cause) + len(e.RequestID) + len(e.Endpoint)
	return e.AppendJSON(make([]byte, 0, n))
}

// AppendJSON appends the JSON form of the event, byte for byte as Encode returns
// it, to b and returns the extended buffer: with a buffer of the right size it
// does not allocate. It panics, as Encode does, if Status or Previous is not a
// MISTATUS value.
func (e Event) AppendJSON(b []byte) []byte {
	// A fast path: BenchmarkEncodeEvent has it about 3x faster than
	// encodeEventJSON, with 1 allocation against 5. FuzzEncodeEventMatchesJSON
	// holds it to json.Marshal.
	status, ok1 := e.Status.name()
	previous, ok2 := e.Previous.name()
	if !ok1 || !ok2 {
		e.panicEncode()
	}
	if e.Op != OpSet || e.Held || e.Shown != Unknown || !e.LastActive.IsZero() {
		// Endpoints' events are rarer than sets (heartbeats are not
		// events), and coalesced ones rarer still: encoding/json writes
		// them.
		j, err := encodeEventJSON(e)
		if err != nil {
			e.panicEncode()
		}
		return append(b, j...)
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, 1, 10) // e.version(): a plain set
	b = append(b, `,"contact":`...)
	b = jsonwire.AppendString(b, e.Contact)
	if e.Name != "" {
		b = append(b, `,"name":`...)
		b = jsonwire.AppendString(b, e.Name)
	}
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","previous":"`...)
	b = append(b, previous...)
	b = append(b, `","at":"`...)
	b = appendTime(b, e.At)
	b = append(b, `","cause":`...)
	b = jsonwire.AppendString(b, string(e.Cause))
	if e.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = jsonwire.AppendString(b, e.RequestID)
	}
	if e.Endpoint != "" {
		b = append(b, `,"endpoint":`...)
		b = jsonwire.AppendString(b, e.Endpoint)
	}
	return append(b, '}')
}

// panicEncode panics with encoding/json's account of an event it cannot encode,
// as Encode always has.
func (e Event) panicEncode() {
	_, err := encodeEventJSON(e)
	panic(fmt.Sprintf("events: encode event of %q: %v", e.Contact, err))
}

// Encode returns the JSON form of the feed entry. It panics if Previous is not a
// MISTATUS value, which ChangeOf never makes.
func (c Change) Encode() []byte {
	previous, _ := c.Previous.name()
	n := len(`{"v":2,"contact":"","name":"","previous":"","at":""}`) +
		len(c.Contact) + len(c.Name) + len(previous) + maxTimeLen
	return c.AppendJSON(make([]byte, 0, n))
}

// AppendJSON appends the JSON form of the feed entry, byte for byte as Encode
// returns it, to b and returns the extended buffer: with a buffer of the right
// size it does not allocate. It panics, as Encode does, if Previous is not a
// MISTATUS value.
func (c Change) AppendJSON(b []byte) []byte {
	// A fast path: BenchmarkEncodeChange has it about 3.5x faster than
	// encodeChangeJSON, with 1 allocation against 4. FuzzEncodeChangeMatchesJSON
	// holds it to json.Marshal.
	previous, ok := c.Previous.name()
	if !ok {
		c.panicEncode()
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, ChangeVersion, 10)
	b = append(b, `,"contact":`...)
	b = jsonwire.AppendString(b, c.Contact)
	if c.Name != "" {
		b = append(b, `,"name":`...)
		b = jsonwire.AppendString(b, c.Name)
	}
	b = append(b, `,"previous":"`...)
	b = append(b, previous...)
	b = append(b, `","at":"`...)
	b = appendTime(b, c.At)
	return append(b, `"}`...)
}

// panicEncode is Event.panicEncode for feed entries.
func (c Change) panicEncode() {
	_, err := encodeChangeJSON(c)
	panic(fmt.Sprintf("events: encode change of %q: %v", c.Contact, err))
}

// maxTimeLen is the length of the longest time appendTime writes in the years
// 0000 to 9999.
const maxTimeLen = len("2006-01-02T15:04:05.999999999Z")

// appendTime appends t as RFC 3339 in UTC with nanoseconds, without trailing
// zeros. The result needs no escaping in a JSON string.
func appendTime(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, time.RFC3339Nano) }

// The keys of the records, and their indexes.
var (
	eventKeys  = jsonwire.NewKeys("v", "contact", "name", "status", "previous", "at", "cause", "request_id", "endpoint", "op", "ep", "preferred", "settings", "held", "shown", "last_active")
	changeKeys = jsonwire.NewKeys("v", "contact", "name", "previous", "at")
)

const (
	evV = iota
	evContact
	evName
	evStatus
	evPrevious
	evAt
	evCause
	evRequestID
	evEndpoint
	evOp // the keys from here on are for encoding/json to read
)

const (
	chV = iota
	chContact
	chName
	chPrevious
	chAt
)

// readEvent reads an event into j the fast way, as encoding/json would, or
// reports false when data is for encoding/json to decide. It is a fast path:
// BenchmarkDecodeEvent has DecodeEvent about 6x faster with it, with 1
// allocation against 16. FuzzDecodeEventMatchesJSON and FuzzReadRecord hold it
// to encoding/json.
func readEvent(data []byte, j *eventJSON) bool {
	var o jsonwire.Object
	if !o.Read(eventKeys, data) || !stringOrAbsent(&o, evContact) || !stringOrAbsent(&o, evName) ||
		!stringOrAbsent(&o, evAt) || !stringOrAbsent(&o, evCause) || !stringOrAbsent(&o, evRequestID) ||
		!stringOrAbsent(&o, evEndpoint) {
		return false
	}
	for i := evOp; i < jsonwire.MaxKeys; i++ { // those past the last are Absent
		if o.Kind(i) != jsonwire.Absent {
			return false // an endpoint's event, or a coalesced one
		}
	}
	var ok bool
	if j.V, ok = o.Int(evV); !ok {
		return false
	}
	if j.Status, ok = statusOf(&o, evStatus); !ok {
		return false
	}
	if j.Previous, ok = statusOf(&o, evPrevious); !ok {
		return false
	}
	// The strings share one allocation, and none of them holds on to data,
	// which the caller may reuse. Keeping one keeps the bytes of the others.
	var sb strings.Builder
	sb.Grow(len(o.Raw(evContact)) + len(o.Raw(evName)) + len(o.Raw(evRequestID)) + len(o.Raw(evEndpoint)) + len(o.Raw(evAt)) +
		len(o.Raw(evCause)))
	writeText(&sb, &o, evContact)
	contactEnd := sb.Len()
	writeText(&sb, &o, evName)
	nameEnd := sb.Len()
	writeText(&sb, &o, evRequestID)
	requestIDEnd := sb.Len()
	writeText(&sb, &o, evEndpoint)
	endpointEnd := sb.Len()
	writeText(&sb, &o, evAt)
	atEnd := sb.Len()
	switch string(o.Raw(evCause)) { // the usual causes are constants, not copies
	case string(CauseUser):
		j.Cause = CauseUser
	case string(CauseEndpoint):
		j.Cause = CauseEndpoint
	case string(CauseEngine):
		j.Cause = CauseEngine
	default:
		writeText(&sb, &o, evCause)
	}
	s := sb.String()
	j.Contact, j.Name, j.RequestID, j.Endpoint, j.At = s[:contactEnd], s[contactEnd:nameEnd], s[nameEnd:requestIDEnd],
		s[requestIDEnd:endpointEnd], s[endpointEnd:atEnd]
	if j.Cause == "" {
		j.Cause = Cause(s[atEnd:])
	}
	return true
}

// readChange reads a feed entry into j the fast way, as encoding/json would, or
// reports false when data is for encoding/json to decide. It is a fast path:
// BenchmarkDecodeChange has DecodeChange about 5x faster with it, with 1
// allocation against 11. FuzzDecodeChangeMatchesJSON and FuzzReadRecord hold it
// to encoding/json.
func readChange(data []byte, j *changeJSON) bool {
	var o jsonwire.Object
	if !o.Read(changeKeys, data) || !stringOrAbsent(&o, chContact) || !stringOrAbsent(&o, chName) ||
		!stringOrAbsent(&o, chAt) {
		return false
	}
	var ok bool
	if j.V, ok = o.Int(chV); !ok {
		return false
	}
	if j.Previous, ok = statusOf(&o, chPrevious); !ok {
		return false
	}
	var sb strings.Builder // one allocation, as in readEvent
	sb.Grow(len(o.Raw(chContact)) + len(o.Raw(chName)) + len(o.Raw(chAt)))
	writeText(&sb, &o, chContact)
	contactEnd := sb.Len()
	writeText(&sb, &o, chName)
	nameEnd := sb.Len()
	writeText(&sb, &o, chAt)
	s := sb.String()
	j.Contact, j.Name, j.At = s[:contactEnd], s[contactEnd:nameEnd], s[nameEnd:]
	return true
}

// stringOrAbsent reports whether key i is absent (it stays "") or a string: what
// encoding/json needs to decode it into a string without an error.
func stringOrAbsent(o *jsonwire.Object, i int) bool {
	k := o.Kind(i)
	return k == jsonwire.Absent || k == jsonwire.String
}

// writeText writes the text of string key i, its escapes decoded, to b.
func writeText(b *strings.Builder, o *jsonwire.Object, i int) {
	if !o.Escaped(i) {
		b.Write(o.Raw(i))
		return
	}
	var buf [128]byte
	b.Write(o.AppendUnquoted(buf[:0], i))
}

// statusOf returns key i as Status.UnmarshalJSON decodes it. It reports false on
// anything that method refuses, leaving the error to encoding/json.
func statusOf(o *jsonwire.Object, i int) (Status, bool) {
	switch o.Kind(i) {
	case jsonwire.Absent:
		return Unknown, true
	case jsonwire.Number:
		// Its text is parsed as a decimal value (ParseStatus).
		if n, ok := o.Uint64(i); ok && n <= 0xFFFF && Status(n).Valid() {
			return Status(n), true
		}
		return Unknown, false
	case jsonwire.String:
		if !o.Escaped(i) {
			if s, ok := lookupName(o.Raw(i)); ok {
				return s, true
			}
		}
		text, _ := o.String(i)
		s, err := ParseStatus(text)
		return s, err == nil
	}
	return Unknown, false
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// strictJSON decodes one JSON value into v, refusing invalid UTF-8 (which
// encoding/json would otherwise replace silently) and trailing data.
func strictJSON(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("not valid UTF-8")
	}
	return json.Unmarshal(data, v)
}
