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

// The differential tests hold the hand-written codec to the reference codec of
// reference_test.go: the same bytes out, the same values in, the same errors.

// sentinels are the errors callers branch on.
var sentinels = []error{
	events.ErrUnknownStatus, events.ErrNotSettable, events.ErrInvalidCause, events.ErrInvalidContact,
	events.ErrInvalidToken, events.ErrInvalidName, events.ErrMalformed, events.ErrUnsupportedVersion,
}

// diffErr says how err differs from the reference's want, or "".
func diffErr(err, want error) string {
	switch {
	case err == nil && want == nil:
		return ""
	case err == nil:
		return fmt.Sprintf("error = nil, reference error = %v", want)
	case want == nil:
		return fmt.Sprintf("error = %v, reference error = nil", err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) != errors.Is(want, s) {
			return fmt.Sprintf("errors.Is(%v) = %v for error %q, reference %q", s, errors.Is(err, s), err, want)
		}
	}
	if err.Error() != refTypeNames.Replace(want.Error()) {
		return fmt.Sprintf("error = %q, reference error = %q", err, want)
	}
	return ""
}

// refTypeNames renames the reference's types, which encoding/json's errors
// name, to the package's.
var refTypeNames = strings.NewReplacer(
	"events_test.refEventJSON", "events.eventJSON", "refEventJSON", "eventJSON",
	"events_test.refChangeJSON", "events.changeJSON", "refChangeJSON", "changeJSON",
	"events_test.refStatus", "events.Status",
)

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

