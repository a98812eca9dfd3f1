package events_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/presence-engine/presence/events"
)

// safeBytes is the safe set of DESIGN.md section 2, copied by hand.
const safeBytes = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~:@+"

func TestValidateContact(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
		// wantInMsg is text the error must hold besides the quoted ID, when the
		// full ID would not be quoted (it is shortened past 64 bytes).
		wantInMsg string
	}{
		{name: "sip URI", id: "sip:alice@contoso.com", ok: true},
		{name: "one byte", id: "a", ok: true},
		{name: "256 bytes", id: strings.Repeat("a", 256), ok: true},
		{name: "256 bytes of two-byte runes", id: strings.Repeat("é", 128), ok: true},
		{name: "non-ASCII letters", id: "sip:zoë.ñúñez@bücher.example", ok: true},
		{name: "CJK", id: "sip:李@例子.中国", ok: true},
		{name: "emoji", id: "user:🙂", ok: true},
		{name: "subject wildcards are fine in an ID", id: "a.b*c>d", ok: true},
		{name: "percent", id: "100%", ok: true},

		{name: "empty", id: "", wantInMsg: "empty"},
		{name: "257 bytes", id: strings.Repeat("a", 257), wantInMsg: "257 bytes"},
		{name: "258 bytes of two-byte runes", id: strings.Repeat("é", 129), wantInMsg: "258 bytes"},
		{name: "invalid UTF-8", id: "sip:\xffalice", wantInMsg: "UTF-8"},
		{name: "cut UTF-8 sequence", id: "sip:zo\xc3", wantInMsg: "UTF-8"},
		{name: "surrogate half", id: "a\xed\xa0\x80", wantInMsg: "UTF-8"},
		{name: "space", id: "sip:alice smith@contoso.com", wantInMsg: "byte 9"},
		{name: "leading space", id: " alice"},
		{name: "trailing space", id: "alice "},
		{name: "tab", id: "alice\tbob"},
		{name: "newline", id: "alice\n"},
		{name: "carriage return", id: "alice\r"},
		{name: "NUL", id: "alice\x00"},
		{name: "escape", id: "\x1b[31malice"},
		{name: "DEL", id: "alice\x7f"},
		{name: "C1 control NEL", id: "alice\u0085"},
		{name: "no-break space", id: "alice\u00a0bob"},
		{name: "ideographic space", id: "alice\u3000bob"},
		{name: "line separator", id: "alice\u2028bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := events.ValidateContact(tc.id)
			if tc.ok {
				if err != nil {
					t.Errorf("ValidateContact(%q) = %v, want nil", tc.id, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateContact(%q) = nil, want an error", tc.id)
			}
			if !errors.Is(err, events.ErrInvalidContact) {
				t.Errorf("ValidateContact(%q) = %v, want it to wrap ErrInvalidContact", tc.id, err)
			}
			var ve *events.ValueError
			if !errors.As(err, &ve) {
				t.Errorf("ValidateContact(%q) error is %T, want *ValueError", tc.id, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, events.Quote(tc.id)) {
				t.Errorf("ValidateContact(%q) = %q, want it to name the ID as %s", tc.id, msg, events.Quote(tc.id))
			}
			if tc.wantInMsg != "" && !strings.Contains(msg, tc.wantInMsg) {
				t.Errorf("ValidateContact(%q) = %q, want it to contain %q", tc.id, msg, tc.wantInMsg)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty means no name", "", true},
		{"plain", "Alice", true},
		{"spaces", "Alice van der Berg", true},
		{"non-ASCII", "Zoë Núñez 李", true},
		{"256 bytes", strings.Repeat("n", 256), true},
		{"257 bytes", strings.Repeat("n", 257), false},
		{"invalid UTF-8", "Al\xffce", false},
		{"tab", "Alice\tSmith", false},
		{"newline", "Alice\nSmith", false},
		{"NUL", "Alice\x00", false},
		{"DEL", "Alice\x7f", false},
		{"C1 control", "Alice\u0085", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := events.ValidateName(tc.in)
			if tc.ok {
				if err != nil {
					t.Errorf("ValidateName(%q) = %v, want nil", tc.in, err)
				}
				return
			}
			if !errors.Is(err, events.ErrInvalidName) {
				t.Fatalf("ValidateName(%q) = %v, want an error wrapping ErrInvalidName", tc.in, err)
			}
			if msg := err.Error(); !strings.Contains(msg, events.Quote(tc.in)) {
				t.Errorf("ValidateName(%q) = %q, want it to name the value as %s", tc.in, msg, events.Quote(tc.in))
			}
		})
	}
}

func TestToken(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		token string
	}{
		{"design example", "sip:alice@contoso.com", "sip:alice@contoso%2Ecom"},
		{"all safe", "alice", "alice"},
		{"every safe punctuation", "tel:+1-555_0100~x@y", "tel:+1-555_0100~x@y"},
		{"subject wildcards", "a.b*c>d", "a%2Eb%2Ac%3Ed"},
		{"percent", "100%", "100%25"},
		{"escape lookalike", "%41", "%2541"},
		{"slash and equals", "a/b=c", "a%2Fb%3Dc"},
		{"two-byte rune", "zoë", "zo%C3%AB"},
		{"four-byte rune", "🙂", "%F0%9F%99%82"},
		{"all upper hex digits", "\u00ff", "%C3%BF"},
		{"dollar and bang", "$!", "%24%21"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := events.Token(tc.id); got != tc.token {
				t.Errorf("Token(%q) = %q, want %q", tc.id, got, tc.token)
			}
			got, err := events.ParseToken(tc.token)
			if err != nil {
				t.Fatalf("ParseToken(%q) error = %v, want %q", tc.token, err, tc.id)
			}
			if got != tc.id {
				t.Errorf("ParseToken(%q) = %q, want %q", tc.token, got, tc.id)
			}
		})
	}
}

// TestTokenEveryByte checks each byte on its own: safe bytes are written as
// themselves, every other byte as %XX in uppercase hex.
func TestTokenEveryByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		id := "x" + string([]byte{byte(b)})
		want := id
		if !strings.ContainsRune(safeBytes, rune(b)) || b >= 0x80 {
			want = fmt.Sprintf("x%%%02X", b)
		}
		if got := events.Token(id); got != want {
			t.Errorf("Token(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"lowercase hex", "sip:alice@contoso%2ecom"},
		{"lowercase hex digit pair", "a%c3%ab"},
		{"escaped safe letter", "%41"},
		{"escaped safe digit", "a%30"},
		{"escaped dash", "a%2D"},
		{"escaped tilde", "a%7E"},
		{"escaped colon", "sip%3Aalice"},
		{"escaped at", "alice%40contoso"},
		{"escaped plus", "a%2B"},
		{"lone percent", "%"},
		{"percent at end", "abc%"},
		{"cut-short escape", "abc%2"},
		{"cut-short escape mid-token", "a%2"},
		{"not hex", "a%G1"},
		{"not hex low digit", "a%2G"},
		{"double percent", "a%%41"},
		{"sign in escape", "a%+1"},
		{"raw dot", "sip:alice@contoso.com"},
		{"raw star", "*"},
		{"raw gt", ">"},
		{"star inside", "a*b"},
		{"gt inside", "a>b"},
		{"raw space", "a b"},
		{"raw slash", "a/b"},
		{"raw equals", "a=b"},
		{"raw NUL", "a\x00b"},
		{"raw tab", "a\tb"},
		{"raw high byte", "a\xffb"},
		{"raw UTF-8", "zoë"},
		{"decodes to space", "a%20b"},
		{"decodes to NUL", "a%00"},
		{"decodes to tab", "a%09"},
		{"decodes to DEL", "a%7F"},
		{"decodes to invalid UTF-8", "a%FF"},
		{"decodes to cut UTF-8", "zo%C3"},
		{"decodes to NEL", "a%C2%85"},
		{"decodes to 257 bytes", strings.Repeat("a", 257)},
		{"decodes to 257 bytes escaped", strings.Repeat("%2E", 257)},
		{"longer than any token", strings.Repeat("a", 769)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.ParseToken(tc.token)
			if err == nil {
				t.Fatalf("ParseToken(%q) = %q, want an error", tc.token, got)
			}
			if !errors.Is(err, events.ErrInvalidToken) {
				t.Errorf("ParseToken(%q) error = %v, want it to wrap ErrInvalidToken", tc.token, err)
			}
			if got != "" {
				t.Errorf("ParseToken(%q) = %q with an error, want \"\"", tc.token, got)
			}
			if msg := err.Error(); !strings.Contains(msg, events.Quote(tc.token)) {
				t.Errorf("ParseToken(%q) error = %q, want it to name the token as %s", tc.token, msg, events.Quote(tc.token))
			}
		})
	}
}

