package client

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/jsonwire"
)

// The codecs of the service's replies. Each reply has a JSON form (replyJSON,
// statusesReplyJSON, setResultJSON), and encoding/json is the contract: a reply
// is written byte for byte as json.Marshal writes its form, and read as
// json.Unmarshal reads into it.
//
// Reply and StatusesReply are on the fan-out path: a subscriber reads a Reply
// in the repeat of every change it follows live (CurrentHeader) and a
// StatusesReply per batch it reads statuses for, and the engine writes them as
// often. So each has a fast path both ways, built on package jsonwire: a
// StatusesReply is a list of Replies, written and read by the same code. Their
// benchmarks are in wire_bench_test.go; the fuzz tests of wire_fuzz_test.go
// hold them to encoding/json. A SetResult, one per set, is encoding/json's
// alone: a set costs about 100µs, and BenchmarkReadSetResult and
// BenchmarkWriteSetResult put encoding/json's part at a few µs of it.

// replyJSON is the JSON form of a Reply.
type replyJSON struct {
	Contact string        `json:"contact"`
	Name    string        `json:"name"`
	Status  events.Status `json:"status"`
	Code    int           `json:"code"`
	Seq     uint64        `json:"seq"`
	// LastActive is rare (idle contacts alone have it): the fast paths
	// write it, and leave reading it to encoding/json.
	LastActive time.Time `json:"last_active,omitzero"`
}

func (r Reply) jsonForm() replyJSON {
	return replyJSON{Contact: r.Contact, Name: r.Name, Status: r.Status, Code: r.Status.Code(), Seq: r.Seq, LastActive: r.LastActive}
}

func (j replyJSON) reply() Reply {
	return Reply{Contact: j.Contact, Name: j.Name, Status: j.Status, Seq: j.Seq, LastActive: j.LastActive}
}

// fastWrites reports whether appendReply writes r as json.Marshal does: a
// valid status, and a last active in UTC within the years RFC 3339 writes.
func fastWrites(r Reply) bool {
	la := r.LastActive
	return r.Status.Valid() && (la.IsZero() || la.Location() == time.UTC && la.Year() >= 0 && la.Year() <= 9999)
}

// MarshalJSON writes {"contact","name","status","code","seq"}.
func (r Reply) MarshalJSON() ([]byte, error) {
	// A fast path: BenchmarkWriteReply has it about 4x faster than
	// json.Marshal. FuzzWriteReplies holds it to json.Marshal.
	if !fastWrites(r) {
		return json.Marshal(r.jsonForm()) // encoding/json's error, or its form of the time
	}
	return appendReply(make([]byte, 0, replySize(r)), r), nil
}

// UnmarshalJSON reads a Reply. A contact already in r is what the request
// asked for: the reply's, when it is the same, is not copied.
func (r *Reply) UnmarshalJSON(data []byte) error {
	if fast, ok := readReply(data, r.Contact); ok {
		*r = fast
		return nil
	}
	var j replyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*r = j.reply()
	return nil
}

// replySize is about the length of r written, its strings without escapes.
func replySize(r Reply) int {
	n := len(`{"contact":"","name":"","status":"","code":65535,"seq":18446744073709551615}`) +
		len(r.Contact) + len(r.Name) + len(r.Status.String())
	if !r.LastActive.IsZero() {
		n += len(`,"last_active":"2006-01-02T15:04:05.999999999Z"`)
	}
	return n
}

