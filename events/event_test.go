package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// at is the time of DESIGN.md's example, with nanoseconds.
var at = time.Date(2026, 11, 24, 5, 25, 57, 123456789, time.UTC)

// aliceAway is DESIGN.md's example event.
var aliceAway = events.Event{
	Contact:  "sip:alice@contoso.com",
	Name:     "Alice",
	Status:   events.Away,
	Previous: events.Online,
	At:       at,
	Cause:    events.CauseUser,
}

// diffEvent says how got differs from want, or "" when they are the same event:
// the same instant, in UTC, and every other field equal.
func diffEvent(got, want events.Event) string {
	var d []string
	if !got.At.Equal(want.At) {
		d = append(d, fmt.Sprintf("At = %v, want %v", got.At, want.At))
	}
	if got.At.Location() != time.UTC {
		d = append(d, fmt.Sprintf("At is in %v, want UTC", got.At.Location()))
	}
	got.At, want.At = time.Time{}, time.Time{}
	if got != want {
		d = append(d, fmt.Sprintf("got %+v, want %+v", got, want))
	}
	return strings.Join(d, "; ")
}

// diffChange is diffEvent for feed entries.
func diffChange(got, want events.Change) string {
	var d []string
	if !got.At.Equal(want.At) {
		d = append(d, fmt.Sprintf("At = %v, want %v", got.At, want.At))
	}
	if got.At.Location() != time.UTC {
		d = append(d, fmt.Sprintf("At is in %v, want UTC", got.At.Location()))
	}
	got.At, want.At = time.Time{}, time.Time{}
	if got != want {
		d = append(d, fmt.Sprintf("got %+v, want %+v", got, want))
	}
	return strings.Join(d, "; ")
}

func TestEventJSONShape(t *testing.T) {
	got := string(aliceAway.Encode())
	want := `{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"away","previous":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}`
	if got != want {
		t.Errorf("Encode() =\n%s\nwant\n%s", got, want)
	}

	// The same, field by field, as any client reading the stream sees it.
	var fields map[string]any
	if err := json.Unmarshal([]byte(got), &fields); err != nil {
		t.Fatalf("Encode() is not a JSON object: %v", err)
	}
	wantFields := map[string]any{
		"v":        float64(1),
		"contact":  "sip:alice@contoso.com",
		"name":     "Alice",
		"status":   "away",
		"previous": "online",
		"at":       "2026-11-24T05:25:57.123456789Z",
		"cause":    "user",
	}
	if !reflect.DeepEqual(fields, wantFields) {
		t.Errorf("Encode() fields = %v, want %v", fields, wantFields)
	}
}

func TestEventJSONOptionalFields(t *testing.T) {
	tests := []struct {
		name      string
		event     events.Event
		wantField map[string]any // field -> value; nil value means absent
	}{
		{"empty name omitted", events.Event{Contact: "a", Status: events.Online, At: at, Cause: events.CauseUser},
			map[string]any{"name": nil, "request_id": nil, "previous": "unknown"}},
		{"request_id", events.Event{Contact: "a", Status: events.Online, At: at, Cause: events.CauseUser, RequestID: "req-1"},
			map[string]any{"request_id": "req-1"}},
		{"time in another zone is written in UTC",
			events.Event{Contact: "a", Status: events.Online, At: time.Date(2026, 11, 24, 6, 25, 57, 5, time.FixedZone("CET", 3600)), Cause: events.CauseUser},
			map[string]any{"at": "2026-11-24T05:25:57.000000005Z"}},
		{"whole seconds have no fraction",
			events.Event{Contact: "a", Status: events.Online, At: time.Date(2026, 11, 24, 5, 25, 57, 0, time.UTC), Cause: events.CauseUser},
			map[string]any{"at": "2026-11-24T05:25:57Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.event.Encode()
			var fields map[string]any
			if err := json.Unmarshal(b, &fields); err != nil {
				t.Fatalf("Encode() = %s, not a JSON object: %v", b, err)
			}
			for k, want := range tc.wantField {
				got, present := fields[k]
				switch {
				case want == nil && present:
					t.Errorf("Encode() = %s has %q, want it omitted", b, k)
				case want != nil && got != want:
					t.Errorf("Encode() = %s has %q = %v, want %v", b, k, got, want)
				}
			}
		})
	}
}

func TestEventRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		event events.Event
	}{
		{"design example", aliceAway},
		{"first event", events.Event{Contact: "sip:bob@contoso.com", Status: events.Online, Previous: events.Unknown, At: at, Cause: events.CauseUser}},
		{"with request_id", events.Event{Contact: "sip:bob@contoso.com", Name: "Bob", Status: events.Busy, Previous: events.Online, At: at, Cause: events.CauseUser, RequestID: "7f3c-req"}},
		{"invisible is in the log", events.Event{Contact: "a", Status: events.Invisible, Previous: events.Online, At: at, Cause: events.CauseUser}},
		{"from invisible", events.Event{Contact: "a", Status: events.Offline, Previous: events.Invisible, At: at, Cause: events.CauseUser}},
		{"idle from an endpoint", events.Event{Contact: "a", Status: events.Idle, Previous: events.Away, At: at, Cause: events.CauseEndpoint}},
		{"idle from the engine", events.Event{Contact: "a", Status: events.Idle, Previous: events.Online, At: at, Cause: events.CauseEngine}},
		{"previous idle", events.Event{Contact: "a", Status: events.Online, Previous: events.Idle, At: at, Cause: events.CauseUser}},
		{"engine sign-out", events.Event{Contact: "a", Status: events.Offline, Previous: events.Custom, At: at, Cause: events.CauseEngine}},
		{"one nanosecond", events.Event{Contact: "a", Status: events.Online, At: time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC), Cause: events.CauseUser}},
		{"zone converted to UTC", events.Event{Contact: "a", Status: events.Online, At: time.Date(2026, 1, 1, 0, 0, 0, 999999999, time.FixedZone("", -7*3600)), Cause: events.CauseUser}},
		{"zero time", events.Event{Contact: "a", Status: events.Online, Cause: events.CauseUser}},
		{"non-ASCII", events.Event{Contact: "sip:zoë@bücher.example", Name: "Zoë Núñez <z&n>", Status: events.OnThePhone, Previous: events.DoNotDisturb, At: at, Cause: events.CauseEndpoint}},
		{"longest fields", events.Event{Contact: strings.Repeat("c", 256), Name: strings.Repeat("n", 256), Status: events.Online, At: at, Cause: events.CauseUser, RequestID: strings.Repeat("r", 128)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.event.Encode()
			got, err := events.DecodeEvent(b)
			if err != nil {
				t.Fatalf("DecodeEvent(%s) error = %v", b, err)
			}
			if d := diffEvent(got, tc.event); d != "" {
				t.Errorf("DecodeEvent(%s): %s", b, d)
			}
			if again := got.Encode(); string(again) != string(b) {
				t.Errorf("re-encoded event = %s, want %s", again, b)
			}
		})
	}
}

func TestDecodeEventAccepts(t *testing.T) {
	tests := []struct {
		name string
		json string
		want events.Event
	}{
		{"unknown fields are ignored",
			`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"away","previous":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"user","device":"phone-1","note":"back at 3","future":{"nested":[1,2,{"x":null}]},"seq":7}`,
			aliceAway},
		{"fields in any order, with whitespace",
			"{ \"cause\":\"user\",\n\t\"at\":\"2026-11-24T05:25:57.123456789Z\", \"previous\":\"online\", \"status\":\"away\", \"name\":\"Alice\", \"contact\":\"sip:alice@contoso.com\", \"v\":1 }\n",
			aliceAway},
		{"statuses by number and constant",
			`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":34,"previous":"MISTATUS_ONLINE","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}`,
			aliceAway},
		{"status in hex",
			`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"0x0022","previous":"2","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}`,
			aliceAway},
		{"a cause this engine does not know, and idle by the user: the log holds what was accepted",
			`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"idle","previous":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"screensaver"}`,
			events.Event{Contact: "sip:alice@contoso.com", Name: "Alice", Status: events.Idle, Previous: events.Online,
				At: aliceAway.At, Cause: "screensaver"}},
		{"missing cause is the user",
			`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"away","previous":"online","at":"2026-11-24T05:25:57.123456789Z"}`,
			aliceAway},
		{"missing previous is unknown",
			`{"v":1,"contact":"a","status":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}`,
			events.Event{Contact: "a", Status: events.Online, Previous: events.Unknown, At: at, Cause: events.CauseUser}},
		{"time with an offset is converted to UTC",
			`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"away","previous":"online","at":"2026-11-24T06:25:57.123456789+01:00","cause":"user"}`,
			aliceAway},
		{"escaped strings",
			`{"v":1,"contact":"sip:alice@contoso\u002ecom","name":"\u0041lice","status":"\u0061way","previous":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}`,
			aliceAway},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.DecodeEvent([]byte(tc.json))
			if err != nil {
				t.Fatalf("DecodeEvent(%s) error = %v", tc.json, err)
			}
			if d := diffEvent(got, tc.want); d != "" {
				t.Errorf("DecodeEvent(%s): %s", tc.json, d)
			}
		})
	}
}

