package jsonwire_test

import (
	"encoding/json"
	"testing"

	"github.com/presence-engine/presence/internal/jsonwire"
)

// stringCases are what encoding/json writes in a way of its own.
var stringCases = []string{
	"", "sip:alice@contoso.com", "<a href=\"x\">&amp;</a>", `back\slash "quote" /`, "\x00\x01\x1f\x7f",
	"\b\f\n\r\t", "zoë 李 😀", "\u2027\u2028\u2029\u202a", "\ufeff\ufffd", "\xff", "\xc3", "a\xe2\x80",
	"\xed\xa0\x80", "\xf4\x90\x80\x80", "\u0085\u00a0",
}

func TestAppendStringMatchesJSON(t *testing.T) {
	for _, s := range stringCases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonwire.AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(x, %q) = %s, want x%s", s, got, want)
		}
	}
}

func FuzzAppendStringMatchesJSON(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonwire.AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}