func TestParseTokenLongest(t *testing.T) {
	// The longest token is a 256-byte ID of bytes that are all escaped.
	id := strings.Repeat(".", events.MaxContactLen)
	token := events.Token(id)
	if len(token) != 3*events.MaxContactLen {
		t.Fatalf("len(Token(256 dots)) = %d, want %d", len(token), 3*events.MaxContactLen)
	}
	got, err := events.ParseToken(token)
	if err != nil {
		t.Fatalf("ParseToken(Token(256 dots)) error = %v", err)
	}
	if got != id {
		t.Errorf("ParseToken(Token(256 dots)) = %q, want %q", got, id)
	}
}

func TestSubjects(t *testing.T) {
	const id = "sip:alice@contoso.com"
	if got, want := events.EventSubject(id), "presence.events.sip:alice@contoso%2Ecom"; got != want {
		t.Errorf("EventSubject(%q) = %q, want %q", id, got, want)
	}
	if got, want := events.ChangeSubject(id), "presence.changes.sip:alice@contoso%2Ecom"; got != want {
		t.Errorf("ChangeSubject(%q) = %q, want %q", id, got, want)
	}
	for _, id := range []string{"sip:alice@contoso.com", "a.b*c>d", "zoë", "100%"} {
		for _, s := range []struct {
			prefix  string
			subject string
		}{
			{events.EventsPrefix, events.EventSubject(id)},
			{events.ChangesPrefix, events.ChangeSubject(id)},
		} {
			if n := strings.Count(s.subject, "."); n != 2 {
				t.Errorf("subject %q of %q has %d dots, want 2: one token per contact", s.subject, id, n)
			}
			got, err := events.ContactOf(s.subject, s.prefix)
			if err != nil || got != id {
				t.Errorf("ContactOf(%q, %q) = %q, %v; want %q, nil", s.subject, s.prefix, got, err, id)
			}
		}
	}
}

