package engine_test

import (
	"bytes"
	"crypto/rand"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestSealedLogRef: a feed entry's log reference opens to the log sequence it
// was sealed with, on that entry and under that key only; every seal of it is
// different (a fresh nonce), and every ref has the same length, whatever the
// sequence, so that nothing in it compares or counts.
func TestSealedLogRef(t *testing.T) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	entry := []byte(`{"v":2,"contact":"sip:alice@contoso.com","previous":"online","at":"2026-11-24T05:25:57Z"}`)
	seen := map[string]bool{}
	var length int
	for _, seq := range []uint64{0, 1, 2, 42, 1 << 32, math.MaxUint64} {
		for range 3 {
			ref, err := s.Seal(seq, entry)
			if err != nil {
				t.Fatalf("Seal(%d) = %v", seq, err)
			}
			if seen[ref] {
				t.Errorf("Seal(%d) = %q, a ref made before: refs must not compare", seq, ref)
			}
			seen[ref] = true
			if length == 0 {
				length = len(ref)
			}
			if len(ref) != length || strings.ContainsAny(ref, "=+/ ") {
				t.Errorf("Seal(%d) = %q: want %d characters of unpadded base64url, as every ref", seq, ref, length)
			}
			if got, err := s.Open(ref, entry); err != nil || got != seq {
				t.Errorf("Open(Seal(%d)) = %d, %v; want %d", seq, got, err, seq)
			}
		}
	}

	ref, err := s.Seal(7, entry)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := bytes.Clone(key)
	otherKey[0] ^= 1
	other, err := engine.NewSealer(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(ref)
	tampered[10] ^= 1
	for _, tc := range []struct {
		name string
		s    interface {
			Open(string, []byte) (uint64, error)
		}
		ref   string
		entry []byte
	}{
		{"another key", other, ref, entry},
		{"another entry", s, ref, append(bytes.Clone(entry), ' ')},
		{"a character changed", s, string(tampered), entry},
		{"cut short", s, ref[:len(ref)-1], entry},
		{"none (an entry of version 1)", s, "", entry},
		{"not base64", s, strings.Repeat("*", len(ref)), entry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.s.Open(tc.ref, tc.entry); err == nil {
				t.Errorf("Open = %d, nil; want an error", got)
			}
		})
	}

	for _, n := range []int{0, 16, 31, 33} {
		if _, err := engine.NewSealer(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "want 32") {
			t.Errorf("NewSealer of a %d-byte key = %v, want an error saying 32 bytes are needed", n, err)
		}
	}
}

// TestEnginesRacingAgreeOnOneSealKey: engines that start together on a fresh
// server each draw a key and create it in the bucket; one wins, and all of
// them seal under that one.
func TestEnginesRacingAgreeOnOneSealKey(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.JetStream(t, s)
	if err := engine.EnsureStreams(natstest.Context(t), js, engine.StreamOptions{}, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	const n = 8
	refs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		_, js := natstest.JetStream(t, s) // a connection each
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref, err := engine.SealLogRef(natstest.Context(t), js, uint64(i+1), []byte("entry"))
			if err != nil {
				t.Errorf("engine %d: %v", i, err)
			}
			refs[i] = ref
		}()
	}
	wg.Wait()
	kv, err := js.KeyValue(natstest.Context(t), events.EngineBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(natstest.Context(t), events.FeedSealKey)
	if err != nil {
		t.Fatal(err)
	}
	if entry.Revision() != 1 {
		t.Errorf("the key was written %d times, want once: the first engine's, read by the others", entry.Revision())
	}
	for i, ref := range refs {
		if got, err := engine.OpenLogRef(natstest.Context(t), js, ref, []byte("entry")); err != nil || got != uint64(i+1) {
			t.Errorf("engine %d's ref opens to %d, %v under the key kept; want %d", i, got, err, i+1)
		}
	}
}
