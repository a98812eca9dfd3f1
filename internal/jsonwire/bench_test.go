package jsonwire_test

import (
	"encoding/json"
	"testing"

	"github.com/presence-engine/presence/internal/jsonwire"
)

// The benchmark measures the string writer ("fast") beside encoding/json
// ("json"). What the reader is worth is measured where it reads real records
// and replies: events/bench_test.go and client/wire_bench_test.go.

var sinkBytes []byte

func BenchmarkAppendString(b *testing.B) {
	const s = "Zoë Núñez <z&n> sip:zoe@bücher.example"
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			buf = jsonwire.AppendString(buf[:0], s)
		}
		sinkBytes = buf
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = json.Marshal(s)
		}
	})
}