// eventJSON returns DESIGN.md's example event with some fields replaced (a nil
// value removes the field) and extra raw text appended.
func eventJSON(t *testing.T, replace map[string]any) []byte {
	t.Helper()
	fields := map[string]any{
		"v": 1, "contact": "sip:alice@contoso.com", "name": "Alice", "status": "away",
		"previous": "online", "at": "2026-11-24T05:25:57.123456789Z", "cause": "user",
	}
	for k, v := range replace {
		if v == nil {
			delete(fields, k)
			continue
		}
		fields[k] = v
	}
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatalf("building test event: %v", err)
	}
	return b
}

// raw is a JSON value written as is into a test record.
type raw string

func (r raw) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestDecodeEventRejects(t *testing.T) {
	valid := string(aliceAway.Encode())
	tests := []struct {
		name      string
		data      []byte
		wantErr   error
		wantInMsg string // the bad value, as the error must name it
	}{
		{name: "empty", data: nil, wantErr: events.ErrMalformed},
		{name: "not JSON", data: []byte("away"), wantErr: events.ErrMalformed},
		{name: "JSON null", data: []byte("null"), wantErr: events.ErrMalformed},
		{name: "JSON array", data: []byte(`[` + valid + `]`), wantErr: events.ErrMalformed},
		{name: "JSON string", data: []byte(`"away"`), wantErr: events.ErrMalformed},
		{name: "cut short", data: []byte(valid[:len(valid)-1]), wantErr: events.ErrMalformed},
		{name: "trailing object", data: []byte(valid + `{}`), wantErr: events.ErrMalformed},
		{name: "two events", data: []byte(valid + "\n" + valid), wantErr: events.ErrMalformed},
		{name: "trailing garbage", data: []byte(valid + "x"), wantErr: events.ErrMalformed},
		{name: "invalid UTF-8 in name", data: []byte(strings.Replace(valid, `"Alice"`, "\"Al\xffce\"", 1)), wantErr: events.ErrMalformed},
		{name: "invalid UTF-8 in unknown field", data: []byte(strings.Replace(valid, `{"v":1,`, "{\"v\":1,\"note\":\"\xc3\",", 1)), wantErr: events.ErrMalformed},
		{name: "missing v", data: eventJSON(t, map[string]any{"v": nil}), wantErr: events.ErrMalformed, wantInMsg: `"v"`},
		{name: "v 0", data: eventJSON(t, map[string]any{"v": 0}), wantErr: events.ErrMalformed, wantInMsg: `"v"`},
		{name: "v negative", data: eventJSON(t, map[string]any{"v": -1}), wantErr: events.ErrMalformed, wantInMsg: "-1"},
		{name: "v string", data: eventJSON(t, map[string]any{"v": "1"}), wantErr: events.ErrMalformed},
		{name: "v fraction", data: eventJSON(t, map[string]any{"v": raw("1.5")}), wantErr: events.ErrMalformed},
		{name: "v null", data: eventJSON(t, map[string]any{"v": raw("null")}), wantErr: events.ErrMalformed},
		{name: "v newer", data: eventJSON(t, map[string]any{"v": events.Version + 1}), wantErr: events.ErrUnsupportedVersion, wantInMsg: fmt.Sprint(events.Version + 1)},
		{name: "v far newer", data: eventJSON(t, map[string]any{"v": 99}), wantErr: events.ErrUnsupportedVersion, wantInMsg: "99"},
		{name: "missing contact", data: eventJSON(t, map[string]any{"contact": nil}), wantErr: events.ErrMalformed, wantInMsg: "contact"},
		{name: "empty contact", data: eventJSON(t, map[string]any{"contact": ""}), wantErr: events.ErrMalformed, wantInMsg: "contact"},
		{name: "contact with space", data: eventJSON(t, map[string]any{"contact": "alice smith"}), wantErr: events.ErrMalformed, wantInMsg: "alice smith"},
		{name: "contact with control", data: eventJSON(t, map[string]any{"contact": "alice\u0007"}), wantErr: events.ErrMalformed, wantInMsg: `alice\a`},
		{name: "contact too long", data: eventJSON(t, map[string]any{"contact": strings.Repeat("c", 257)}), wantErr: events.ErrMalformed, wantInMsg: "257"},
		{name: "contact not a string", data: eventJSON(t, map[string]any{"contact": 42}), wantErr: events.ErrMalformed},
		{name: "name with newline", data: eventJSON(t, map[string]any{"name": "Alice\nBob"}), wantErr: events.ErrMalformed, wantInMsg: `Alice\nBob`},
		{name: "name too long", data: eventJSON(t, map[string]any{"name": strings.Repeat("n", 257)}), wantErr: events.ErrMalformed, wantInMsg: "257"},
		{name: "missing status", data: eventJSON(t, map[string]any{"status": nil}), wantErr: events.ErrMalformed, wantInMsg: "unknown"},
		{name: "status null", data: eventJSON(t, map[string]any{"status": raw("null")}), wantErr: events.ErrMalformed, wantInMsg: "null"},
		{name: "status bad name", data: eventJSON(t, map[string]any{"status": "lunch"}), wantErr: events.ErrMalformed, wantInMsg: `"lunch"`},
		{name: "status bad number", data: eventJSON(t, map[string]any{"status": 0x9999}), wantErr: events.ErrMalformed, wantInMsg: "39321"},
		{name: "status bad hex", data: eventJSON(t, map[string]any{"status": "0x9999"}), wantErr: events.ErrMalformed, wantInMsg: "0x9999"},
		{name: "status unknown", data: eventJSON(t, map[string]any{"status": "unknown"}), wantErr: events.ErrMalformed, wantInMsg: "unknown"},
		{name: "status unknown by number", data: eventJSON(t, map[string]any{"status": 0}), wantErr: events.ErrMalformed, wantInMsg: "unknown"},
		{name: "status local", data: eventJSON(t, map[string]any{"status": "local-finding-server"}), wantErr: events.ErrMalformed, wantInMsg: "local-finding-server"},
		{name: "status local by constant", data: eventJSON(t, map[string]any{"status": "MISTATUS_LOCAL_CONNECTING_TO_SERVER"}), wantErr: events.ErrMalformed, wantInMsg: "local-connecting-to-server"},
		{name: "status local by number", data: eventJSON(t, map[string]any{"status": 0x400}), wantErr: events.ErrMalformed, wantInMsg: "local-disconnecting-from-server"},
		{name: "cause with a control character", data: eventJSON(t, map[string]any{"cause": "ad\u0000min"}), wantErr: events.ErrInvalidCause, wantInMsg: "control"},
		{name: "cause too long", data: eventJSON(t, map[string]any{"cause": strings.Repeat("c", 65)}), wantErr: events.ErrInvalidCause, wantInMsg: "64 bytes"},
		{name: "previous bad name", data: eventJSON(t, map[string]any{"previous": "lunch"}), wantErr: events.ErrMalformed, wantInMsg: `"lunch"`},
		{name: "previous null", data: eventJSON(t, map[string]any{"previous": raw("null")}), wantErr: events.ErrMalformed},
		{name: "previous local", data: eventJSON(t, map[string]any{"previous": "local-synchronizing-with-server"}), wantErr: events.ErrMalformed, wantInMsg: "local-synchronizing-with-server"},
		{name: "previous local by number", data: eventJSON(t, map[string]any{"previous": 256}), wantErr: events.ErrMalformed, wantInMsg: "local-finding-server"},
		{name: "previous equals status", data: eventJSON(t, map[string]any{"previous": "away"}), wantErr: events.ErrMalformed, wantInMsg: "away"},
		{name: "previous equals status in another spelling", data: eventJSON(t, map[string]any{"previous": "0x22"}), wantErr: events.ErrMalformed, wantInMsg: "away"},
		{name: "invisible to invisible", data: eventJSON(t, map[string]any{"status": "invisible", "previous": "MISTATUS_INVISIBLE"}), wantErr: events.ErrMalformed, wantInMsg: "invisible"},
		{name: "missing at", data: eventJSON(t, map[string]any{"at": nil}), wantErr: events.ErrMalformed, wantInMsg: `"at"`},
		{name: "at not a time", data: eventJSON(t, map[string]any{"at": "yesterday"}), wantErr: events.ErrMalformed, wantInMsg: `"yesterday"`},
		{name: "at without zone", data: eventJSON(t, map[string]any{"at": "2026-11-24T05:25:57"}), wantErr: events.ErrMalformed, wantInMsg: "2026-11-24T05:25:57"},
		{name: "at with a space", data: eventJSON(t, map[string]any{"at": "2026-11-24 05:25:57Z"}), wantErr: events.ErrMalformed, wantInMsg: "2026-11-24 05:25:57Z"},
		{name: "at date only", data: eventJSON(t, map[string]any{"at": "2026-11-24"}), wantErr: events.ErrMalformed, wantInMsg: "2026-11-24"},
		{name: "at month 13", data: eventJSON(t, map[string]any{"at": "2026-13-24T05:25:57Z"}), wantErr: events.ErrMalformed},
		{name: "at a number", data: eventJSON(t, map[string]any{"at": 1764000000}), wantErr: events.ErrMalformed},
		{name: "request_id too long", data: eventJSON(t, map[string]any{"request_id": strings.Repeat("r", 129)}), wantErr: events.ErrMalformed, wantInMsg: "129"},
		{name: "request_id with control", data: eventJSON(t, map[string]any{"request_id": "req\u0000"}), wantErr: events.ErrMalformed, wantInMsg: `req\x00`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.DecodeEvent(tc.data)
			if err == nil {
				t.Fatalf("DecodeEvent(%s) = %+v, want an error wrapping %v", tc.data, got, tc.wantErr)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("DecodeEvent(%s) error = %v, want it to wrap %v", tc.data, err, tc.wantErr)
			}
			if got != (events.Event{}) {
				t.Errorf("DecodeEvent(%s) = %+v with an error, want the zero Event", tc.data, got)
			}
			if tc.wantInMsg != "" && !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("DecodeEvent(%s) error = %q, want it to contain %q", tc.data, err, tc.wantInMsg)
			}
		})
	}
}

