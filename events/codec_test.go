package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// The codec's contract is encoding/json: these tests hold the fast paths to the
// package's own encoding/json path (export_test.go), which decodes with
// json.Unmarshal alone and encodes with json.Marshal. Decoding gives the same
// value and the same error; encoding writes the same bytes, or panics with
// encoding/json's account of what it cannot encode.

// sentinels are the errors callers branch on.
var sentinels = []error{
	events.ErrUnknownStatus, events.ErrNotSettable, events.ErrInvalidCause, events.ErrInvalidContact,
	events.ErrInvalidToken, events.ErrInvalidName, events.ErrMalformed, events.ErrUnsupportedVersion, events.ErrOldVersion,
}

// diffErr says how err differs from want, encoding/json's, or "".
func diffErr(err, want error) string {
	switch {
	case err == nil && want == nil:
		return ""
	case err == nil:
		return fmt.Sprintf("error = nil, encoding/json's = %v", want)
	case want == nil:
		return fmt.Sprintf("error = %v, encoding/json's = nil", err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) != errors.Is(want, s) {
			return fmt.Sprintf("errors.Is(%v) = %v for error %q, encoding/json's %q", s, errors.Is(err, s), err, want)
		}
	}
	if err.Error() != want.Error() {
		return fmt.Sprintf("error = %q, encoding/json's = %q", err, want)
	}
	return ""
}

// addCorpus adds the inputs of the checked-in corpora of other fuzz tests.
func addCorpus(f *testing.F, fuzzNames ...string) {
	for _, name := range fuzzNames {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			text, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			_, value, _ := strings.Cut(strings.TrimSpace(string(text)), "\n")
			value, ok := strings.CutPrefix(value, "[]byte(")
			if !ok {
				continue
			}
			unquoted, err := strconv.Unquote(strings.TrimSuffix(value, ")"))
			if err != nil {
				f.Fatalf("corpus file %s: %v", file, err)
			}
			f.Add([]byte(unquoted))
		}
	}
}

