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
	"time"

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

// FuzzStatusesRequestPaths holds DecodeStatusesRequest, with its fast path, to
// the field by field reader on encoding/json alone: the same contacts and
// min_seq, or the same error.
func FuzzStatusesRequestPaths(f *testing.F) {
	for _, seed := range [][]byte{EncodeStatusesRequest([]string{"sip:alice@contoso.com"}, 0),
		EncodeStatusesRequest([]string{"a", "b", "a"}, 7), EncodeStatusesRequest([]string{"zoë", "<x>"}, 1),
		[]byte(`{"contacts":["a"],"min_seq":9223372036854775808}`), []byte(`{"contacts":["a","b"],"min_seq":01}`),
		[]byte(`{"contacts":[""]}`), []byte("{\"contacts\":[\"\xff\"]}"), []byte(`{"contacts":["a\u00e9\ud800"]}`),
		[]byte(` { "min_seq" : 3 , "contacts" : [ "a" ] } `), []byte(`{"contacts":["a"],"min_seq":null}`),
		[]byte(`{"contacts":["a"],"contacts":["b"]}`), []byte(`{"Contacts":["a"]}`), []byte(`{"contacts":["a"],"min_seq":-0}`),
		[]byte(`{"contacts":["a"],"min_seq":1.0}`), []byte(`{"contacts":[],"x":[{}]}`)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, fastSeq, fastErr := decodeStatusesRequest(data, true)
		slow, slowSeq, slowErr := decodeStatusesRequest(data, false)
		if fmt.Sprint(fastErr) != fmt.Sprint(slowErr) {
			t.Fatalf("%q: error %v with the fast path, %v without", data, fastErr, slowErr)
		}
		if !slices.Equal(fast, slow) || fastSeq != slowSeq {
			t.Fatalf("%q: %q min_seq %d with the fast path, %q min_seq %d without", data, fast, fastSeq, slow, slowSeq)
		}
	})
}

// TestStatusesRequestsTakeTheFastPath: what the client writes, the service
// reads without going field by field.
func TestStatusesRequestsTakeTheFastPath(t *testing.T) {
	for _, tc := range []struct {
		contacts []string
		minSeq   uint64
	}{
		{[]string{"sip:alice@contoso.com"}, 0},
		{[]string{"sip:alice@contoso.com", "sip:bob@contoso.com", "zoë"}, 42},
		{[]string{"a<b"}, 1}, // written \u003c
	} {
		data := EncodeStatusesRequest(tc.contacts, tc.minSeq)
		contacts, minSeq, ok := readStatusesRequest(data)
		if !ok || !slices.Equal(contacts, tc.contacts) || minSeq != tc.minSeq {
			t.Errorf("%s: fast read %q, %d, %v; want %q, %d, true", data, contacts, minSeq, ok, tc.contacts, tc.minSeq)
		}
	}
}

// FuzzEncodeStatusesRequest holds EncodeStatusesRequest to json.Marshal of its
// JSON form. The contacts are contacts split at each newline, or nil.
func FuzzEncodeStatusesRequest(f *testing.F) {
	for _, contacts := range []string{"sip:alice@contoso.com", "Alice\nAlice <A&B>\ntab\there \"quoted\" \\ \u2028\u2029\nbad \xff utf-8\n\x00\x1f\x7f\n", ""} {
		for _, minSeq := range []uint64{0, 7, math.MaxUint64} {
			f.Add(contacts, minSeq, false)
		}
	}
	f.Add("", uint64(0), true)
	f.Fuzz(func(t *testing.T, joined string, minSeq uint64, null bool) {
		var contacts []string
		if !null {
			contacts = strings.Split(joined, "\n")
		}
		want, err := json.Marshal(statusesRequestJSON{Contacts: contacts, MinSeq: minSeq})
		if err != nil {
			t.Fatal(err)
		}
		if got := EncodeStatusesRequest(contacts, minSeq); !bytes.Equal(got, want) {
			t.Fatalf("statuses request of %q, min_seq %d:\n got %s\nwant %s", contacts, minSeq, got, want)
		}
	})
}

