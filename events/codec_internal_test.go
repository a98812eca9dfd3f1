package events

import (
	"testing"
	"time"
)

// TestFastPath checks which records the fast path reads itself: those writers
// write must not go to encoding/json, or the codec is only as fast as before.
func TestFastPath(t *testing.T) {
	at := time.Date(2026, 11, 24, 5, 25, 57, 123456789, time.UTC)
	e := Event{Contact: "sip:alice@contoso.com", Name: "Zoë <&> \u2028", Status: Away, Previous: Online, At: at,
		Cause: CauseEndpoint, RequestID: "r-1"}
	c, _ := ChangeOf(e)
	tests := []struct {
		name   string
		data   string
		change bool // a feed entry, not an event
		fast   bool
	}{
		{"event", string(e.Encode()), false, true},
		{"feed entry", string(c.Encode()), true, true},
		{"event with unknown fields", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","device":{"id":[1,"x",null,true]}}`, false, true},
		{"feed entry with the fields of an event", `{"v":2,"contact":"a","previous":"away","at":"2026-11-24T05:25:57Z","status":"online","cause":"user"}`, true, true},
		{"feed entry of version 1", `{"v":1,"contact":"a","previous":"away","seq":1,"at":"2026-11-24T05:25:57Z"}`, true, true},
		{"numeric and constant statuses", `{"v":1,"contact":"a","status":34,"previous":"MISTATUS_ONLINE","at":"2026-11-24T05:25:57+01:00"}`, false, true},
		{"escapes", `{"v":1,"contact":"a\u0041","status":"\u0061way","at":"2026-11-24T05:25:57Z","cause":"\u0075ser"}`, false, true},
		{"key in another case", `{"v":1,"Contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`, false, false},
		{"key folded", `{"v":1,"contact":"a","ſtatus":"away","at":"2026-11-24T05:25:57Z"}`, false, false},
		{"key escaped", `{"v":1,"\u0063ontact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`, false, false},
		{"key twice", `{"v":1,"contact":"a","contact":"b","status":"away","at":"2026-11-24T05:25:57Z"}`, false, false},
		{"null", `{"v":1,"contact":"a","name":null,"status":"away","at":"2026-11-24T05:25:57Z"}`, false, false},
		{"status that does not parse", `{"v":1,"contact":"a","status":"lunch","at":"2026-11-24T05:25:57Z"}`, false, false},
		{"v fraction", `{"v":1.0,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`, false, false},
		{"seq negative, an unknown field", `{"v":2,"contact":"a","previous":"away","seq":-1,"at":"2026-11-24T05:25:57Z"}`, true, true},
		{"previous that does not parse", `{"v":2,"contact":"a","previous":"lunch","at":"2026-11-24T05:25:57Z"}`, true, false},
		{"invalid UTF-8", "{\"v\":1,\"contact\":\"a\xff\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fast bool
			if tc.change {
				fast = readChange([]byte(tc.data), new(changeJSON))
			} else {
				fast = readEvent([]byte(tc.data), new(eventJSON))
			}
			if fast != tc.fast {
				t.Errorf("fast path for %s = %v, want %v", tc.data, fast, tc.fast)
			}
		})
	}
}

// FuzzReadRecord checks the fast readers alone: whatever they read,
// encoding/json reads without an error and to the same JSON form.
func FuzzReadRecord(f *testing.F) {
	f.Add([]byte(`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"away","previous":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}`))
	f.Add([]byte(`{"v":1,"contact":"a\ud83d\ude00","name":"\ud83d","status":34,"at":"2026-11-24T05:25:57Z","request_id":"\udc00\ud800x","x":[{}]}`))
	f.Add([]byte(`{"v":1,"contact":"a","previous":"online","seq":18446744073709551615,"at":"2026-11-24T05:25:57Z"}`))
	f.Add([]byte(`{"v":2,"contact":"a","name":"A","previous":"online","at":"2026-11-24T05:25:57Z"}`))
	f.Add([]byte(`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","cause":"endpoint\u0000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got eventJSON
		if readEvent(data, &got) {
			var want eventJSON
			if err := strictJSON(data, &want); err != nil {
				t.Fatalf("fast path read event %q, encoding/json: %v", data, err)
			}
			if got != want {
				t.Fatalf("fast path read event %q as %+v, encoding/json as %+v", data, got, want)
			}
		}
		var gotC changeJSON
		if readChange(data, &gotC) {
			var want changeJSON
			if err := strictJSON(data, &want); err != nil {
				t.Fatalf("fast path read feed entry %q, encoding/json: %v", data, err)
			}
			if gotC != want {
				t.Fatalf("fast path read feed entry %q as %+v, encoding/json as %+v", data, gotC, want)
			}
		}
	})
}