// recordCases are records of both kinds, typical and not: what writers write,
// spellings the fast path reads, and spellings it leaves to encoding/json.
// Every one decodes, as an event and as a feed entry, to the same value or the
// same error on the fast path as through encoding/json.
var recordCases = []struct{ name, data string }{
	// What the writer and the feed write.
	{"design example", string(aliceAway.Encode())},
	{"event with request ID", string(benchEvent.Encode())},
	{"feed entry", string(benchChange.Encode())},
	{"feed entry with name", `{"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","at":"2026-11-24T05:25:57.123456789Z"}`},
	{"feed entry of version 1", `{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","seq":42,"at":"2026-11-24T05:25:57.123456789Z"}`},
	{"HTML escaped and non-ASCII", `{"v":1,"contact":"sip:zoë@bücher.example","name":"Zoë Núñez \u003cz\u0026n\u003e","status":"on-the-phone","previous":"do-not-disturb","at":"2026-11-24T05:25:57.123456789Z","cause":"endpoint"}`},
	{"U+2028, U+2029 and control escapes", `{"v":1,"contact":"a","name":"\u2028\u2029\ufffd\t\n\r\b\f\u0000\u001f\"\\/","previous":"online","seq":1,"at":"2026-11-24T05:25:57Z"}`},
	{"U+2028 and U+2029 unescaped", "{\"v\":1,\"contact\":\"a\",\"name\":\"\u2028\u2029\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}"},
	// Spellings the fast path reads.
	{"spaces and another order", "{ \"cause\":\"user\",\n\t\"at\":\"2026-11-24T05:25:57.123456789Z\", \"previous\":\"online\", \"status\":\"away\", \"name\":\"Alice\", \"contact\":\"sip:alice@contoso.com\", \"v\":1 }\n"},
	{"status number and constant", `{"v":1,"contact":"a","status":34,"previous":"MISTATUS_ONLINE","at":"2026-11-24T05:25:57Z"}`},
	{"status hex and decimal strings", `{"v":1,"contact":"a","status":"0x0022","previous":"2","at":"2026-11-24T05:25:57Z"}`},
	{"status with spaces and capitals", `{"v":1,"contact":"a","status":" AWAY ","previous":"Online","at":"2026-11-24T05:25:57Z"}`},
	{"status mixed case", `{"v":1,"contact":"a","status":"be-right-bacK","at":"2026-11-24T05:25:57Z"}`},
	{"status with Kelvin sign", `{"v":1,"contact":"a","status":"be-right-bac\u212a","at":"2026-11-24T05:25:57Z"}`},
	{"longest constant with Kelvin sign", `{"v":1,"contact":"a","status":"mistatus_local_synchronizing_with_serveK","at":"2026-11-24T05:25:57Z"}`},
	{"escaped values", `{"v":1,"contact":"sip:alice@contoso\u002ecom","name":"\u0041lice","status":"\u0061way","previous":"online","at":"2026-11-24T05:25:57Z","cause":"\u0075ser"}`},
	{"surrogates paired and lone", `{"v":1,"contact":"a\ud83d\ude00","name":"\ud83d","status":"away","at":"2026-11-24T05:25:57Z","request_id":"\udc00\ud800x"}`},
	{"lone surrogate before an escape", `{"v":1,"contact":"a","name":"\ud83d\u0041","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"escaped time", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57\u005a"}`},
	{"nested unknown fields", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","device":{"id":"phone-1","tags":["a",1,-2.5e+3,true,false,null,{}],"n":[]},"note":"x"}`},
	{"other cause and the other record's field", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","cause":"screensaver","seq":7}`},
	{"empty key", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","":1}`},
	{"v minus zero", `{"v":-0,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"v negative", `{"v":-5,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"v 18 digits", `{"v":123456789012345678,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"status numbers unknown and past MISTATUS", `{"v":1,"contact":"a","status":0,"previous":65535,"at":"2026-11-24T05:25:57Z"}`},
	{"status numbers local", `{"v":1,"contact":"a","status":1024,"previous":256,"at":"2026-11-24T05:25:57Z"}`},
	{"seq largest", `{"v":1,"contact":"a","previous":"online","seq":18446744073709551615,"at":"2026-11-24T05:25:57Z"}`},
	{"seq 19 digits", `{"v":1,"contact":"a","previous":"online","seq":1844674407370955161,"at":"2026-11-24T05:25:57Z"}`},
	// Spellings left to encoding/json.
	{"keys in capitals", `{"V":1,"CONTACT":"a","Status":"away","AT":"2026-11-24T05:25:57Z","Seq":1,"Previous":"online"}`},
	{"key again in another case", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","Contact":"b"}`},
	{"key twice", `{"v":1,"contact":"a","contact":"b","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"status twice", `{"v":1,"contact":"a","status":"away","status":"online","at":"2026-11-24T05:25:57Z"}`},
	{"status twice, first bad", `{"v":1,"contact":"a","status":"lunch","status":"online","at":"2026-11-24T05:25:57Z"}`},
	{"null strings", `{"v":1,"contact":"a","name":null,"status":"away","at":"2026-11-24T05:25:57Z","cause":null,"request_id":null}`},
	{"null status", `{"v":1,"contact":"a","status":"away","previous":null,"at":"2026-11-24T05:25:57Z"}`},
	{"null numbers and time", `{"v":null,"contact":"a","status":"away","at":null,"seq":null}`},
	{"keys folded with Unicode", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","ſtatus":"online","requeſt_id":"x","\u0073eq":2}`},
	{"keys near request_id", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","request-id":"x","requestid":"y","REQUEST_ID":"z"}`},
	{"arrays deeper than the fast path follows", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`},
	{"objects deeper than the fast path follows", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","x":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}`},
	{"v fraction", `{"v":1.0,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"v exponent", `{"v":1e0,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"v string", `{"v":"1","contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"v leading zero", `{"v":01,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"v past int64", `{"v":99999999999999999999,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"contact number, name bool", `{"v":1,"contact":42,"name":true,"status":"away","at":"2026-11-24T05:25:57Z"}`},
	{"status fraction, previous negative", `{"v":1,"contact":"a","status":34.0,"previous":-2,"at":"2026-11-24T05:25:57Z"}`},
	{"status exponent", `{"v":1,"contact":"a","status":1e1,"at":"2026-11-24T05:25:57Z"}`},
	{"status past uint16", `{"v":1,"contact":"a","status":65570,"at":"2026-11-24T05:25:57Z"}`},
	{"status array", `{"v":1,"contact":"a","status":["away"],"at":"2026-11-24T05:25:57Z"}`},
	{"status object", `{"v":1,"contact":"a","status":{"name":"away"},"at":"2026-11-24T05:25:57Z"}`},
	{"time number", `{"v":1,"contact":"a","status":"away","at":1764000000}`},
	{"seq past uint64", `{"v":1,"contact":"a","previous":"online","seq":18446744073709551616,"at":"2026-11-24T05:25:57Z"}`},
	{"seq negative", `{"v":1,"contact":"a","previous":"online","seq":-1,"at":"2026-11-24T05:25:57Z"}`},
	{"seq fraction", `{"v":1,"contact":"a","previous":"online","seq":1.0,"at":"2026-11-24T05:25:57Z"}`},
	{"seq string", `{"v":1,"contact":"a","previous":"online","seq":"1","at":"2026-11-24T05:25:57Z"}`},
	// Times.
	{"time 13 fraction digits", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.1234567891234Z"}`},
	{"time zero fraction", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.000000000Z"}`},
	{"time comma fraction", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57,5Z"}`},
	{"time empty fraction", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.Z"}`},
	{"time lowercase", `{"v":1,"contact":"a","status":"away","at":"2026-11-24t05:25:57z"}`},
	{"time February 29 of a common year", `{"v":1,"contact":"a","status":"away","at":"2026-02-29T00:00:00Z"}`},
	{"time February 29 of a leap year", `{"v":1,"contact":"a","status":"away","at":"2024-02-29T00:00:00Z"}`},
	{"time February 29 of 2100", `{"v":1,"contact":"a","status":"away","at":"2100-02-29T00:00:00Z"}`},
	{"time February 29 of 2000", `{"v":1,"contact":"a","status":"away","at":"2000-02-29T00:00:00Z"}`},
	{"time April 31", `{"v":1,"contact":"a","status":"away","at":"2026-04-31T00:00:00Z"}`},
	{"time second 60", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:60Z"}`},
	{"time hour 24", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T24:00:00Z"}`},
	{"time offset +23:59", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57+23:59"}`},
	{"time offset -23:59", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57-23:59"}`},
	{"time offset +24:00", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57+24:00"}`},
	{"time offset without colon", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57+0100"}`},
	{"time offset -00:00", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.5-00:00"}`},
	{"time signed year", `{"v":1,"contact":"a","status":"away","at":"+026-11-24T05:25:57Z"}`},
	{"time last of 9999", `{"v":1,"contact":"a","status":"away","at":"9999-12-31T23:59:59.999999999Z"}`},
	{"time first of 0000", `{"v":1,"contact":"a","status":"away","at":"0000-01-01T00:00:00Z"}`},
	{"time before 0000 in UTC", `{"v":1,"contact":"a","status":"away","at":"0000-01-01T00:00:00+00:01"}`},
	{"time after 9999 in UTC", `{"v":1,"contact":"a","status":"away","at":"9999-12-31T23:59:59-00:01"}`},
	{"time year 10000", `{"v":1,"contact":"a","status":"away","at":"10000-01-01T00:00:00Z"}`},
	// Not records.
	{"empty", ``}, {"space", ` `}, {"open brace", `{`}, {"close brace", `}`}, {"array", `[]`}, {"empty object", `{}`},
	{"null", `null`}, {"string", `"a"`}, {"number", `1`}, {"trailing comma", `{"v":1,}`}, {"lone comma", `{,}`},
	{"two objects", `{"v":1}{}`}, {"trailing text", `{"v":1} x`}, {"cut true", `{"a":tru}`}, {"cut null", `{"a":nul}`},
	{"bad escape", `{"a":"\x"}`}, {"cut unicode escape", `{"a":"\u12"}`}, {"raw control character", `{"a":"` + "\x01" + `"}`},
	{"leading zero", `{"a":01}`}, {"lone minus", `{"a":-}`}, {"empty fraction", `{"a":1.}`}, {"empty exponent", `{"a":1e}`},
	{"no integer part", `{"a":.5}`}, {"array trailing comma", `{"a":[1,]}`}, {"array without comma", `{"a":[1 2]}`},
	{"object without value", `{"a":{"b"}}`}, {"object trailing comma", `{"a":{"b":1,}}`}, {"no colon", `{"a" 1}`},
	{"unquoted key", `{a:1}`},
	{"trailing NUL", `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"` + "\x00"},
	{"invalid UTF-8 in an unknown field", "{\"v\":1,\"contact\":\"a\",\"note\":\"\xc3\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}"},
	{"invalid UTF-8 in contact", "{\"v\":1,\"contact\":\"a\xff\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}"},
	{"byte order mark", "\ufeff{\"v\":1,\"contact\":\"a\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}"},
	{"trailing no-break space", "{\"v\":1,\"contact\":\"a\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}\u00a0"},
}

func addRecordSeeds(f *testing.F) {
	for _, tc := range recordCases {
		f.Add([]byte(tc.data))
	}
	addCorpus(f, "FuzzDecodeEvent", "FuzzDecodeChange")
}

// checkDecode checks that DecodeEvent and DecodeChange read data as the
// encoding/json path does.
func checkDecode(t *testing.T, data []byte) {
	t.Helper()
	gotE, err := events.DecodeEvent(data)
	wantE, wantErr := events.DecodeEventJSON(data)
	if d := diffErr(err, wantErr); d != "" {
		t.Fatalf("DecodeEvent(%q): %s", data, d)
	}
	if gotE != wantE {
		t.Fatalf("DecodeEvent(%q) = %#v, encoding/json's %#v", data, gotE, wantE)
	}
	gotC, err := events.DecodeChange(data)
	wantC, wantErr := events.DecodeChangeJSON(data)
	if d := diffErr(err, wantErr); d != "" {
		t.Fatalf("DecodeChange(%q): %s", data, d)
	}
	if gotC != wantC {
		t.Fatalf("DecodeChange(%q) = %#v, encoding/json's %#v", data, gotC, wantC)
	}
}

func TestDecodeMatchesJSON(t *testing.T) {
	for _, tc := range recordCases {
		t.Run(tc.name, func(t *testing.T) { checkDecode(t, []byte(tc.data)) })
	}
}

func FuzzDecodeEventMatchesJSON(f *testing.F) {
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := events.DecodeEvent(data)
		want, wantErr := events.DecodeEventJSON(data)
		if d := diffErr(err, wantErr); d != "" {
			t.Fatalf("DecodeEvent(%q): %s", data, d)
		}
		if got != want {
			t.Fatalf("DecodeEvent(%q) = %#v, encoding/json's %#v", data, got, want)
		}
	})
}

func FuzzDecodeChangeMatchesJSON(f *testing.F) {
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := events.DecodeChange(data)
		want, wantErr := events.DecodeChangeJSON(data)
		if d := diffErr(err, wantErr); d != "" {
			t.Fatalf("DecodeChange(%q): %s", data, d)
		}
		if got != want {
			t.Fatalf("DecodeChange(%q) = %#v, encoding/json's %#v", data, got, want)
		}
	})
}

// encodeEvent returns e.Encode(), or what it panicked with.
func encodeEvent(e events.Event) (b []byte, panicked any) {
	defer func() { panicked = recover() }()
	return e.Encode(), nil
}

func encodeChange(c events.Change) (b []byte, panicked any) {
	defer func() { panicked = recover() }()
	return c.Encode(), nil
}

// checkEncodeEvent checks that Encode and AppendJSON write what json.Marshal
// writes of the event's JSON form, or panic with what json.Marshal says of it.
func checkEncodeEvent(t *testing.T, e events.Event) {
	t.Helper()
	got, panicked := encodeEvent(e)
	want, err := events.EncodeEventJSON(e)
	if err != nil {
		wantPanic := fmt.Sprintf("events: encode event of %q: %v", e.Contact, err)
		if panicked != wantPanic {
			t.Fatalf("%#v.Encode() = %s, panic %v; want panic %q", e, got, panicked, wantPanic)
		}
		return
	}
	if panicked != nil {
		t.Fatalf("%#v.Encode() panicked: %v", e, panicked)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%#v.Encode() =\n%s\njson.Marshal\n%s", e, got, want)
	}
	prefix := []byte("prefix ")
	if appended := e.AppendJSON(prefix); string(appended) != string(prefix)+string(want) {
		t.Fatalf("%#v.AppendJSON(%q) = %q, want %q", e, prefix, appended, string(prefix)+string(want))
	}
}

func checkEncodeChange(t *testing.T, c events.Change) {
	t.Helper()
	got, panicked := encodeChange(c)
	want, err := events.EncodeChangeJSON(c)
	if err != nil {
		wantPanic := fmt.Sprintf("events: encode change of %q: %v", c.Contact, err)
		if panicked != wantPanic {
			t.Fatalf("%#v.Encode() = %s, panic %v; want panic %q", c, got, panicked, wantPanic)
		}
		return
	}
	if panicked != nil {
		t.Fatalf("%#v.Encode() panicked: %v", c, panicked)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%#v.Encode() =\n%s\njson.Marshal\n%s", c, got, want)
	}
	prefix := []byte("prefix ")
	if appended := c.AppendJSON(prefix); string(appended) != string(prefix)+string(want) {
		t.Fatalf("%#v.AppendJSON(%q) = %q, want %q", c, prefix, appended, string(prefix)+string(want))
	}
}

// stringPieces are what random strings are made of: everything encoding/json
// writes in a way of its own.
var stringPieces = []string{
	"a", "Z", "0", " ", "sip:", "@", ".", "-", "<", ">", "&", `"`, `\`, "/", "'", "\x00", "\x01", "\x1f", "\x7f",
	"\b", "\f", "\n", "\r", "\t", "é", "李", "😀", "\u2027", "\u2028", "\u2029", "\u202a", "\ufeff", "\ufffd",
	"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\u0085", "\u00a0",
}

func randomString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(12) {
		b.WriteString(stringPieces[r.IntN(len(stringPieces))])
	}
	return b.String()
}

func randomStatus(r *rand.Rand) events.Status {
	if r.IntN(50) == 0 {
		return events.Status(r.UintN(1 << 16)) // most likely not a MISTATUS value
	}
	all := events.Statuses()
	return all[r.IntN(len(all))]
}

func randomTime(r *rand.Rand) time.Time {
	var sec int64
	switch r.IntN(4) {
	case 0:
		sec = r.Int64N(1<<40) - 1<<39 // years far outside 0000-9999 too
	case 1:
		sec = 0
	default:
		sec = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + r.Int64N(1<<26)
	}
	nsec := r.Int64N(1e9)
	if r.IntN(3) == 0 {
		nsec = nsec / 1e6 * 1e6
	}
	zone := time.UTC
	if r.IntN(2) == 0 {
		zone = time.FixedZone("", (r.IntN(48*60)-24*60)*60)
	}
	return time.Unix(sec, nsec).In(zone)
}

func TestEncodeMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		e := events.Event{
			Contact: randomString(r), Name: randomString(r), Status: randomStatus(r), Previous: randomStatus(r),
			At: randomTime(r), Cause: events.Cause(randomString(r)), RequestID: randomString(r),
		}
		if r.IntN(4) == 0 {
			e.Name, e.RequestID = "", ""
		}
		checkEncodeEvent(t, e)
		checkEncodeChange(t, events.Change{Contact: e.Contact, Name: e.Name, Previous: e.Previous, At: e.At})
	}
	checkEncodeEvent(t, events.Event{})
	checkEncodeChange(t, events.Change{})
	checkEncodeEvent(t, benchEvent)
	checkEncodeChange(t, benchChange)
}

func FuzzEncodeEventMatchesJSON(f *testing.F) {
	f.Add("sip:alice@contoso.com", "Alice", "user", "", uint16(events.Away), uint16(events.Online), int64(1795500357), uint32(123456789), int16(0))
	f.Add("a<b>&c", "\u2028\xff\x00", "\x7f", "r\"\\", uint16(events.Invisible), uint16(0x9999), int64(-1<<40), uint32(1), int16(-90))
	f.Add("", "", "", "", uint16(0), uint16(0), int64(0), uint32(0), int16(0))
	f.Fuzz(func(t *testing.T, contact, name, cause, requestID string, status, previous uint16, sec int64, nsec uint32, offsetMinutes int16) {
		at := time.Unix(sec, int64(nsec%1e9)).In(time.FixedZone("", int(offsetMinutes)*60))
		checkEncodeEvent(t, events.Event{Contact: contact, Name: name, Status: events.Status(status),
			Previous: events.Status(previous), At: at, Cause: events.Cause(cause), RequestID: requestID})
	})
}

func FuzzEncodeChangeMatchesJSON(f *testing.F) {
	f.Add("sip:alice@contoso.com", "Alice", uint16(events.Online), int64(1795500357), uint32(123456789), int16(0))
	f.Add("a<b>&c", "\u2029\xc3", uint16(0x0400), int64(1<<40), uint32(999999999), int16(330))
	f.Fuzz(func(t *testing.T, contact, name string, previous uint16, sec int64, nsec uint32, offsetMinutes int16) {
		at := time.Unix(sec, int64(nsec%1e9)).In(time.FixedZone("", int(offsetMinutes)*60))
		checkEncodeChange(t, events.Change{Contact: contact, Name: name, Previous: events.Status(previous), At: at})
	})
}

// TestDecodeRandomRecordsMatchJSON decodes records written from random events,
// and the same records with random bytes changed.
func TestDecodeRandomRecordsMatchJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		e := events.Event{
			Contact: randomString(r), Name: randomString(r), Status: randomStatus(r), Previous: randomStatus(r),
			At: randomTime(r), Cause: events.Cause(randomString(r)), RequestID: randomString(r),
		}
		if r.IntN(2) == 0 {
			e.Contact, e.Cause = "sip:alice@contoso.com", events.CauseUser
		}
		data, err := events.EncodeEventJSON(e)
		if err != nil {
			continue
		}
		change, _ := events.EncodeChangeJSON(events.Change{Contact: e.Contact, Name: e.Name, Previous: e.Previous, At: e.At})
		for _, record := range [][]byte{data, change, mutate(r, data), mutate(r, change)} {
			checkDecode(t, record)
		}
	}
}

// mutate returns a copy of data with a few bytes changed, removed or added.
func mutate(r *rand.Rand, data []byte) []byte {
	const interesting = `{}[]",:\ 0123456789-+.eEtrufalsn` + "\x00\x7f\xff"
	out := bytes.Clone(data)
	for range 1 + r.IntN(3) {
		if len(out) == 0 {
			break
		}
		i := r.IntN(len(out))
		c := interesting[r.IntN(len(interesting))]
		switch r.IntN(3) {
		case 0:
			out[i] = c
		case 1:
			out = append(out[:i], out[i+1:]...)
		default:
			out = append(out[:i], append([]byte{c}, out[i:]...)...)
		}
	}
	return out
}