// TestDecodeEventAtRange: a record is only accepted if its re-encoding can be
// decoded again. An offset can carry a time at the edge of RFC 3339's four-digit
// years out of them once it is converted to UTC.
func TestDecodeEventAtRange(t *testing.T) {
	tests := []struct {
		name string
		at   string
	}{
		{"year 0 in UTC", "0000-01-01T00:00:00Z"},
		{"year 9999 in UTC", "9999-12-31T23:59:59.999999999Z"},
		{"year 0 east of UTC", "0000-01-01T00:00:00+01:00"},
		{"year 9999 west of UTC", "9999-12-31T23:59:59-01:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := eventJSON(t, map[string]any{"at": tc.at})
			e, err := events.DecodeEvent(data)
			if err != nil {
				if !errors.Is(err, events.ErrMalformed) {
					t.Errorf("DecodeEvent(%s) error = %v, want it to wrap ErrMalformed", data, err)
				}
				return // refusing it is fine
			}
			again, err := events.DecodeEvent(e.Encode())
			if err != nil {
				t.Fatalf("DecodeEvent accepted %q but not its re-encoding %s: %v", tc.at, e.Encode(), err)
			}
			if d := diffEvent(again, e); d != "" {
				t.Errorf("re-decoded event: %s", d)
			}
		})
		t.Run(tc.name+", feed entry", func(t *testing.T) {
			data := changeJSON(t, map[string]any{"at": tc.at})
			c, err := events.DecodeChange(data)
			if err != nil {
				if !errors.Is(err, events.ErrMalformed) {
					t.Errorf("DecodeChange(%s) error = %v, want it to wrap ErrMalformed", data, err)
				}
				return
			}
			again, err := events.DecodeChange(c.Encode())
			if err != nil {
				t.Fatalf("DecodeChange accepted %q but not its re-encoding %s: %v", tc.at, c.Encode(), err)
			}
			if d := diffChange(again, c); d != "" {
				t.Errorf("re-decoded feed entry: %s", d)
			}
		})
	}
}

