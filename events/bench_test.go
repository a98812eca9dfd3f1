package events_test

import (
	"testing"

	"github.com/presence-engine/presence/events"
)

// benchEvent is a typical log event: a user's change with a request ID, about
// 190 bytes encoded.
var benchEvent = events.Event{
	Contact:   "sip:alice@contoso.com",
	Name:      "Alice Smith",
	Status:    events.Away,
	Previous:  events.Online,
	At:        at,
	Cause:     events.CauseUser,
	RequestID: "0b5e4c1a-9f2d-4e7b-a8c3-6d1f0e2b7a94",
}

// benchChange is the feed entry of benchEvent.
var benchChange, _ = events.ChangeOf(benchEvent)

// sink keeps the compiler from optimising benchmarked calls away.
var (
	sinkBytes  []byte
	sinkString string
	sinkEvent  events.Event
	sinkChange events.Change
	sinkStatus events.Status
)

// The benchmarks of the records measure each fast path ("fast") beside the
// encoding/json path it stands for ("json"): a fast path is kept only where it
// clearly wins.

func BenchmarkEncodeEvent(b *testing.B) {
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes = benchEvent.Encode()
		}
		b.SetBytes(int64(len(sinkBytes)))
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = events.EncodeEventJSON(benchEvent)
		}
		b.SetBytes(int64(len(sinkBytes)))
	})
}

func BenchmarkAppendJSONEvent(b *testing.B) {
	buf := benchEvent.Encode()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = benchEvent.AppendJSON(buf[:0])
	}
	sinkBytes = buf
}

func BenchmarkDecodeEvent(b *testing.B) {
	data := benchEvent.Encode()
	for _, bc := range []struct {
		name   string
		decode func([]byte) (events.Event, error)
	}{
		{"fast", events.DecodeEvent},
		{"json", events.DecodeEventJSON},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				e, err := bc.decode(data)
				if err != nil {
					b.Fatal(err)
				}
				sinkEvent = e
			}
		})
	}
}

func BenchmarkEncodeChange(b *testing.B) {
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes = benchChange.Encode()
		}
		b.SetBytes(int64(len(sinkBytes)))
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = events.EncodeChangeJSON(benchChange)
		}
		b.SetBytes(int64(len(sinkBytes)))
	})
}

func BenchmarkAppendJSONChange(b *testing.B) {
	buf := benchChange.Encode()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = benchChange.AppendJSON(buf[:0])
	}
	sinkBytes = buf
}

func BenchmarkDecodeChange(b *testing.B) {
	data := benchChange.Encode()
	for _, bc := range []struct {
		name   string
		decode func([]byte) (events.Change, error)
	}{
		{"fast", events.DecodeChange},
		{"json", events.DecodeChangeJSON},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				c, err := bc.decode(data)
				if err != nil {
					b.Fatal(err)
				}
				sinkChange = c
			}
		})
	}
}

func BenchmarkToken(b *testing.B) {
	for _, bc := range []struct{ name, id string }{
		{"escaped", "sip:alice@contoso.com"},
		{"plain", "sip:alice@contoso"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkString = events.Token(bc.id)
			}
		})
	}
}

func BenchmarkParseToken(b *testing.B) {
	for _, bc := range []struct{ name, token string }{
		{"escaped", "sip:alice@contoso%2Ecom"},
		{"plain", "sip:alice@contoso"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				id, err := events.ParseToken(bc.token)
				if err != nil {
					b.Fatal(err)
				}
				sinkString = id
			}
		})
	}
}

func BenchmarkParseStatus(b *testing.B) {
	for _, bc := range []struct{ name, text string }{
		{"name", "away"},
		{"constant", "MISTATUS_AWAY"},
		{"hex", "0x0022"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := events.ParseStatus(bc.text)
				if err != nil {
					b.Fatal(err)
				}
				sinkStatus = s
			}
		})
	}
}
