package projections

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// stateCases are states as the projection stores them.
var stateCases = []struct {
	name  string
	state State
}{
	{"visible", State{Contact: alice, Name: "Alice", Status: events.Away, Previous: events.Online,
		Seq: 42, At: base, Cause: events.CauseUser,
		Visible: View{Contact: alice, Name: "Alice", Status: events.Away, Seq: 42, At: base}}},
	{"hidden", State{Contact: alice, Name: "Alice (hiding)", Status: events.Invisible, Previous: events.Offline,
		Seq: 43, At: base.Add(time.Second), Cause: events.CauseUser,
		Visible: View{Contact: alice, Name: "Alice", Status: events.Offline, Seq: 41, At: base.Add(-time.Second)}}},
	{"no names", State{Contact: bob, Status: events.Idle, Previous: events.Online,
		Seq: 1, At: base, Cause: events.CauseEndpoint,
		Visible: View{Contact: bob, Status: events.Idle, Seq: 1, At: base}}},
	{"long unicode names", State{Contact: bob, Name: strings.Repeat("é", 128), Status: events.Custom, Previous: events.Busy,
		Seq: 300, At: base, Cause: events.CauseEngine,
		Visible: View{Contact: bob, Name: strings.Repeat("ü", 128), Status: events.Custom, Seq: 300, At: base}}},
	{"largest seq", State{Contact: bob, Name: "B", Status: events.Offline, Previous: events.Online,
		Seq: math.MaxUint64, At: base, Cause: events.CauseEngine,
		Visible: View{Contact: bob, Name: "B", Status: events.Offline, Seq: math.MaxUint64, At: base}}},
	{"before 1970", State{Contact: bob, Name: "B", Status: events.Online, Previous: events.Unknown,
		Seq: 7, At: time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC), Cause: events.CauseUser,
		Visible: View{Contact: bob, Name: "B", Status: events.Online, Seq: 7, At: time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC)}}},
	// Times DecodeEvent accepts, outside what UnixNano can hold.
	{"year 2300", State{Contact: bob, Name: "B", Status: events.Online, Previous: events.Unknown,
		Seq: 8, At: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), Cause: events.CauseUser,
		Visible: View{Contact: bob, Name: "B", Status: events.Online, Seq: 8, At: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	// A contact whose only change is hidden (its log begins offline to
	// invisible) has never had a visible change: no visible time.
	{"last active", State{Contact: bob, Name: "B", Status: events.Idle, Previous: events.Online,
		Seq: 10, At: base, Cause: events.CauseEngine,
		Visible: View{Contact: bob, Name: "B", Status: events.Idle, Seq: 9, At: base, LastActive: base.Add(-5 * time.Minute)}}},
	{"never visible", State{Contact: carol, Name: "Carol", Status: events.Invisible, Previous: events.Offline,
		Seq: 9, At: base, Cause: events.CauseUser,
		Visible: View{Contact: carol}}},
}

func TestStateRoundTrip(t *testing.T) {
	for _, tt := range stateCases {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.state.marshal(nil)
			got, err := unmarshalState(tt.state.Contact, b)
			if err != nil {
				t.Fatalf("unmarshalState(marshal(%+v)) = %v", tt.state, err)
			}
			if d := diffState(got, tt.state); d != "" {
				t.Errorf("round trip: %s", d)
			}
			// marshal appends.
			prefix := []byte("prefix")
			if b2 := tt.state.marshal(prefix); !bytes.Equal(b2[:len(prefix)], []byte("prefix")) || !bytes.Equal(b2[len(prefix):], b) {
				t.Errorf("marshal(%q) = %q, want the prefix then %q", prefix, b2, b)
			}
		})
	}
}

