package client

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/presence-engine/presence/events"
)

// The service's replies are written and read on every set and every batch of
// changes a subscriber reads, so they have fast paths: writing appends bytes,
// and reading expects exactly what is written, handing anything else (escaped
// strings, other field orders, other spacing) to encoding/json, which reads it
// the same way, only slower.

func appendReply(b []byte, r Reply) []byte {
	b = append(b, `{"contact":`...)
	b = events.AppendJSONString(b, r.Contact)
	b = append(b, `,"name":`...)
	b = events.AppendJSONString(b, r.Name)
	b = append(b, `,"status":"`...)
	b = append(b, r.Status.String()...)
	b = append(b, `","code":`...)
	b = strconv.AppendInt(b, int64(r.Status.Code()), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	return append(b, '}')
}

// MarshalJSON writes {"statuses":[...]}.
func (r StatusesReply) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 16+len(r.Statuses)*96)
	b = append(b, `{"statuses":[`...)
	for i, s := range r.Statuses {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendReply(b, s)
	}
	return append(b, "]}"...), nil
}

// UnmarshalJSON reads what MarshalJSON writes, fast, and anything else through
// encoding/json.
func (r *StatusesReply) UnmarshalJSON(data []byte) error {
	if replies, ok := readStatuses(data, r.asked); ok {
		r.Statuses = replies
		return nil
	}
	var slow struct {
		Statuses []replyJSON `json:"statuses"`
	}
	if err := json.Unmarshal(data, &slow); err != nil {
		return err
	}
	r.Statuses = make([]Reply, len(slow.Statuses))
	for i, j := range slow.Statuses {
		r.Statuses[i] = Reply{Contact: j.Contact, Name: j.Name, Status: j.Status, Seq: j.Seq}
	}
	return nil
}

// wireReader reads the exact shape the fast writers write.
type wireReader struct {
	b  []byte
	ok bool
}

func (w *wireReader) lit(s string) {
	if w.ok && bytes.HasPrefix(w.b, []byte(s)) {
		w.b = w.b[len(s):]
		return
	}
	w.ok = false
}

// str reads a string without escapes up to its closing quote (the opening one
// is part of the literal before it).
func (w *wireReader) str() string {
	return string(w.raw())
}

// raw is str's bytes, not copied.
func (w *wireReader) raw() []byte {
	if !w.ok {
		return nil
	}
	for i, c := range w.b {
		switch {
		case c == '"':
			if !utf8.Valid(w.b[:i]) { // encoding/json would replace the bad bytes
				w.ok = false
				return nil
			}
			s := w.b[:i]
			w.b = w.b[i+1:]
			return s
		case c == '\\' || c < 0x20:
			w.ok = false
			return nil
		}
	}
	w.ok = false
	return nil
}

func (w *wireReader) uint() uint64 {
	if !w.ok {
		return 0
	}
	i := 0
	for i < len(w.b) && '0' <= w.b[i] && w.b[i] <= '9' {
		i++
	}
	n, err := strconv.ParseUint(string(w.b[:i]), 10, 64)
	if err != nil || (i > 1 && w.b[0] == '0') { // JSON has no leading zeros
		w.ok = false
		return 0
	}
	w.b = w.b[i:]
	return n
}

// reply reads one reply. Its contact is asked, without a copy, when it is
// that one: a subscriber reads the statuses of the contacts it names.
func (w *wireReader) reply(asked string) Reply {
	var r Reply
	w.lit(`{"contact":"`)
	if contact := w.raw(); string(contact) == asked {
		r.Contact = asked
	} else {
		r.Contact = string(contact)
	}
	w.lit(`,"name":"`)
	r.Name = w.str()
	w.lit(`,"status":"`)
	name := w.raw()
	w.lit(`,"code":`)
	code := w.uint()
	w.lit(`,"seq":`)
	r.Seq = w.uint()
	w.lit(`}`)
	// The writer writes a status's name and its code: anything else (a
	// constant, a number, a name that is not the code's) is encoding/json's.
	if st := events.Status(code); w.ok && code <= math.MaxUint16 && st.Valid() && string(name) == st.String() {
		r.Status = st
	} else {
		w.ok = false
	}
	return r
}