func TestChangeJSONShape(t *testing.T) {
	c := events.Change{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: events.Online, At: at}
	got := string(c.Encode())
	want := `{"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","at":"2026-11-24T05:25:57.123456789Z"}`
	if got != want {
		t.Errorf("Encode() =\n%s\nwant\n%s", got, want)
	}
	c.Name = ""
	if b := c.Encode(); strings.Contains(string(b), `"name"`) {
		t.Errorf("Encode() with no name = %s, want \"name\" omitted", b)
	}
	if b := c.Encode(); strings.Contains(string(b), `"status"`) {
		t.Errorf("Encode() = %s, want no current status in a feed entry", b)
	}
	if b := c.Encode(); strings.Contains(string(b), `"seq"`) {
		t.Errorf("Encode() = %s, want no position in a feed entry (a log sequence counts hidden changes)", b)
	}
}

func TestChangeRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		change events.Change
	}{
		{"design example", events.Change{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: events.Online, At: at}},
		{"no name", events.Change{Contact: "a", Previous: events.Away, At: at}},
		{"first change", events.Change{Contact: "a", Previous: events.Unknown, At: at}},
		{"previous offline", events.Change{Contact: "a", Previous: events.Offline, At: at}},
		{"previous idle", events.Change{Contact: "a", Previous: events.Idle, At: at}},
		{"zone converted to UTC", events.Change{Contact: "a", Previous: events.Busy, At: time.Date(2026, 1, 1, 23, 0, 0, 1, time.FixedZone("", 5*3600+1800))}},
		{"non-ASCII", events.Change{Contact: "sip:李@例子.中国", Name: "李 <&>", Previous: events.Custom, At: at}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.change.Encode()
			got, err := events.DecodeChange(b)
			if err != nil {
				t.Fatalf("DecodeChange(%s) error = %v", b, err)
			}
			if d := diffChange(got, tc.change); d != "" {
				t.Errorf("DecodeChange(%s): %s", b, d)
			}
			if again := got.Encode(); string(again) != string(b) {
				t.Errorf("re-encoded change = %s, want %s", again, b)
			}
		})
	}
}

