package client

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// FuzzEndpointJSON holds the fast paths of endpointjson.go to encoding/json:
// a heartbeat's or sign-out's request reads as DecodeEndpointRequest's
// encoding/json reads it, and an EndpointResult as json.Unmarshal reads it,
// whatever the bytes, errors included.
func FuzzEndpointJSON(f *testing.F) {
	res, _ := json.Marshal(endpointResultJSON{Contact: "sip:kai@contoso.com", Endpoint: "desk-1", Status: events.Busy,
		Previous: events.Online, Seq: 42, Changed: true, Expires: time.Date(2026, 12, 7, 12, 0, 0, 500, time.UTC)})
	for _, seed := range []string{
		`{"endpoint":"desk-1"}`, `{"Endpoint":"desk-1"}`, `{"endpoint":"d\u00e9sk"}`, `{"endpoint":null}`, `{"endpoint":7}`,
		`{"endpoint":"a","kind":"web"}`, `{}`, `{"endpoint":"a"} x`, `{"endpoint":"a","endpoint":"b"}`, `{"endpoint":"my desk"}`,
		string(res), `{"contact":"a","status":"MISTATUS_ONLINE","seq":1e3}`, `{"status":"online","changed":"yes"}`,
		`{"expires":"2026-12-07T12:00:00Z"}`, `{"expires":"2026-12-07T12:00:00.000Z"}`, `{"expires":"2026-12-07t12:00:00z"}`,
		`{"previous":"Busy","seq":-1}`, `{"contact":"a","status":"online","previous":"offline","seq":3,"changed":false}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, op := range []string{OpHeartbeat, OpSignOut} {
			fast, ferr := decodeEndpointRequest("c", op, data, true)
			slow, serr := decodeEndpointRequest("c", op, data, false)
			if fmt.Sprint(ferr) != fmt.Sprint(serr) || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%s %q: fast %+v, %v; encoding/json %+v, %v", op, data, fast, ferr, slow, serr)
			}
		}
		var fast EndpointResult
		ferr := fast.UnmarshalJSON(data)
		var slow endpointResultJSON
		serr := json.Unmarshal(data, &slow)
		if fmt.Sprint(ferr) != fmt.Sprint(serr) {
			t.Fatalf("%q: fast %v; encoding/json %v", data, ferr, serr)
		}
		if serr == nil && !sameResult(fast, EndpointResult(slow)) {
			t.Fatalf("%q: fast %+v; encoding/json %+v", data, fast, slow)
		}
	})
}

// sameResult compares two results, their times by the instant they name.
func sameResult(a, b EndpointResult) bool {
	ta, tb := a.Expires, b.Expires
	a.Expires, b.Expires = time.Time{}, time.Time{}
	return a == b && ta.Equal(tb)
}

// TestEndpointResultFastPath: the results the engine writes are read by the
// fast path, not left to encoding/json.
func TestEndpointResultFastPath(t *testing.T) {
	want := EndpointResult{Contact: "sip:kai@contoso.com", Endpoint: "desk-1", Status: events.Busy, Previous: events.Online,
		Seq: 42, Changed: true, Expires: time.Date(2026, 12, 7, 12, 0, 0, 500, time.UTC)}
	for _, r := range []EndpointResult{want, {Contact: "a", Endpoint: "b", Status: events.Online, Previous: events.Online, Seq: 3}} {
		data, err := json.Marshal(endpointResultJSON(r))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := readEndpointResult(data)
		if !ok || !sameResult(got, r) {
			t.Errorf("%s: fast read %+v, %v; want %+v", data, got, ok, r)
		}
	}
	if ep, ok := readEndpointOnly([]byte(`{"endpoint":"desk-1"}`)); !ok || ep != "desk-1" {
		t.Errorf("a heartbeat's request: %q, %v", ep, ok)
	}
}
