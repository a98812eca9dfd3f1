package events_test

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// The seed corpora below are joined by the files under testdata/fuzz/<FuzzName>/.

func FuzzDecodeEvent(f *testing.F) {
	seeds := []string{
		`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","status":"away","previous":"online","at":"2026-11-24T05:25:57.123456789Z","cause":"user"}`,
		`{"v":1,"contact":"a","status":"online","at":"2026-11-24T05:25:57Z","cause":"user","request_id":"r-1"}`,
		`{"v":1,"contact":"a","status":18,"previous":"0x0022","at":"2026-11-24T06:25:57+01:00","cause":"endpoint"}`,
		`{"v":1,"contact":"a","status":"MISTATUS_INVISIBLE","previous":"offline","at":"2026-11-24T05:25:57.1Z","note":{"x":[1]}}`,
		`{"v":2,"contact":"a","status":"away","at":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"a","status":"away","previous":"away","at":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"a","status":"idle","at":"2026-11-24T05:25:57Z","cause":"user"}`,
		`{"v":1,"contact":"a","status":256,"at":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"a","status":"away","at":"0000-01-01T00:00:00+01:00"}`,
		`{"v":1,"contact":"a","status":"away","at":"9999-12-31T23:59:59-01:00"}`,
		`{"v":1,"contact":"a b","status":"away","at":"2026-11-24T05:25:57Z"}`,
		`{"V":1,"CONTACT":"a","Status":"away","AT":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"a","status":null,"at":"2026-11-24T05:25:57Z"}`,
		`{"v":1} {}`,
		"{\"v\":1,\"contact\":\"a\xff\",\"status\":\"away\",\"at\":\"2026-11-24T05:25:57Z\"}",
		``,
		`null`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := events.DecodeEvent(data)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) && !errors.Is(err, events.ErrUnsupportedVersion) {
				t.Fatalf("DecodeEvent(%q) error = %v, want it to wrap ErrMalformed or ErrUnsupportedVersion", data, err)
			}
			if e != (events.Event{}) {
				t.Fatalf("DecodeEvent(%q) = %+v with an error, want the zero Event", data, e)
			}
			return
		}
		// What is accepted obeys the rules of the log.
		if err := events.ValidateContact(e.Contact); err != nil {
			t.Fatalf("DecodeEvent(%q) accepted contact %q: %v", data, e.Contact, err)
		}
		if !e.Status.Valid() || e.Status.Local() || e.Status == events.Unknown {
			t.Fatalf("DecodeEvent(%q) accepted status %v", data, e.Status)
		}
		if !e.Previous.Valid() || e.Previous.Local() {
			t.Fatalf("DecodeEvent(%q) accepted previous %v", data, e.Previous)
		}
		if e.Previous == e.Status {
			t.Fatalf("DecodeEvent(%q) accepted an event that changes nothing (%v)", data, e.Status)
		}
		if e.At.Location() != time.UTC {
			t.Fatalf("DecodeEvent(%q).At is in %v, want UTC", data, e.At.Location())
		}
		// And it survives a round trip unchanged.
		enc := e.Encode()
		again, err := events.DecodeEvent(enc)
		if err != nil {
			t.Fatalf("DecodeEvent(%q) = %+v, but its encoding %s does not decode: %v", data, e, enc, err)
		}
		if d := diffEvent(again, e); d != "" {
			t.Fatalf("DecodeEvent(%q) then Encode then DecodeEvent: %s", data, d)
		}
		if enc2 := again.Encode(); string(enc2) != string(enc) {
			t.Fatalf("encoding is not stable: %s then %s", enc, enc2)
		}
		// The feed entry it makes, if any, decodes too.
		if c, ok := events.ChangeOf(e); ok {
			if _, err := events.DecodeChange(c.Encode()); err != nil {
				t.Fatalf("ChangeOf(DecodeEvent(%q)).Encode() = %s does not decode: %v", data, c.Encode(), err)
			}
		}
	})
}

