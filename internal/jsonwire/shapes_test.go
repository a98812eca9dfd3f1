package jsonwire_test

import (
	"encoding/json"

	"github.com/presence-engine/presence/internal/jsonwire"
)

// The shapes of the service's replies and requests (client/replyjson.go and
// client/requestjson.go), each as encoding/json decodes it and as an Object
// reads it: what the tests read with both. Statuses are kept as text: what they
// mean is package events' business.

// reply is {"contact","name","status","code","seq"}.
type reply struct {
	Contact string `json:"contact"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Code    int    `json:"code"`
	Seq     uint64 `json:"seq"`
}

var replyKeys = jsonwire.NewKeys("contact", "name", "status", "code", "seq")

func readReplyObject(o *jsonwire.Object) (r reply, ok bool) {
	var ok1, ok2, ok3, ok4, ok5 bool
	r.Contact, ok1 = o.String(0)
	r.Name, ok2 = o.String(1)
	r.Status, ok3 = o.String(2)
	r.Code, ok4 = o.Int(3)
	r.Seq, ok5 = o.Uint64(4)
	return r, ok1 && ok2 && ok3 && ok4 && ok5
}

func readReply(data []byte) (reply, bool) {
	var o jsonwire.Object
	if !o.Read(replyKeys, data) {
		return reply{}, false
	}
	return readReplyObject(&o)
}

// statuses is {"statuses":[reply,...]}.
type statuses struct {
	Statuses []reply `json:"statuses"`
}

var statusesKeys = jsonwire.NewKeys("statuses")

func readStatuses(data []byte) ([]reply, bool) {
	var o jsonwire.Object
	if !o.Read(statusesKeys, data) {
		return nil, false
	}
	if o.Kind(0) == jsonwire.Absent {
		return nil, true
	}
	out := []reply{}
	ok := o.EachObject(0, replyKeys, func(elem *jsonwire.Object) bool {
		r, ok := readReplyObject(elem)
		out = append(out, r)
		return ok
	})
	return out, ok
}

// setRequest is {"status","name","request_id","expect_seq","cause"}. A request
// names no other field: the engine refuses them, so a fast reader leaves an
// object with Extra keys to the engine's slow path, which says what is wrong.
type setRequest struct {
	Status    string  `json:"status"`
	Name      string  `json:"name"`
	RequestID string  `json:"request_id"`
	ExpectSeq *uint64 `json:"expect_seq"`
	Cause     string  `json:"cause"`
}

var setRequestKeys = jsonwire.NewKeys("status", "name", "request_id", "expect_seq", "cause")

func readSetRequest(data []byte) (r setRequest, ok bool) {
	var o jsonwire.Object
	if !o.Read(setRequestKeys, data) || o.Extra() {
		return r, false
	}
	var ok1, ok2, ok3, ok4, ok5 bool
	r.Status, ok1 = o.String(0)
	r.Name, ok2 = o.String(1)
	r.RequestID, ok3 = o.String(2)
	if o.Kind(3) != jsonwire.Absent {
		var n uint64
		n, ok4 = o.Uint64(3)
		r.ExpectSeq = &n
	} else {
		ok4 = true
	}
	r.Cause, ok5 = o.String(4)
	return r, ok1 && ok2 && ok3 && ok4 && ok5
}

// readRequest is {"min_seq":N}.
type readRequest struct {
	MinSeq uint64 `json:"min_seq"`
}

var readRequestKeys = jsonwire.NewKeys("min_seq")

func readReadRequest(data []byte) (r readRequest, ok bool) {
	var o jsonwire.Object
	if !o.Read(readRequestKeys, data) || o.Extra() {
		return r, false
	}
	r.MinSeq, ok = o.Uint64(0)
	return r, ok
}

// statusesRequest is {"contacts":[...],"min_seq":N}.
type statusesRequest struct {
	Contacts []string `json:"contacts"`
	MinSeq   uint64   `json:"min_seq"`
}

var statusesRequestKeys = jsonwire.NewKeys("contacts", "min_seq")

func readStatusesRequest(data []byte) (r statusesRequest, ok bool) {
	var o jsonwire.Object
	if !o.Read(statusesRequestKeys, data) || o.Extra() {
		return r, false
	}
	var ok1, ok2 bool
	r.Contacts, ok1 = o.Strings(0)
	r.MinSeq, ok2 = o.Uint64(1)
	return r, ok1 && ok2
}

// shape is one of the shapes: its fast reader, and encoding/json's.
type shape struct {
	name string
	fast func([]byte) (any, bool)
	json func([]byte) (any, error)
}

// decodeJSON returns json.Unmarshal's reading of data into a T.
func decodeJSON[T any](data []byte) (any, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}

// fastRead adapts a fast reader to a shape.
func fastRead[T any](read func([]byte) (T, bool)) func([]byte) (any, bool) {
	return func(data []byte) (any, bool) { return read(data) }
}

var shapes = []shape{
	{"reply", fastRead(readReply), decodeJSON[reply]},
	{"statuses", fastRead(func(data []byte) (statuses, bool) {
		l, ok := readStatuses(data)
		return statuses{l}, ok
	}), decodeJSON[statuses]},
	{"set request", fastRead(readSetRequest), decodeJSON[setRequest]},
	{"read request", fastRead(readReadRequest), decodeJSON[readRequest]},
	{"statuses request", fastRead(readStatusesRequest), decodeJSON[statusesRequest]},
}