// appendReply appends r, whose status is valid, as json.Marshal writes its
// form, and returns the extended buffer.
func appendReply(b []byte, r Reply) []byte {
	b = append(b, `{"contact":`...)
	b = jsonwire.AppendString(b, r.Contact)
	b = append(b, `,"name":`...)
	b = jsonwire.AppendString(b, r.Name)
	b = append(b, `,"status":"`...)
	b = append(b, r.Status.String()...)
	b = append(b, `","code":`...)
	b = strconv.AppendInt(b, int64(r.Status.Code()), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	if !r.LastActive.IsZero() {
		b = append(b, `,"last_active":"`...)
		b = r.LastActive.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}

// The keys of a reply, and their indexes.
var replyKeys = jsonwire.NewKeys("contact", "name", "status", "code", "seq", "last_active")

const (
	rpContact = iota
	rpName
	rpStatus
	rpCode
	rpSeq
	rpLastActive
)

// readReply reads a reply as json.Unmarshal reads it into a replyJSON, or
// reports false when it is not sure to. Its contact is asked, not a copy, when
// it is that one.
//
// It is a fast path: BenchmarkReadReply has it about 7x faster than
// json.Unmarshal, with 2 allocations against 10. FuzzReadReply holds it to
// json.Unmarshal.
func readReply(data []byte, asked string) (Reply, bool) {
	var o jsonwire.Object
	if !o.Read(replyKeys, data) {
		return Reply{}, false
	}
	return replyOf(&o, asked)
}

// replyOf returns the reply o holds as json.Unmarshal reads it into a
// replyJSON, or reports false when it is not sure to: the caller then leaves
// it to encoding/json. Its contact is asked, not a copy, when it is that one.
func replyOf(o *jsonwire.Object, asked string) (r Reply, ok bool) {
	if o.Kind(rpLastActive) != jsonwire.Absent {
		return Reply{}, false
	}
	if r.Status, ok = statusOf(o); !ok {
		return Reply{}, false
	}
	if r.Seq, ok = o.Uint64(rpSeq); !ok {
		return Reply{}, false
	}
	if r.Name, ok = o.String(rpName); !ok {
		return Reply{}, false
	}
	if o.Kind(rpContact) == jsonwire.String && !o.Escaped(rpContact) && string(o.Raw(rpContact)) == asked {
		r.Contact = asked
		return r, true
	}
	r.Contact, ok = o.String(rpContact)
	return r, ok
}

// statusOf returns the status of a reply as encoding/json decodes it, when it
// is written as the service writes it: the name of the status whose value the
// code holds (which must decode into an int). Anything else (a MISTATUS
// constant, a number, a name in another case or of another status) it leaves
// to encoding/json, reporting false.
func statusOf(o *jsonwire.Object) (events.Status, bool) {
	code, ok := o.Int(rpCode)
	st := events.Status(code)
	if !ok || code < 0 || code > math.MaxUint16 || !st.Valid() || o.Kind(rpStatus) != jsonwire.String ||
		o.Escaped(rpStatus) || string(o.Raw(rpStatus)) != st.String() {
		return events.Unknown, false
	}
	return st, true
}

// statusesReplyJSON is the JSON form of a StatusesReply.
type statusesReplyJSON struct {
	Statuses []replyJSON `json:"statuses"`
}

func (r StatusesReply) jsonForm() statusesReplyJSON {
	if r.Statuses == nil {
		return statusesReplyJSON{}
	}
	j := statusesReplyJSON{Statuses: make([]replyJSON, len(r.Statuses))}
	for i, s := range r.Statuses {
		j.Statuses[i] = s.jsonForm()
	}
	return j
}

func (j statusesReplyJSON) replies() []Reply {
	out := make([]Reply, len(j.Statuses))
	for i, s := range j.Statuses {
		out[i] = s.reply()
	}
	return out
}

// MarshalJSON writes {"statuses":[...]}.
func (r StatusesReply) MarshalJSON() ([]byte, error) {
	// A fast path: BenchmarkWriteStatusesReply has it about 3x faster than
	// json.Marshal, with 1 allocation against 259 for 256 statuses.
	// FuzzWriteReplies holds it to json.Marshal.
	if r.Statuses == nil {
		return []byte(`{"statuses":null}`), nil
	}
	size := len(`{"statuses":[]}`)
	for _, s := range r.Statuses {
		if !fastWrites(s) {
			return json.Marshal(r.jsonForm()) // encoding/json's error, or its form of the time
		}
		size += replySize(s) + 1
	}
	b := append(make([]byte, 0, size), `{"statuses":[`...)
	for i, s := range r.Statuses {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendReply(b, s)
	}
	return append(b, "]}"...), nil
}

// UnmarshalJSON reads a StatusesReply. The contacts the request named, when
// the reply's are the same, are not copied.
func (r *StatusesReply) UnmarshalJSON(data []byte) error {
	if replies, ok := readStatuses(data, r.asked); ok {
		r.Statuses = replies
		return nil
	}
	var j statusesReplyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	r.Statuses = j.replies()
	return nil
}

var statusesKeys = jsonwire.NewKeys("statuses")

// readStatuses reads a statuses reply as json.Unmarshal reads it into a
// statusesReplyJSON, or reports false when it is not sure to. asked, if not
// nil, are the contacts the request named, in order.
//
// It is a fast path: BenchmarkReadStatusesReply has it about 5x faster than
// json.Unmarshal, with 258 allocations against 1298 for 256 statuses.
// FuzzStatusesReply holds it to json.Unmarshal.
func readStatuses(data []byte, asked []string) ([]Reply, bool) {
	var o jsonwire.Object
	if !o.Read(statusesKeys, data) {
		return nil, false
	}
	out := make([]Reply, 0, len(asked))
	ok := o.EachObject(0, replyKeys, func(elem *jsonwire.Object) bool {
		var a string
		if len(out) < len(asked) {
			a = asked[len(out)]
		}
		r, ok := replyOf(elem, a)
		out = append(out, r)
		return ok
	})
	return out, ok
}

// setResultJSON is the JSON form of a SetResult.
type setResultJSON struct {
	Contact  string        `json:"contact"`
	Status   events.Status `json:"status"`
	Code     int           `json:"code"`
	Previous events.Status `json:"previous"`
	Seq      uint64        `json:"seq"`
	Changed  bool          `json:"changed"`
}

// MarshalJSON writes {"contact","status","code","previous","seq","changed"}.
func (r SetResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(setResultJSON{Contact: r.Contact, Status: r.Status, Code: r.Status.Code(),
		Previous: r.Previous, Seq: r.Seq, Changed: r.Changed})
}

// UnmarshalJSON reads a SetResult.
func (r *SetResult) UnmarshalJSON(data []byte) error {
	var j setResultJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*r = SetResult{Contact: j.Contact, Status: j.Status, Previous: j.Previous, Seq: j.Seq, Changed: j.Changed}
	return nil
}