func FuzzDecodeChange(f *testing.F) {
	seeds := []string{
		`{"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","at":"2026-11-24T05:25:57.123456789Z"}`,
		`{"v":2,"contact":"a","previous":"online","seq":7,"at":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","seq":42,"at":"2026-11-24T05:25:57.123456789Z"}`,
		`{"v":1,"contact":"a","previous":"unknown","seq":1,"at":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"a","previous":34,"seq":18446744073709551615,"at":"2026-11-24T05:25:57-07:00","extra":true}`,
		`{"v":1,"contact":"a","previous":"invisible","seq":1,"at":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"a","previous":"online","seq":0,"at":"2026-11-24T05:25:57Z"}`,
		`{"v":3,"contact":"a","previous":"online","seq":1,"at":"2026-11-24T05:25:57Z"}`,
		`{"v":1,"contact":"a","previous":"online","seq":1,"at":"0000-01-01T00:30:00+01:00"}`,
		`{"v":1,"contact":"a","previous":"online","seq":-1,"at":"2026-11-24T05:25:57Z"}`,
		`[]`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := events.DecodeChange(data)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) && !errors.Is(err, events.ErrUnsupportedVersion) && !errors.Is(err, events.ErrOldVersion) {
				t.Fatalf("DecodeChange(%q) error = %v, want it to wrap ErrMalformed, ErrUnsupportedVersion or ErrOldVersion", data, err)
			}
			if c != (events.Change{}) {
				t.Fatalf("DecodeChange(%q) = %+v with an error, want the zero Change", data, c)
			}
			return
		}
		if err := events.ValidateContact(c.Contact); err != nil {
			t.Fatalf("DecodeChange(%q) accepted contact %q: %v", data, c.Contact, err)
		}
		if c.Previous == events.Invisible || !c.Previous.Valid() || c.Previous.Local() {
			t.Fatalf("DecodeChange(%q) accepted previous %v", data, c.Previous)
		}
		enc := c.Encode()
		again, err := events.DecodeChange(enc)
		if err != nil {
			t.Fatalf("DecodeChange(%q) = %+v, but its encoding %s does not decode: %v", data, c, enc, err)
		}
		if d := diffChange(again, c); d != "" {
			t.Fatalf("DecodeChange(%q) then Encode then DecodeChange: %s", data, d)
		}
		if enc2 := again.Encode(); string(enc2) != string(enc) {
			t.Fatalf("encoding is not stable: %s then %s", enc, enc2)
		}
	})
}

// onlySafeAndEscapes reports whether token holds only the safe bytes and %XX
// escapes in uppercase hex.
func onlySafeAndEscapes(token string) bool {
	for i := 0; i < len(token); i++ {
		c := token[i]
		if strings.IndexByte(safeBytes, c) >= 0 {
			continue
		}
		if c != '%' || i+2 >= len(token) {
			return false
		}
		for _, h := range []byte{token[i+1], token[i+2]} {
			if !('0' <= h && h <= '9' || 'A' <= h && h <= 'F') {
				return false
			}
		}
		i += 2
	}
	return true
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		"sip:alice@contoso%2Ecom", "sip:alice@contoso%2ecom", "alice", "%41", "%", "a%2", "a%G0",
		"a.b", "*", ">", "zo%C3%AB", "%FF", "%20", "%7F", "%09", "100%25", strings.Repeat("%2E", 256),
		strings.Repeat("%2E", 257), "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := events.ParseToken(token)
		if err != nil {
			if !errors.Is(err, events.ErrInvalidToken) {
				t.Fatalf("ParseToken(%q) error = %v, want it to wrap ErrInvalidToken", token, err)
			}
			if id != "" {
				t.Fatalf("ParseToken(%q) = %q with an error, want \"\"", token, id)
			}
			// Only what is not the token of a valid ID is refused.
			if id, err := url.PathUnescape(token); err == nil && events.ValidateContact(id) == nil && events.Token(id) == token {
				t.Fatalf("ParseToken(%q) refused the token of the valid ID %q", token, id)
			}
			return
		}
		if err := events.ValidateContact(id); err != nil {
			t.Fatalf("ParseToken(%q) = %q, not a valid contact ID: %v", token, id, err)
		}
		// Only the canonical spelling is accepted: one subject per contact.
		if got := events.Token(id); got != token {
			t.Fatalf("ParseToken(%q) = %q, but Token(%q) = %q", token, id, id, got)
		}
	})
}