func TestUnmarshalStateCorrupt(t *testing.T) {
	valid := stateCases[1].state.marshal(nil)
	// A value whose name is easy to find, to damage its length.
	named := State{Contact: alice, Name: "NAME-MARK", Status: events.Online, Previous: events.Unknown, Seq: 1, At: base,
		Cause: events.CauseUser, Visible: View{Contact: alice, Name: "NAME-MARK", Status: events.Online, Seq: 1, At: base}}
	nb := named.marshal(nil)
	nameAt := bytes.Index(nb, []byte("NAME-MARK")) - 1 // the length, one byte
	if nameAt < 0 || nb[nameAt] != 9 {
		t.Fatalf("cannot find the name's length in %x", nb)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 0", append([]byte{0}, valid[1:]...)},
		{"version 2", append([]byte{2}, valid[1:]...)},
		{"version 0xFF", append([]byte{0xFF}, valid[1:]...)},
		{"status not MISTATUS", patch(valid, 1, 0x00, 0x03)},
		{"previous not MISTATUS", patch(valid, 3, 0x05, 0x00)},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"seq varint never ends", slices.Concat(valid[:5], bytes.Repeat([]byte{0xFF}, 11), valid[6:])},
		{"name longer than the value", patch(nb, nameAt, 0x7F)},
		{"name length near 2^64", slices.Concat(nb[:nameAt],
			[]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, nb[nameAt+1:])},
	}
	for n := range len(valid) {
		tests = append(tests, struct {
			name string
			b    []byte
		}{name: "cut to " + strconv.Itoa(n) + " bytes", b: valid[:n]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := unmarshalState(alice, tt.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("unmarshalState(%x) = %+v, %v; want ErrCorrupt", tt.b, st, err)
			}
		})
	}
}

// patch returns a copy of b with the bytes at i replaced.
func patch(b []byte, i int, with ...byte) []byte {
	out := bytes.Clone(b)
	copy(out[i:], with)
	return out
}

// nonCanonicalSeq returns a stored state whose seq, 1, is written in two
// bytes (81 00) where marshal writes one (01).
func nonCanonicalSeq() []byte {
	st := stateCases[0].state
	st.Seq = 1
	b := st.marshal(nil)
	const at = 5 // after the version byte, status and previous
	return slices.Concat(b[:at], []byte{0x81, 0x00}, b[at+1:])
}

func TestUnmarshalStateNonCanonical(t *testing.T) {
	// The decoder must take only what marshal writes: a varint spelt in more
	// bytes than needed is not the stored form (found by FuzzUnmarshalState).
	st := stateCases[0].state
	st.Seq = 1
	if b := st.marshal(nil); b[5] != 0x01 {
		t.Fatalf("marshal no longer writes seq at byte 5 (%x): update nonCanonicalSeq", b)
	}
	b := nonCanonicalSeq()
	if got, err := unmarshalState(alice, b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unmarshalState(%x) = seq %d, %v; want ErrCorrupt: marshal writes seq 1 as 01, not 81 00", b, got.Seq, err)
	}
}

// FuzzUnmarshalState feeds the decoder of stored states whatever bytes a
// damaged store could hold: it must never panic, must refuse with ErrCorrupt,
// and what it accepts must be exactly what marshal writes.
func FuzzUnmarshalState(f *testing.F) {
	for _, tt := range stateCases {
		f.Add(tt.state.marshal(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{stateVersion})
	f.Add([]byte{stateVersion, 0, 2, 0, 1, 1, 2, 0, 0x7F, 'a'})
	// Found by the fuzzer: a varint written in more bytes than marshal writes.
	f.Add(nonCanonicalSeq())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := unmarshalState(alice, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unmarshalState(%x) = %v, want an error wrapping ErrCorrupt", b, err)
			}
			return
		}
		if st.Contact != alice || st.Visible.Contact != alice {
			t.Fatalf("unmarshalState(%x) gave contact %q / %q, want %q", b, st.Contact, st.Visible.Contact, alice)
		}
		if again := st.marshal(nil); !bytes.Equal(again, b) {
			t.Fatalf("unmarshalState(%x) accepted a value that marshals back as %x", b, again)
		}
	})
}