// FuzzReadReply holds the fast reader of replies to json.Unmarshal: whatever it
// reads, encoding/json reads the same way, and the contact a request named
// changes nothing but where the string is.
func FuzzReadReply(f *testing.F) {
	good, _ := Reply{Contact: "sip:alice@contoso.com", Name: "Alice", Status: events.Away, Seq: 7}.MarshalJSON()
	for _, seed := range []string{string(good), `{}`, `{"contact":"a\"b","name":"\u00e9","status":"online","code":2,"seq":1}`,
		`{"contact":"a","name":"","status":"online","code":3,"seq":1}`, `{"contact":"a","status":"Online","code":2}`,
		`{"contact":"a","status":"MISTATUS_ONLINE","code":2}`, `{"status":2,"code":2}`, `{"status":"unknown"}`,
		`{"status":"away","code":34.0}`, `{"status":"away","code":34,"seq":-1}`, `{"status":"away","code":34,"note":[1]}`,
		` { "seq" : 1 , "code" : 34 , "status" : "away" } `, `{"status":"away","code":34,"Seq":1}`, `null`} {
		f.Add([]byte(seed), "a")
	}
	f.Fuzz(func(t *testing.T, data []byte, asked string) {
		fast, ok := readReply(data, asked)
		var j replyJSON
		jsonErr := json.Unmarshal(data, &j)
		var r Reply
		if err := r.UnmarshalJSON(data); fmt.Sprint(err) != fmt.Sprint(jsonErr) || err == nil && r != j.reply() {
			t.Fatalf("%q: UnmarshalJSON read %+v, %v; json.Unmarshal %+v, %v", data, r, err, j.reply(), jsonErr)
		}
		if !ok {
			return
		}
		if jsonErr != nil {
			t.Fatalf("fast reader read %q, encoding/json refuses it: %v", data, jsonErr)
		}
		if want := j.reply(); fast != want {
			t.Fatalf("%q: fast read %+v, encoding/json %+v", data, fast, want)
		}
		if again, ok := readReply(data, j.Contact); !ok || again != fast {
			t.Fatalf("%q: asked for %q, fast read %+v (%v), without %+v", data, j.Contact, again, ok, fast)
		}
	})
}