func FuzzTokenRoundTrip(f *testing.F) {
	for _, s := range []string{
		"sip:alice@contoso.com", "a", "zoë", "a.b*c>d", "100%", "%41", "a b", "\x00", "\xff",
		strings.Repeat(".", 256), strings.Repeat("a", 257), "tel:+1-555_0100~x@y", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		token := events.Token(id)
		if !onlySafeAndEscapes(token) {
			t.Fatalf("Token(%q) = %q, want only A-Z a-z 0-9 - _ ~ : @ + and %%XX in uppercase hex", id, token)
		}
		if strings.ContainsAny(token, ".*> \t") {
			t.Fatalf("Token(%q) = %q holds a byte NATS gives meaning to", id, token)
		}
		if len(token) < len(id) || len(token) > 3*len(id) {
			t.Fatalf("len(Token(%q)) = %d, want between %d and %d", id, len(token), len(id), 3*len(id))
		}
		// Its escapes spell the ID's bytes, and only those that are not safe.
		if unescaped, err := url.PathUnescape(token); err != nil || unescaped != id {
			t.Fatalf("url.PathUnescape(Token(%q)) = %q, %v; want the ID", id, unescaped, err)
		}
		for rest := token; strings.Contains(rest, "%"); {
			i := strings.IndexByte(rest, '%')
			if b, _ := strconv.ParseUint(rest[i+1:i+3], 16, 8); strings.IndexByte(safeBytes, byte(b)) >= 0 {
				t.Fatalf("Token(%q) = %q escapes the safe byte %q", id, token, byte(b))
			}
			rest = rest[i+3:]
		}
		got, err := events.ParseToken(token)
		if events.ValidateContact(id) != nil {
			// An invalid ID has a token, but no token decodes to it.
			if err == nil {
				t.Fatalf("ParseToken(Token(%q)) = %q, want an error: the ID is invalid", id, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseToken(Token(%q)) = %v, want %q", id, err, id)
		}
		if got != id {
			t.Fatalf("ParseToken(Token(%q)) = %q", id, got)
		}
		subject := events.EventSubject(id)
		if back, err := events.ContactOf(subject, events.EventsPrefix); err != nil || back != id {
			t.Fatalf("ContactOf(EventSubject(%q)) = %q, %v; want %q, nil", id, back, err, id)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		"away", "AWAY", "MISTATUS_BE_RIGHT_BACK", "mistatus_idle", "34", "0x22", "0X0022", "0x", "0x9999",
		"-1", "1e2", "65570", "99999999999999999999", "", " away ", "be-right-bac\u212a", "３４", "0x+2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := events.ParseStatus(text)
		if err != nil {
			if !errors.Is(err, events.ErrUnknownStatus) {
				t.Fatalf("ParseStatus(%q) error = %v, want it to wrap ErrUnknownStatus", text, err)
			}
			if s != events.Unknown {
				t.Fatalf("ParseStatus(%q) = %v with an error, want unknown", text, s)
			}
			if len(text) <= 64 && !strings.Contains(err.Error(), events.Quote(text)) {
				t.Fatalf("ParseStatus(%q) error = %q, want it to name the input", text, err)
			}
			return
		}
		if !s.Valid() {
			t.Fatalf("ParseStatus(%q) = 0x%04X, not a MISTATUS state", text, uint16(s))
		}
		// The input was one of the spellings of s.
		in := strings.TrimSpace(text)
		if !strings.EqualFold(in, s.String()) && !strings.EqualFold(in, s.Constant()) && !spellsValue(in, s) {
			t.Fatalf("ParseStatus(%q) = %v (0x%04X), but the input spells neither its names nor its value", text, s, uint16(s))
		}
		// Every canonical spelling of s gives s back.
		for _, spelling := range []string{s.String(), s.Constant(), strconv.Itoa(s.Code()), "0x" + strconv.FormatInt(int64(s.Code()), 16)} {
			if back, err := events.ParseStatus(spelling); err != nil || back != s {
				t.Fatalf("ParseStatus(%q) = %v, %v; want %v, nil", spelling, back, err, s)
			}
		}
	})
}

// spellsValue reports whether in is the value of s in decimal or 0x hex.
func spellsValue(in string, s events.Status) bool {
	base, digits := 10, in
	if len(in) > 2 && (in[:2] == "0x" || in[:2] == "0X") {
		base, digits = 16, in[2:]
	}
	if digits == "" || digits[0] == '+' || digits[0] == '-' {
		return false
	}
	n, err := strconv.ParseUint(digits, base, 64)
	return err == nil && n == uint64(s)
}