func TestContactOf(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		prefix  string
		want    string // "" means an error
	}{
		{"log", "presence.events.sip:alice@contoso%2Ecom", events.EventsPrefix, "sip:alice@contoso.com"},
		{"feed", "presence.changes.sip:alice@contoso%2Ecom", events.ChangesPrefix, "sip:alice@contoso.com"},
		{"feed subject, log prefix", "presence.changes.alice", events.EventsPrefix, ""},
		{"log subject, feed prefix", "presence.events.alice", events.ChangesPrefix, ""},
		{"no token", "presence.events.", events.EventsPrefix, ""},
		{"prefix without dot", "presence.events", events.EventsPrefix, ""},
		{"two tokens", "presence.events.alice.bob", events.EventsPrefix, ""},
		{"wildcard", "presence.events.*", events.EventsPrefix, ""},
		{"full wildcard", "presence.events.>", events.EventsPrefix, ""},
		{"non-canonical token", "presence.events.sip:alice@contoso%2ecom", events.EventsPrefix, ""},
		{"other subject", "presence.status.alice", events.EventsPrefix, ""},
		{"empty", "", events.EventsPrefix, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.ContactOf(tc.subject, tc.prefix)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Errorf("ContactOf(%q, %q) = %q, %v; want %q, nil", tc.subject, tc.prefix, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ContactOf(%q, %q) = %q, want an error", tc.subject, tc.prefix, got)
			}
			if !errors.Is(err, events.ErrInvalidToken) {
				t.Errorf("ContactOf(%q, %q) error = %v, want it to wrap ErrInvalidToken", tc.subject, tc.prefix, err)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "away", `"away"`},
		{"control", "a\x00b", `"a\x00b"`},
		{"64 bytes kept", strings.Repeat("a", 64), `"` + strings.Repeat("a", 64) + `"`},
		{"65 bytes shortened", strings.Repeat("a", 65), `"` + strings.Repeat("a", 64) + `"... (65 bytes)`},
		// 63 ASCII bytes then a two-byte rune across the cut: the rune is dropped
		// whole, never split.
		{"rune across the cut", strings.Repeat("a", 63) + "éé", `"` + strings.Repeat("a", 63) + `"... (67 bytes)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := events.Quote(tc.in); got != tc.want {
				t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

// TestValidatorsEveryByte holds the validators, whose fast path takes printable
// ASCII, to their rules as the unicode package states them, for every byte
// alone, between others, and before invalid UTF-8.
func TestValidatorsEveryByte(t *testing.T) {
	// ok reports whether s is UTF-8 without a rune that bad reports.
	ok := func(s string, bad func(rune) bool) bool {
		return utf8.ValidString(s) && strings.IndexFunc(s, bad) < 0
	}
	controlOrSpace := func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }
	for c := range 256 {
		for _, s := range []string{string(rune(c)), "a" + string(byte(c)) + "b", string(byte(c)) + "\xff"} {
			for _, v := range []struct {
				name     string
				validate func(string) error
				want     bool
				sentinel error
			}{
				{"ValidateContact", events.ValidateContact, ok(s, controlOrSpace), events.ErrInvalidContact},
				{"ValidateName", events.ValidateName, ok(s, unicode.IsControl), events.ErrInvalidName},
				{"ValidateRequestID", events.ValidateRequestID, ok(s, unicode.IsControl), events.ErrMalformed},
			} {
				err := v.validate(s)
				if (err == nil) != v.want || err != nil && !errors.Is(err, v.sentinel) {
					t.Errorf("%s(%q) = %v; want valid = %v, errors wrapping %v", v.name, s, err, v.want, v.sentinel)
				}
				if err != nil && !strings.Contains(err.Error(), events.Quote(s)) {
					t.Errorf("%s(%q) = %q; want it to name the value", v.name, s, err)
				}
			}
		}
	}
}