// recordSeeds are records of both kinds, typical and not: exactly spelled and
// otherwise, for the fast path and for what it leaves to encoding/json.
var recordSeeds = []string{
	// What the writer and the feed write.
	string(aliceAway.Encode()),
	string(benchEvent.Encode()),
	string(benchChange.Encode()),
	`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","seq":42,"at":"2026-11-24T05:25:57.123456789Z"}`,
	`{"v":1,"contact":"sip:zoë@bücher.example","name":"Zoë Núñez \u003cz\u0026n\u003e","status":"on-the-phone","previous":"do-not-disturb","at":"2026-11-24T05:25:57.123456789Z","cause":"endpoint"}`,
	`{"v":1,"contact":"a","name":"\u2028\u2029\ufffd\t\n\r\b\f\u0000\u001f\"\\/","previous":"online","seq":1,"at":"2026-11-24T05:25:57Z"}`,
	// Spellings the fast path reads.
	"{ \"cause\":\"user\",\n\t\"at\":\"2026-11-24T05:25:57.123456789Z\", \"previous\":\"online\", \"status\":\"away\", \"name\":\"Alice\", \"contact\":\"sip:alice@contoso.com\", \"v\":1 }\n",
	`{"v":1,"contact":"a","status":34,"previous":"MISTATUS_ONLINE","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"0x0022","previous":"2","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":" AWAY ","previous":"Online","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"be-right-bacK","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"be-right-bac\u212a","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"mistatus_local_synchronizing_with_serveK","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"sip:alice@contoso\u002ecom","name":"\u0041lice","status":"\u0061way","previous":"online","at":"2026-11-24T05:25:57Z","cause":"\u0075ser"}`,
	`{"v":1,"contact":"a\ud83d\ude00","name":"\ud83d","status":"away","at":"2026-11-24T05:25:57Z","request_id":"\udc00\ud800x"}`,
	`{"v":1,"contact":"a","name":"\ud83d\u0041","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57\u005a"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","endpoint":{"id":"phone-1","tags":["a",1,-2.5e+3,true,false,null,{}],"n":[]},"note":"x"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","cause":"screensaver","seq":7}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","":1}`,
	`{"v":-0,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":-5,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":123456789012345678,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":0,"previous":65535,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":1024,"previous":256,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","previous":"online","seq":18446744073709551615,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","previous":"online","seq":1844674407370955161,"at":"2026-11-24T05:25:57Z"}`,
	// Spellings left to encoding/json.
	`{"V":1,"CONTACT":"a","Status":"away","AT":"2026-11-24T05:25:57Z","Seq":1,"Previous":"online"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","Contact":"b"}`,
	`{"v":1,"contact":"a","contact":"b","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"away","status":"online","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"lunch","status":"online","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","name":null,"status":"away","at":"2026-11-24T05:25:57Z","cause":null,"request_id":null}`,
	`{"v":1,"contact":"a","status":"away","previous":null,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":null,"contact":"a","status":"away","at":null,"seq":null}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","ſtatus":"online","requeſt_id":"x","\u0073eq":2}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","request-id":"x","requestid":"y","REQUEST_ID":"z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z","x":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}`,
	`{"v":1.0,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1e0,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":"1","contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":01,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":99999999999999999999,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":42,"name":true,"status":"away","at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":34.0,"previous":-2,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":1e1,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":65570,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":["away"],"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"away","at":1764000000}`,
	`{"v":1,"contact":"a","previous":"online","seq":18446744073709551616,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","previous":"online","seq":-1,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","previous":"online","seq":1.0,"at":"2026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","previous":"online","seq":"1","at":"2026-11-24T05:25:57Z"}`,
	// Times.
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.1234567891234Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.000000000Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57,5Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24t05:25:57z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-02-29T00:00:00Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2024-02-29T00:00:00Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2100-02-29T00:00:00Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2000-02-29T00:00:00Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-04-31T00:00:00Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:60Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T24:00:00Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57+23:59"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57-23:59"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57+24:00"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57+0100"}`,
	`{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57.5-00:00"}`,
	`{"v":1,"contact":"a","status":"away","at":"+026-11-24T05:25:57Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"9999-12-31T23:59:59.999999999Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"0000-01-01T00:00:00Z"}`,
	`{"v":1,"contact":"a","status":"away","at":"0000-01-01T00:00:00+00:01"}`,
	`{"v":1,"contact":"a","status":"away","at":"9999-12-31T23:59:59-00:01"}`,
	`{"v":1,"contact":"a","status":"away","at":"10000-01-01T00:00:00Z"}`,
	// Not records.
	``, ` `, `{`, `}`, `[]`, `{}`, `null`, `"a"`, `1`, `{"v":1,}`, `{,}`, `{"v":1}{}`, `{"v":1} x`,
	`{"a":tru}`, `{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"` + "\x01" + `"}`, `{"a":01}`, `{"a":-}`,
	`{"a":1.}`, `{"a":1e}`, `{"a":.5}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{"a":{"b"}}`, `{"a":{"b":1,}}`,
	`{"a" 1}`, `{a:1}`, `{"v":1,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"` + "\x00",
	"{\"v\":1,\"contact\":\"a\",\"note\":\"\xc3\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}",
	"\ufeff{\"v\":1,\"contact\":\"a\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}",
	"{\"v\":1,\"contact\":\"a\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}\u00a0",
}

func addRecordSeeds(f *testing.F) {
	for _, s := range recordSeeds {
		f.Add([]byte(s))
	}
	addCorpus(f, "FuzzDecodeEvent", "FuzzDecodeChange")
}

func FuzzDecodeEventDifferential(f *testing.F) {
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := events.DecodeEvent(data)
		want, wantErr := refDecodeEvent(data)
		if d := diffErr(err, wantErr); d != "" {
			t.Fatalf("DecodeEvent(%q): %s", data, d)
		}
		if got != want {
			t.Fatalf("DecodeEvent(%q) = %#v, reference %#v", data, got, want)
		}
	})
}