func TestDecodeChangeAcceptsUnknownFields(t *testing.T) {
	// "seq" was a field of version 1: in version 2 it is one more unknown field.
	data := `{"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","seq":42,"at":"2026-11-24T05:25:57.123456789Z","status":"away","endpoint":{"kind":"phone"},"extra":[null]}`
	want := events.Change{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: events.Online, At: at}
	got, err := events.DecodeChange([]byte(data))
	if err != nil {
		t.Fatalf("DecodeChange(%s) error = %v", data, err)
	}
	if d := diffChange(got, want); d != "" {
		t.Errorf("DecodeChange(%s): %s", data, d)
	}
}

// changeJSON is eventJSON for feed entries.
func changeJSON(t *testing.T, replace map[string]any) []byte {
	t.Helper()
	fields := map[string]any{
		"v": 2, "contact": "sip:alice@contoso.com", "name": "Alice", "previous": "online",
		"at": "2026-11-24T05:25:57.123456789Z",
	}
	for k, v := range replace {
		if v == nil {
			delete(fields, k)
			continue
		}
		fields[k] = v
	}
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatalf("building test feed entry: %v", err)
	}
	return b
}

func TestDecodeChangeRejects(t *testing.T) {
	valid := string(changeJSON(t, nil))
	tests := []struct {
		name      string
		data      []byte
		wantErr   error
		wantInMsg string
	}{
		{name: "empty", data: nil, wantErr: events.ErrMalformed},
		{name: "not JSON", data: []byte("online"), wantErr: events.ErrMalformed},
		{name: "trailing data", data: []byte(valid + valid), wantErr: events.ErrMalformed},
		{name: "invalid UTF-8", data: []byte(strings.Replace(valid, `"Alice"`, "\"Al\xffce\"", 1)), wantErr: events.ErrMalformed},
		{name: "missing v", data: changeJSON(t, map[string]any{"v": nil}), wantErr: events.ErrMalformed, wantInMsg: `"v"`},
		{name: "v newer", data: changeJSON(t, map[string]any{"v": events.ChangeVersion + 1}), wantErr: events.ErrUnsupportedVersion, wantInMsg: fmt.Sprint(events.ChangeVersion + 1)},
		{name: "v 1, with a log seq", data: changeJSON(t, map[string]any{"v": 1, "seq": 42}), wantErr: events.ErrOldVersion, wantInMsg: `"v":1`},
		{name: "v 1, without a seq", data: changeJSON(t, map[string]any{"v": 1}), wantErr: events.ErrOldVersion, wantInMsg: "derives the feed again"},
		{name: "missing contact", data: changeJSON(t, map[string]any{"contact": nil}), wantErr: events.ErrMalformed},
		{name: "invalid contact", data: changeJSON(t, map[string]any{"contact": "a\tb"}), wantErr: events.ErrMalformed, wantInMsg: `a\tb`},
		{name: "invalid name", data: changeJSON(t, map[string]any{"name": "A\x00"}), wantErr: events.ErrMalformed, wantInMsg: `A\x00`},
		{name: "previous invisible", data: changeJSON(t, map[string]any{"previous": "invisible"}), wantErr: events.ErrMalformed, wantInMsg: "invisible"},
		{name: "previous invisible by constant", data: changeJSON(t, map[string]any{"previous": "MISTATUS_INVISIBLE"}), wantErr: events.ErrMalformed, wantInMsg: "invisible"},
		{name: "previous invisible by number", data: changeJSON(t, map[string]any{"previous": 6}), wantErr: events.ErrMalformed, wantInMsg: "invisible"},
		{name: "previous local", data: changeJSON(t, map[string]any{"previous": "local-finding-server"}), wantErr: events.ErrMalformed, wantInMsg: "local-finding-server"},
		{name: "previous bad name", data: changeJSON(t, map[string]any{"previous": "lunch"}), wantErr: events.ErrMalformed, wantInMsg: `"lunch"`},
		{name: "previous null", data: changeJSON(t, map[string]any{"previous": raw("null")}), wantErr: events.ErrMalformed},
		{name: "bad time", data: changeJSON(t, map[string]any{"at": "2026-11-24T25:00:00Z"}), wantErr: events.ErrMalformed, wantInMsg: "2026-11-24T25:00:00Z"},
		{name: "missing time", data: changeJSON(t, map[string]any{"at": nil}), wantErr: events.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.DecodeChange(tc.data)
			if err == nil {
				t.Fatalf("DecodeChange(%s) = %+v, want an error wrapping %v", tc.data, got, tc.wantErr)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("DecodeChange(%s) error = %v, want it to wrap %v", tc.data, err, tc.wantErr)
			}
			if got != (events.Change{}) {
				t.Errorf("DecodeChange(%s) = %+v with an error, want the zero Change", tc.data, got)
			}
			if tc.wantInMsg != "" && !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("DecodeChange(%s) error = %q, want it to contain %q", tc.data, err, tc.wantInMsg)
			}
		})
	}
}

