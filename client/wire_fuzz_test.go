package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/presence-engine/presence/events"
)

func FuzzDecodeSetRequest(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"status":"away"}`, `{"status":34,"name":"Alice","request_id":"r-1","expect_seq":3,"cause":"endpoint"}`,
		`{"status":"idle","cause":"endpoint"}`, `{"status":"invisible","expect_seq":0}`, `{"status":"0x0200"}`,
		`{"status":"away","expect_seq":-1}`, `{"status":"away","colour":1}`, `[1]`, `null`, "{\"status\":\"away\",\"name\":\"\xff\"}",
	} {
		f.Add("sip:alice@contoso.com", []byte(seed))
	}
	f.Fuzz(func(t *testing.T, contact string, data []byte) {
		req, err := DecodeSetRequest(contact, data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeSetRequest(%q) error %v does not wrap ErrBadRequest", data, err)
			}
			return
		}
		// What is accepted is fit for the writer, and survives a round trip.
		if err := req.Validate(); err != nil {
			t.Fatalf("DecodeSetRequest(%q) accepted %+v, which the writer refuses: %v", data, req, err)
		}
		if req.Cause == events.CauseEngine {
			t.Fatalf("DecodeSetRequest(%q) accepted the engine's own cause", data)
		}
		again, err := DecodeSetRequest(contact, EncodeSetRequest(req))
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", req, err)
		}
		if again.Status != req.Status || again.Name != req.Name || again.RequestID != req.RequestID ||
			again.Cause != req.Cause || (again.ExpectSeq == nil) != (req.ExpectSeq == nil) ||
			(req.ExpectSeq != nil && *again.ExpectSeq != *req.ExpectSeq) {
			t.Fatalf("round trip of %+v gave %+v", req, again)
		}
	})
}

// TestUnknownFieldsNamedAlike: of several unknown fields, a request names the
// same one every time, the first in byte order.
func TestUnknownFieldsNamedAlike(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{"b":1,"min_seq":2,"a":3,"c":4}`, `unknown field "a"; accepted fields: min_seq`},
		{`{"b":1,"":2}`, `unknown field ""; accepted fields: min_seq`},
	} {
		for range 20 {
			if _, err := DecodeReadRequest([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeReadRequest(%s): %v, want %s", tc.data, err, tc.want)
			}
		}
	}
}

func FuzzDecodeReadRequest(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"min_seq":5}`, `{"min_seq":-1}`, `{"min_seq":1e3}`, `{"seq":1}`, `"x"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := DecodeReadRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeReadRequest(%q) error %v does not wrap ErrBadRequest", data, err)
			}
			return
		}
		if got, err := DecodeReadRequest(EncodeReadRequest(n)); err != nil || got != n {
			t.Fatalf("round trip of min_seq %d gave %d, %v", n, got, err)
		}
	})
}

// FuzzStatusesReply checks the fast reader of statuses replies against
// encoding/json: whatever it accepts, encoding/json reads the same way, and
// the contacts a request named change nothing but where the strings are.
func FuzzStatusesReply(f *testing.F) {
	good, _ := StatusesReply{Statuses: []Reply{
		{Contact: "sip:alice@contoso.com", Name: "Alice", Status: events.Away, Seq: 7},
		{Contact: "bob", Status: events.Unknown},
	}}.MarshalJSON()
	for _, seed := range []string{string(good), `{"statuses":[]}`, `{"statuses":[{"contact":"a\\"b","name":"","status":"online","code":2,"seq":1}]}`,
		`{"statuses":[{"contact":"a","name":"","status":"online","code":3,"seq":1}]}`, `{ "statuses" : [ ] }`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := readStatuses(data, nil)
		if !ok {
			return
		}
		var slow struct {
			Statuses []replyJSON `json:"statuses"`
		}
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast reader accepted %q, encoding/json refuses it: %v", data, err)
		}
		if len(slow.Statuses) != len(fast) {
			t.Fatalf("%q: fast read %d replies, encoding/json %d", data, len(fast), len(slow.Statuses))
		}
		// Asked for those contacts, for others, and for fewer.
		var same, other []string
		for _, j := range slow.Statuses {
			same, other = append(same, j.Contact), append(other, j.Contact+"x")
		}
		for _, asked := range [][]string{same, other, same[:len(same)/2]} {
			again, ok := readStatuses(data, asked)
			if !ok || !slices.Equal(again, fast) {
				t.Fatalf("%q: asked for %q, fast read %+v (%v), without %+v", data, asked, again, ok, fast)
			}
		}
		for i, j := range slow.Statuses {
			if want := (Reply{Contact: j.Contact, Name: j.Name, Status: j.Status, Seq: j.Seq}); fast[i] != want {
				t.Fatalf("%q: reply %d fast %+v, encoding/json %+v", data, i, fast[i], want)
			}
		}
	})
}