// FuzzStatusesReply holds the fast reader of statuses replies to
// json.Unmarshal: whatever it reads, encoding/json reads the same way, and the
// contacts a request named change nothing but where the strings are.
func FuzzStatusesReply(f *testing.F) {
	good, _ := StatusesReply{Statuses: []Reply{
		{Contact: "sip:alice@contoso.com", Name: "Alice", Status: events.Away, Seq: 7},
		{Contact: "bob", Status: events.Unknown},
	}}.MarshalJSON()
	for _, seed := range []string{string(good), `{"statuses":[]}`, `{"statuses":[{"contact":"a\\"b","name":"","status":"online","code":2,"seq":1}]}`,
		`{"statuses":[{"contact":"a","name":"","status":"online","code":3,"seq":1}]}`, `{ "statuses" : [ ] }`, `{}`,
		`{"statuses":null}`, `{"statuses":[null]}`, `{"statuses":[{"status":"away","code":34},[]]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var slow statusesReplyJSON
		jsonErr := json.Unmarshal(data, &slow)
		var r StatusesReply
		if err := r.UnmarshalJSON(data); fmt.Sprint(err) != fmt.Sprint(jsonErr) || err == nil && !slices.Equal(r.Statuses, slow.replies()) {
			t.Fatalf("%q: UnmarshalJSON read %+v, %v; json.Unmarshal %+v, %v", data, r.Statuses, err, slow.replies(), jsonErr)
		}
		fast, ok := readStatuses(data, nil)
		if !ok {
			return
		}
		if jsonErr != nil {
			t.Fatalf("fast reader read %q, encoding/json refuses it: %v", data, jsonErr)
		}
		if want := slow.replies(); !slices.Equal(fast, want) {
			t.Fatalf("%q: fast read %+v, encoding/json %+v", data, fast, want)
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
	})
}

// FuzzWriteReplies holds the writers of Reply and StatusesReply to
// json.Marshal of their JSON forms: the same bytes, or the same error. What
// they write, the fast readers read.
func FuzzWriteReplies(f *testing.F) {
	for i, name := range []string{"Alice", "Alice <A&B>", "tab\there \"quoted\" \\ \u2028\u2029", "bad \xff utf-8", "\x00\x1f\x7f", ""} {
		f.Add("sip:"+name+"@contoso.com", name, uint16(events.OnThePhone), uint64(i), int64(0), int16(0))
	}
	f.Add("sip:alice@contoso.com", "Alice", uint16(0x0fff), uint64(math.MaxUint64), int64(0), int16(0)) // not a MISTATUS value
	// Last active: in UTC (as the engine writes it), in another zone, at the
	// edges of the years RFC 3339 writes and past them.
	f.Add("sip:kai@contoso.com", "Kai", uint16(events.Idle), uint64(9), int64(1796644620123456789), int16(0))
	f.Add("sip:kai@contoso.com", "Kai", uint16(events.Away), uint64(9), int64(1796644620000000000), int16(90))
	f.Add("sip:kai@contoso.com", "Kai", uint16(events.Away), uint64(9), int64(-62167219200), int16(0)) // 0000-01-01, in seconds
	f.Add("sip:kai@contoso.com", "Kai", uint16(events.Away), uint64(9), int64(253402300800), int16(0)) // 10000-01-01, in seconds
	f.Fuzz(func(t *testing.T, contact, name string, status uint16, seq uint64, lastActive int64, zoneMinutes int16) {
		r := Reply{Contact: contact, Name: name, Status: events.Status(status), Seq: seq}
		if lastActive != 0 {
			// Nanoseconds since 1970 when large, else seconds: both
			// reach past the years RFC 3339 writes.
			la := time.Unix(lastActive, 0)
			if lastActive > 1e12 || lastActive < -1e12 {
				la = time.Unix(0, lastActive)
			}
			r.LastActive = la.UTC()
			if zoneMinutes != 0 {
				r.LastActive = la.In(time.FixedZone("z", int(zoneMinutes)*60))
			}
		}
		replies := []any{r, StatusesReply{}, StatusesReply{Statuses: []Reply{}},
			StatusesReply{Statuses: []Reply{r, {Contact: name, Status: events.Unknown}}}}
		for _, v := range replies {
			var want []byte
			var wantErr error
			switch v := v.(type) {
			case Reply:
				want, wantErr = json.Marshal(v.jsonForm())
			case StatusesReply:
				want, wantErr = json.Marshal(v.jsonForm())
			}
			got, err := v.(json.Marshaler).MarshalJSON()
			if fmt.Sprint(err) != fmt.Sprint(wantErr) || !bytes.Equal(got, want) {
				t.Fatalf("%T %+v:\n got %s, %v\nwant %s, %v", v, v, got, err, want, wantErr)
			}
		}
		data, err := r.MarshalJSON()
		if !r.Status.Valid() || err != nil { // refused alike by both, above
			return
		}
		var j replyJSON
		if err := json.Unmarshal(data, &j); err != nil {
			t.Fatal(err)
		}
		// A last active is left to encoding/json: the fast reads say so.
		fast := r.LastActive.IsZero()
		if got, ok := readReply(data, ""); ok != fast || ok && got != j.reply() {
			t.Fatalf("%s: fast read %+v, %v; want %+v", data, got, ok, j.reply())
		}
		var back Reply
		if err := back.UnmarshalJSON(data); err != nil || !back.LastActive.Equal(j.LastActive) || back.Seq != j.Seq {
			t.Fatalf("%s: read %+v, %v; want %+v", data, back, err, j.reply())
		}
		list := StatusesReply{Statuses: []Reply{r, r}}
		data, _ = list.MarshalJSON()
		if got, ok := readStatuses(data, nil); ok != fast || ok && !slices.Equal(got, []Reply{j.reply(), j.reply()}) {
			t.Fatalf("%s: fast read %+v, %v; want %+v twice", data, got, ok, j.reply())
		}
	})
}