func FuzzDecodeChangeDifferential(f *testing.F) {
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := events.DecodeChange(data)
		want, wantErr := refDecodeChange(data)
		if d := diffErr(err, wantErr); d != "" {
			t.Fatalf("DecodeChange(%q): %s", data, d)
		}
		if got != want {
			t.Fatalf("DecodeChange(%q) = %#v, reference %#v", data, got, want)
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

// checkEncodeEvent checks that Encode and AppendJSON write what the reference
// writes, or panic as the encoder always has.
func checkEncodeEvent(t *testing.T, e events.Event) {
	t.Helper()
	got, panicked := encodeEvent(e)
	want, err := refEncodeEvent(e)
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
		t.Fatalf("%#v.Encode() =\n%s\nreference\n%s", e, got, want)
	}
	prefix := []byte("prefix ")
	if appended := e.AppendJSON(prefix); string(appended) != string(prefix)+string(want) {
		t.Fatalf("%#v.AppendJSON(%q) = %q, want %q", e, prefix, appended, string(prefix)+string(want))
	}
}

func checkEncodeChange(t *testing.T, c events.Change) {
	t.Helper()
	got, panicked := encodeChange(c)
	want, err := refEncodeChange(c)
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
		t.Fatalf("%#v.Encode() =\n%s\nreference\n%s", c, got, want)
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

func TestEncodeMatchesReference(t *testing.T) {
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
		checkEncodeChange(t, events.Change{Contact: e.Contact, Name: e.Name, Previous: e.Previous,
			Seq: r.Uint64() >> r.UintN(64), At: e.At})
	}
	checkEncodeEvent(t, events.Event{})
	checkEncodeChange(t, events.Change{})
	checkEncodeEvent(t, benchEvent)
	checkEncodeChange(t, benchChange)
}

func FuzzEncodeEventDifferential(f *testing.F) {
	f.Add("sip:alice@contoso.com", "Alice", "user", "", uint16(events.Away), uint16(events.Online), int64(1795500357), uint32(123456789), int16(0))
	f.Add("a<b>&c", "\u2028\xff\x00", "\x7f", "r\"\\", uint16(events.Invisible), uint16(0x9999), int64(-1<<40), uint32(1), int16(-90))
	f.Add("", "", "", "", uint16(0), uint16(0), int64(0), uint32(0), int16(0))
	f.Fuzz(func(t *testing.T, contact, name, cause, requestID string, status, previous uint16, sec int64, nsec uint32, offsetMinutes int16) {
		at := time.Unix(sec, int64(nsec%1e9)).In(time.FixedZone("", int(offsetMinutes)*60))
		checkEncodeEvent(t, events.Event{Contact: contact, Name: name, Status: events.Status(status),
			Previous: events.Status(previous), At: at, Cause: events.Cause(cause), RequestID: requestID})
	})
}

func FuzzEncodeChangeDifferential(f *testing.F) {
	f.Add("sip:alice@contoso.com", "Alice", uint16(events.Online), uint64(42), int64(1795500357), uint32(123456789), int16(0))
	f.Add("a<b>&c", "\u2029\xc3", uint16(0x0400), uint64(1<<64-1), int64(1<<40), uint32(999999999), int16(330))
	f.Fuzz(func(t *testing.T, contact, name string, previous uint16, seq uint64, sec int64, nsec uint32, offsetMinutes int16) {
		at := time.Unix(sec, int64(nsec%1e9)).In(time.FixedZone("", int(offsetMinutes)*60))
		checkEncodeChange(t, events.Change{Contact: contact, Name: name, Previous: events.Status(previous), Seq: seq, At: at})
	})
}

// TestDecodeRandomRecordsMatchReference decodes records written from random
// events, and the same records with random bytes changed.
func TestDecodeRandomRecordsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		e := events.Event{
			Contact: randomString(r), Name: randomString(r), Status: randomStatus(r), Previous: randomStatus(r),
			At: randomTime(r), Cause: events.Cause(randomString(r)), RequestID: randomString(r),
		}
		if r.IntN(2) == 0 {
			e.Contact, e.Cause = "sip:alice@contoso.com", events.CauseUser
		}
		data, err := refEncodeEvent(e)
		if err != nil {
			continue
		}
		change, _ := refEncodeChange(events.Change{Contact: e.Contact, Name: e.Name, Previous: e.Previous, Seq: r.Uint64N(1000), At: e.At})
		for _, record := range [][]byte{data, change, mutate(r, data), mutate(r, change)} {
			gotE, err := events.DecodeEvent(record)
			wantE, wantErr := refDecodeEvent(record)
			if d := diffErr(err, wantErr); d != "" || gotE != wantE {
				t.Fatalf("DecodeEvent(%q) = %#v, %v; reference %#v, %v", record, gotE, err, wantE, wantErr)
			}
			gotC, err := events.DecodeChange(record)
			wantC, wantErr := refDecodeChange(record)
			if d := diffErr(err, wantErr); d != "" || gotC != wantC {
				t.Fatalf("DecodeChange(%q) = %#v, %v; reference %#v, %v", record, gotC, err, wantC, wantErr)
			}
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

func TestStatusOfEveryValue(t *testing.T) {
	names := make(map[events.Status]string)
	for _, s := range events.Statuses() {
		names[s] = s.String()
	}
	for v := range 1 << 16 {
		s := events.Status(v)
		name, valid := names[s]
		if !valid {
			name = fmt.Sprintf("0x%04X", v)
		}
		if s.Valid() != valid || s.String() != name {
			t.Errorf("Status(0x%04X): Valid() = %v, String() = %q; want %v, %q", v, s.Valid(), s.String(), valid, name)
		}
	}
}

func FuzzParseStatusDifferential(f *testing.F) {
	for _, s := range []string{
		"away", "AWAY", " Away\t", "MISTATUS_BE_RIGHT_BACK", "mistatus_idle", "34", "0x22", "0X0022", "0x", "0x9999",
		"-1", "1e2", "65570", "", "be-right-bac\u212a", "mistatus_local_synchronizing_with_serve\u212a",
		"MISTATUS_LOCAL_SYNCHRONIZING_WITH_SERVER", "MISTATUS_LOCAL_SYNCHRONIZING_WITH_SERVERS", "ſ", "３４",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, err := events.ParseStatus(text)
		want, wantErr := refParseStatus(text)
		if d := diffErr(err, wantErr); d != "" || got != want {
			t.Fatalf("ParseStatus(%q) = %v, %v; reference %v, %v", text, got, err, want, wantErr)
		}
	})
}

// FuzzParseTokenDifferential checks ParseToken, and Token, against the reference.
func FuzzParseTokenDifferential(f *testing.F) {
	for _, s := range []string{
		"sip:alice@contoso%2Ecom", "sip:alice@contoso%2ecom", "alice", "%41", "%", "a%2", "a%G0", "a.b",
		"zo%C3%AB", "%FF", "%20", "%7F", "%09", "100%25", strings.Repeat("%2E", 256), strings.Repeat("%2E", 257), "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		got, err := events.ParseToken(token)
		want, wantErr := refParseToken(token)
		if d := diffErr(err, wantErr); d != "" || got != want {
			t.Fatalf("ParseToken(%q) = %q, %v; reference %q, %v", token, got, err, want, wantErr)
		}
		// And any string, as a contact ID, has the reference's token.
		if got, want := events.Token(token), refToken(token); got != want {
			t.Fatalf("Token(%q) = %q, reference %q", token, got, want)
		}
	})
}

// TestValidatorsMatchReference checks the validators' fast path for ASCII
// against the reference, byte by byte.
func TestValidatorsMatchReference(t *testing.T) {
	for c := range 256 {
		for _, s := range []string{string(rune(c)), "a" + string(byte(c)) + "b", string(byte(c)) + "\xff"} {
			if d := diffErr(events.ValidateContact(s), refValidateContact(s)); d != "" {
				t.Errorf("ValidateContact(%q): %s", s, d)
			}
			if d := diffErr(events.ValidateName(s), refValidateName(s)); d != "" {
				t.Errorf("ValidateName(%q): %s", s, d)
			}
			if d := diffErr(events.ValidateRequestID(s), refValidateRequestID(s)); d != "" {
				t.Errorf("ValidateRequestID(%q): %s", s, d)
			}
		}
	}
}