func TestStatusesReplyRoundTrip(t *testing.T) {
	in := StatusesReply{Statuses: []Reply{
		{Contact: "sip:alice@contoso.com", Name: "Alice <A&B>", Status: events.OnThePhone, Seq: 42},
		{Contact: "x", Name: "tab\there \"quoted\" \u2028", Status: events.Offline, Seq: 1},
		{Contact: "never-seen", Status: events.Unknown},
	}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out StatusesReply
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Errorf("round trip of %s gave %+v, want %+v", data, out, in)
	}
	if _, ok := readStatuses(data, nil); ok {
		t.Errorf("the fast reader took escaped strings it does not read")
	}
	plain, _ := json.Marshal(StatusesReply{Statuses: []Reply{{Contact: "sip:alice@contoso.com", Name: "Alice", Status: events.Away, Seq: 3}}})
	if _, ok := readStatuses(plain, nil); !ok {
		t.Errorf("the fast reader refused what the writer writes: %s", plain)
	}
}

// FuzzSetResult checks the fast reader of set replies against encoding/json.
func FuzzSetResult(f *testing.F) {
	good, _ := SetResult{Contact: "sip:alice@contoso.com", Status: events.Away, Previous: events.Online, Seq: 9, Changed: true}.MarshalJSON()
	for _, seed := range []string{string(good), `{"contact":"a","status":"busy","code":10,"previous":"busy","seq":3,"changed":false}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := readSetResult(data)
		if !ok {
			return
		}
		var j setResultJSON
		if err := json.Unmarshal(data, &j); err != nil {
			t.Fatalf("fast reader accepted %q, encoding/json refuses it: %v", data, err)
		}
		if want := (SetResult{Contact: j.Contact, Status: j.Status, Previous: j.Previous, Seq: j.Seq, Changed: j.Changed}); fast != want {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, want)
		}
		// And what the writer writes, the fast reader reads.
		again, ok := readSetResult(appendSetResult(nil, fast))
		if fast.Contact != "" && !ok && !strings.ContainsAny(fast.Contact, "\\\"<>&") {
			t.Fatalf("the fast reader refused the writer's own %+v", fast)
		}
		if ok && again != fast {
			t.Fatalf("round trip of %+v gave %+v", fast, again)
		}
	})
}

// FuzzSetRequestPaths checks the fast reader of set requests against the field
// by field one: whatever the fast reader takes, the other reads the same way.
func FuzzSetRequestPaths(f *testing.F) {
	seq := uint64(3)
	for _, r := range []SetRequest{{Status: events.Away}, {Status: events.Idle, Name: "User 1", Cause: events.CauseEndpoint},
		{Status: events.Busy, Name: "B", RequestID: "r-1", ExpectSeq: &seq, Cause: events.CauseUser}} {
		f.Add(EncodeSetRequest(r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, fastCause, ok := readSetRequest(data)
		if !ok {
			return
		}
		slow, slowCause, err := decodeSetRequestFields(data)
		if err != nil {
			t.Fatalf("fast reader took %q, the field reader refuses it: %v", data, err)
		}
		if fast.Status != slow.Status || fast.Name != slow.Name || fast.RequestID != slow.RequestID || fastCause != slowCause ||
			(fast.ExpectSeq == nil) != (slow.ExpectSeq == nil) || (fast.ExpectSeq != nil && *fast.ExpectSeq != *slow.ExpectSeq) {
			t.Fatalf("%q: fast %+v cause %q, field reader %+v cause %q", data, fast, fastCause, slow, slowCause)
		}
	})
}

func FuzzDecodeStatusesRequest(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"contacts":["sip:alice@contoso.com"]}`, `{"contacts":["a","b","a"],"min_seq":7}`, `{"contacts":[]}`,
		`{"contacts":null}`, `{"contacts":["a b"]}`, `{"contacts":[1]}`, `{"contacts":["a"],"min_seq":-1}`,
		`{"contacts":["a"],"min_seq":9223372036854775808}`, `{"contacts":["a"],"colour":1}`, "{\"contacts\":[\"\xff\"]}",
		`{"contacts":["a\u0000"]}`, `[]`, `null`, string(EncodeStatusesRequest([]string{"x", "zoë"}, 3)),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		contacts, minSeq, err := DecodeStatusesRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeStatusesRequest(%q) error %v is not a 400 (ErrBadRequest)", data, err)
			}
			return
		}
		// What is accepted is what a read may be given, and survives a round trip.
		if len(contacts) == 0 || len(contacts) > MaxStatuses {
			t.Fatalf("DecodeStatusesRequest(%q) accepted %d contacts", data, len(contacts))
		}
		for _, c := range contacts {
			if err := events.ValidateContact(c); err != nil {
				t.Fatalf("DecodeStatusesRequest(%q) accepted contact %q: %v", data, c, err)
			}
		}
		if minSeq > math.MaxInt64 {
			t.Fatalf("DecodeStatusesRequest(%q) accepted min_seq %d", data, minSeq)
		}
		enc := EncodeStatusesRequest(contacts, minSeq)
		if len(enc) > MaxStatusesRequestSize {
			return // escaped ('<' is written \u003c) past the size a request may have
		}
		again, againSeq, err := DecodeStatusesRequest(enc)
		if err != nil || againSeq != minSeq || !slices.Equal(again, contacts) {
			t.Fatalf("round trip of %q, min_seq %d gave %q, %d, %v", contacts, minSeq, again, againSeq, err)
		}
	})
}