func TestChangeOf(t *testing.T) {
	event := func(previous, status events.Status) events.Event {
		return events.Event{Contact: "sip:alice@contoso.com", Name: "Alice", Status: status, Previous: previous,
			At: at, Cause: events.CauseEngine, RequestID: "r1"}
	}
	change := func(previous events.Status) events.Change {
		return events.Change{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: previous, At: at}
	}
	held := func(e events.Event) events.Event { e.Held = true; return e }
	shown := func(e events.Event, s events.Status) events.Event { e.Shown = s; return e }
	tests := []struct {
		name   string
		event  events.Event
		want   events.Change
		wantOK bool
	}{
		{"online to away", event(events.Online, events.Away), change(events.Online), true},
		{"first event", event(events.Unknown, events.Online), change(events.Unknown), true},
		{"unknown to offline", event(events.Unknown, events.Offline), change(events.Unknown), true},
		{"unknown to invisible looks like unknown to offline", event(events.Unknown, events.Invisible), change(events.Unknown), true},
		{"online to invisible", event(events.Online, events.Invisible), change(events.Online), true},
		{"invisible to online shows previous offline", event(events.Invisible, events.Online), change(events.Offline), true},
		{"invisible to idle shows previous offline", event(events.Invisible, events.Idle), change(events.Offline), true},
		{"offline to invisible is hidden", event(events.Offline, events.Invisible), events.Change{}, false},
		{"invisible to offline is hidden", event(events.Invisible, events.Offline), events.Change{}, false},
		{"no change is hidden", event(events.Away, events.Away), events.Change{}, false},
		{"a held change is not shown", held(event(events.Online, events.Offline)), events.Change{}, false},
		{"after held ones, previous is what was shown", shown(event(events.Offline, events.Online), events.Busy), change(events.Busy), true},
		{"back to what was shown is not shown", shown(event(events.Offline, events.Online), events.Online), events.Change{}, false},
		{"invisible, back to the offline shown, is not shown", shown(event(events.Online, events.Invisible), events.Offline), events.Change{}, false},
		{"a show", shown(event(events.Away, events.Away), events.Online), change(events.Online), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := events.ChangeOf(tc.event)
			if tc.event.Visible() != ok {
				t.Errorf("Visible() = %v, ChangeOf ok = %v: they must agree", tc.event.Visible(), ok)
			}
			if ok != tc.wantOK {
				t.Fatalf("ChangeOf(%v -> %v) ok = %v, want %v", tc.event.Previous, tc.event.Status, ok, tc.wantOK)
			}
			if got != tc.want {
				t.Errorf("ChangeOf(%v -> %v) = %+v, want %+v", tc.event.Previous, tc.event.Status, got, tc.want)
			}
		})
	}
}

