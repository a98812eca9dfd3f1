package events

import (
	"strings"
	"testing"
)

// FuzzLookupName holds lookupName, ParseStatus's fast path for names, to what it
// stands for: the map of names, looked up with strings.ToLower.
func FuzzLookupName(f *testing.F) {
	for _, s := range []string{
		"away", "AWAY", " Away\t", "MISTATUS_BE_RIGHT_BACK", "mistatus_idle", "34", "0x22", "",
		"be-right-bac\u212a", "mistatus_local_synchronizing_with_serve\u212a", "MISTATUS_LOCAL_SYNCHRONIZING_WITH_SERVER",
		"MISTATUS_LOCAL_SYNCHRONIZING_WITH_SERVERS", "ſ", "３４", "İdle", "\xff", "away\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		want, wantOK := byName[strings.ToLower(text)]
		if got, ok := lookupName(text); got != want || ok != wantOK {
			t.Fatalf("lookupName(%q) = %v, %v; byName[strings.ToLower] = %v, %v", text, got, ok, want, wantOK)
		}
		if got, ok := lookupName([]byte(text)); got != want || ok != wantOK {
			t.Fatalf("lookupName([]byte(%q)) = %v, %v; byName[strings.ToLower] = %v, %v", text, got, ok, want, wantOK)
		}
	})
}