// FuzzStatusesRequestPaths checks the fast reader of statuses requests
// against the field by field one: whatever the fast reader takes, the other
// reads the same way.
func FuzzStatusesRequestPaths(f *testing.F) {
	for _, seed := range [][]byte{EncodeStatusesRequest([]string{"sip:alice@contoso.com"}, 0),
		EncodeStatusesRequest([]string{"a", "b", "a"}, 7), EncodeStatusesRequest([]string{"zoë", "<x>"}, 1),
		[]byte(`{"contacts":["a"],"min_seq":9223372036854775808}`), []byte(`{"contacts":["a","b"],"min_seq":01}`),
		[]byte(`{"contacts":[""]}`), []byte("{\"contacts\":[\"\xff\"]}")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, fastSeq, ok := readStatusesRequest(data)
		if !ok {
			return
		}
		slow, slowSeq, err := decodeStatusesRequestFields(data)
		if err != nil {
			t.Fatalf("fast reader took %q, the field reader refuses it: %v", data, err)
		}
		if !slices.Equal(fast, slow) || fastSeq != slowSeq {
			t.Fatalf("%q: fast %q min_seq %d, field reader %q min_seq %d", data, fast, fastSeq, slow, slowSeq)
		}
	})
}

// TestStatusesRequestsTakeTheFastPath: what the client writes, the service
// reads without encoding/json, unless a contact ID needs escaping.
func TestStatusesRequestsTakeTheFastPath(t *testing.T) {
	for _, tc := range []struct {
		contacts []string
		minSeq   uint64
		fast     bool
	}{
		{[]string{"sip:alice@contoso.com"}, 0, true},
		{[]string{"sip:alice@contoso.com", "sip:bob@contoso.com", "zoë"}, 42, true},
		{[]string{"a<b"}, 1, false}, // written \u003c
	} {
		data := EncodeStatusesRequest(tc.contacts, tc.minSeq)
		contacts, minSeq, ok := readStatusesRequest(data)
		if ok != tc.fast {
			t.Errorf("%s: fast path %v, want %v", data, ok, tc.fast)
		}
		if ok && (!slices.Equal(contacts, tc.contacts) || minSeq != tc.minSeq) {
			t.Errorf("%s: fast read %q, %d", data, contacts, minSeq)
		}
		if got, gotSeq, err := DecodeStatusesRequest(data); err != nil || !slices.Equal(got, tc.contacts) || gotSeq != tc.minSeq {
			t.Errorf("DecodeStatusesRequest(%s) = %q, %d, %v", data, got, gotSeq, err)
		}
	}
}

// TestRepliesAreWhatEncodingJSONWrites checks that the service's own reply
// writers, which it calls directly, write byte for byte what encoding/json
// writes of the same reply (compact, HTML-safe), strings that need escaping
// included.
func TestRepliesAreWhatEncodingJSONWrites(t *testing.T) {
	names := []string{"Alice", "Alice <A&B>", "tab\there \"quoted\" \\ \u2028\u2029", "bad \xff utf-8", "\x00\x1f\x7f", ""}
	var replies []any
	for i, name := range names {
		r := Reply{Contact: "sip:" + name + "@contoso.com", Name: name, Status: events.OnThePhone, Seq: uint64(i)}
		replies = append(replies, r,
			SetResult{Contact: r.Contact, Status: events.Away, Previous: events.Online, Seq: r.Seq, Changed: i%2 == 0},
			StatusesReply{Statuses: []Reply{r, {Contact: name, Status: events.Unknown}}})
	}
	replies = append(replies, StatusesReply{})
	for _, r := range replies {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.(json.Marshaler).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T %+v:\n got %s\nwant %s", r, r, got, want)
		}
	}
	// And the client's statuses requests.
	for _, contacts := range [][]string{names, names[:1], {}, nil} {
		for _, minSeq := range []uint64{0, 7, math.MaxUint64} {
			want, err := json.Marshal(struct {
				Contacts []string `json:"contacts"`
				MinSeq   uint64   `json:"min_seq,omitempty"`
			}{contacts, minSeq})
			if err != nil {
				t.Fatal(err)
			}
			if got := EncodeStatusesRequest(contacts, minSeq); !bytes.Equal(got, want) {
				t.Errorf("statuses request of %q, min_seq %d:\n got %s\nwant %s", contacts, minSeq, got, want)
			}
		}
	}
}
