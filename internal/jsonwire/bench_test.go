package jsonwire_test

import (
	"encoding/json"
	"testing"

	"github.com/presence-engine/presence/internal/jsonwire"
)

// The benchmarks measure each fast path ("fast") beside encoding/json ("json").

var (
	sinkBytes  []byte
	sinkReply  reply
	sinkResult setResult
	sinkList   []reply
)

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

func BenchmarkReadReply(b *testing.B) {
	data := []byte(`{"contact":"sip:alice@contoso.com","name":"Alice Smith","status":"away","code":34,"seq":1234567}`)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			r, ok := readReply(data)
			if !ok {
				b.Fatal("not read")
			}
			sinkReply = r
		}
	})
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var r reply
			if err := json.Unmarshal(data, &r); err != nil {
				b.Fatal(err)
			}
			sinkReply = r
		}
	})
}

func BenchmarkReadSetResult(b *testing.B) {
	data := []byte(`{"contact":"sip:alice@contoso.com","status":"away","code":34,"previous":"online","seq":1234567,"changed":true}`)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			r, ok := readSetResult(data)
			if !ok {
				b.Fatal("not read")
			}
			sinkResult = r
		}
	})
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var r setResult
			if err := json.Unmarshal(data, &r); err != nil {
				b.Fatal(err)
			}
			sinkResult = r
		}
	})
}

func BenchmarkReadStatuses(b *testing.B) {
	var list statuses
	for range 100 {
		list.Statuses = append(list.Statuses, reply{Contact: "sip:alice@contoso.com", Name: "Alice Smith",
			Status: "away", Code: 34, Seq: 1234567})
	}
	data, _ := json.Marshal(list)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			l, ok := readStatuses(data)
			if !ok {
				b.Fatal("not read")
			}
			sinkList = l
		}
	})
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var l statuses
			if err := json.Unmarshal(data, &l); err != nil {
				b.Fatal(err)
			}
			sinkList = l.Statuses
		}
	})
}