// TestChangeOfHidesInvisible checks every protocol change: a feed entry never
// shows invisible, and a change to or from invisible reads exactly, byte for
// byte, like the same change to or from offline.
func TestChangeOfHidesInvisible(t *testing.T) {
	var protocol []events.Status
	for _, s := range events.Statuses() {
		if !s.Local() {
			protocol = append(protocol, s)
		}
	}
	ev := func(previous, status events.Status) events.Event {
		return events.Event{Contact: "sip:alice@contoso.com", Name: "Alice", Status: status, Previous: previous,
			At: at, Cause: events.CauseUser}
	}
	offOrInv := func(s events.Status) bool { return s == events.Offline || s == events.Invisible }
	for _, p := range protocol {
		for _, n := range protocol {
			c, ok := events.ChangeOf(ev(p, n))
			wantOK := p != n && !(offOrInv(p) && offOrInv(n))
			if ok != wantOK {
				t.Errorf("ChangeOf(%v -> %v) ok = %v, want %v", p, n, ok, wantOK)
			}
			if !ok {
				continue
			}
			if c.Previous == events.Invisible {
				t.Errorf("ChangeOf(%v -> %v).Previous = invisible, want it masked", p, n)
			}
			if bytes := c.Encode(); strings.Contains(string(bytes), "invisible") {
				t.Errorf("ChangeOf(%v -> %v).Encode() = %s, reveals invisible", p, n, bytes)
			}
			if _, err := events.DecodeChange(c.Encode()); err != nil {
				t.Errorf("DecodeChange(ChangeOf(%v -> %v).Encode()) error = %v", p, n, err)
			}
		}
	}
	for _, p := range protocol {
		for _, pair := range [][2]events.Event{
			{ev(p, events.Invisible), ev(p, events.Offline)},
			{ev(events.Invisible, p), ev(events.Offline, p)},
		} {
			hidden, hiddenOK := events.ChangeOf(pair[0])
			shown, shownOK := events.ChangeOf(pair[1])
			if hiddenOK != shownOK || hidden != shown || string(hidden.Encode()) != string(shown.Encode()) {
				t.Errorf("ChangeOf(%v -> %v) = %+v, %v; ChangeOf(%v -> %v) = %+v, %v; want them equal",
					pair[0].Previous, pair[0].Status, hidden, hiddenOK, pair[1].Previous, pair[1].Status, shown, shownOK)
			}
		}
	}
}