// readStatuses reads a statuses reply; asked, if not nil, are the contacts the
// request named, in order.
func readStatuses(data []byte, asked []string) ([]Reply, bool) {
	w := wireReader{b: data, ok: true}
	w.lit(`{"statuses":[`)
	out := make([]Reply, 0, len(asked))
	for w.ok && len(w.b) > 0 && w.b[0] != ']' {
		if len(out) > 0 {
			w.lit(",")
		}
		var a string
		if len(out) < len(asked) {
			a = asked[len(out)]
		}
		out = append(out, w.reply(a))
	}
	w.lit("]}")
	return out, w.ok && len(bytes.TrimSpace(w.b)) == 0
}

func appendSetResult(b []byte, r SetResult) []byte {
	b = append(b, `{"contact":`...)
	b = events.AppendJSONString(b, r.Contact)
	b = append(b, `,"status":"`...)
	b = append(b, r.Status.String()...)
	b = append(b, `","code":`...)
	b = strconv.AppendInt(b, int64(r.Status.Code()), 10)
	b = append(b, `,"previous":"`...)
	b = append(b, r.Previous.String()...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"changed":`...)
	b = strconv.AppendBool(b, r.Changed)
	return append(b, '}')
}

func (w *wireReader) boolean() bool {
	switch {
	case w.ok && bytes.HasPrefix(w.b, []byte("true")):
		w.b = w.b[4:]
		return true
	case w.ok && bytes.HasPrefix(w.b, []byte("false")):
		w.b = w.b[5:]
		return false
	}
	w.ok = false
	return false
}

func (w *wireReader) status(text string) events.Status {
	if !w.ok {
		return 0
	}
	st, err := events.ParseStatus(text)
	if err != nil {
		w.ok = false
	}
	return st
}

func readSetResult(data []byte) (SetResult, bool) {
	w := wireReader{b: data, ok: true}
	var r SetResult
	w.lit(`{"contact":"`)
	r.Contact = w.str()
	w.lit(`,"status":"`)
	r.Status = w.status(w.str())
	w.lit(`,"code":`)
	code := w.uint()
	w.lit(`,"previous":"`)
	r.Previous = w.status(w.str())
	w.lit(`,"seq":`)
	r.Seq = w.uint()
	w.lit(`,"changed":`)
	r.Changed = w.boolean()
	w.lit(`}`)
	ok := w.ok && uint64(r.Status.Code()) == code && len(bytes.TrimSpace(w.b)) == 0
	return r, ok
}

// readSetRequest reads a set request in the shape EncodeSetRequest writes:
// status, then any of name, request_id, expect_seq and cause, in that order.
// It returns the cause as given; the checks are the caller's.
func readSetRequest(data []byte) (req SetRequest, cause string, ok bool) {
	if len(data) > MaxRequestSize {
		return req, "", false
	}
	w := wireReader{b: data, ok: true}
	w.lit(`{"status":"`)
	req.Status = w.status(w.str())
	for _, f := range []struct {
		key  string
		read func()
	}{
		{`,"name":"`, func() { req.Name = w.str() }},
		{`,"request_id":"`, func() { req.RequestID = w.str() }},
		{`,"expect_seq":`, func() { n := w.uint(); req.ExpectSeq = &n }},
		{`,"cause":"`, func() { cause = w.str() }},
	} {
		if w.ok && bytes.HasPrefix(w.b, []byte(f.key)) {
			w.b = w.b[len(f.key):]
			f.read()
		}
	}
	w.lit(`}`)
	if req.ExpectSeq != nil && *req.ExpectSeq > math.MaxInt64 {
		w.ok = false
	}
	return req, cause, w.ok && len(bytes.TrimSpace(w.b)) == 0
}

// readStatusesRequest reads a statuses request in the shape
// EncodeStatusesRequest writes, its contact IDs without escapes. The checks of
// the contacts are the caller's.
func readStatusesRequest(data []byte) (contacts []string, minSeq uint64, ok bool) {
	if len(data) > MaxStatusesRequestSize {
		return nil, 0, false
	}
	w := wireReader{b: data, ok: true}
	w.lit(`{"contacts":["`)
	for w.ok {
		contacts = append(contacts, w.str())
		if !bytes.HasPrefix(w.b, []byte(`,"`)) {
			break
		}
		w.b = w.b[2:]
	}
	w.lit(`]`)
	if w.ok && bytes.HasPrefix(w.b, []byte(`,"min_seq":`)) {
		w.b = w.b[len(`,"min_seq":`):]
		if minSeq = w.uint(); minSeq > math.MaxInt64 {
			w.ok = false
		}
	}
	w.lit(`}`)
	return contacts, minSeq, w.ok && len(bytes.TrimSpace(w.b)) == 0
}
