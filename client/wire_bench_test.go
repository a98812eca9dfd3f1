package client

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/presence-engine/presence/events"
)

// The benchmarks measure the codec of each wire type: its fast path ("fast")
// beside plain encoding/json on its JSON form ("json"), each the whole call its
// caller makes. A wire type without a fast path has only "json": what it
// costs. They decided which fast paths are kept (replyjson.go,
// requestjson.go): those on the fan-out path, per change or per batch, where
// they are about 1.7x (writing a statuses request) to 7x faster. The set
// path's were 2x to 15x faster too, but a set costs about 100µs, of which they
// would save a few.

var (
	sinkBytes    []byte
	sinkReply    Reply
	sinkReplies  []Reply
	sinkResult   SetResult
	sinkRequest  SetRequest
	sinkContacts []string
)

// benchContacts are the contacts of a statuses request or reply: a batch a
// subscriber reads.
var benchContacts = func() []string {
	out := make([]string, 256)
	for i := range out {
		out[i] = fmt.Sprintf("sip:user-%03d@contoso.com", i)
	}
	return out
}()

func benchReply() Reply {
	return Reply{Contact: "sip:alice@contoso.com", Name: "Alice Smith", Status: events.Away, Seq: 1234567}
}

func benchStatuses() StatusesReply {
	r := StatusesReply{Statuses: make([]Reply, len(benchContacts))}
	for i, c := range benchContacts {
		r.Statuses[i] = Reply{Contact: c, Name: fmt.Sprintf("User %d", i), Status: events.Away, Seq: uint64(1234567 + i)}
	}
	return r
}

func benchSetResult() SetResult {
	return SetResult{Contact: "sip:alice@contoso.com", Status: events.Away, Previous: events.Online, Seq: 1234567, Changed: true}
}

func benchSetRequest() SetRequest {
	seq := uint64(1234566)
	return SetRequest{Status: events.Away, Name: "Alice Smith", RequestID: "r-4f1c2a", ExpectSeq: &seq}
}

// unmarshal is json.Unmarshal into a new T.
func unmarshal[T any](b *testing.B, data []byte) T {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		b.Fatal(err)
	}
	return v
}

// path is one way a codec's call is made: "fast" or "json".
type path struct {
	name string
	call func(b *testing.B)
}

// sideBySide measures each path of a codec as a sub-benchmark of b.
func sideBySide(b *testing.B, paths ...path) {
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.call(b)
			}
		})
	}
}

func marshal(b *testing.B, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkReadReply(b *testing.B) {
	r := benchReply()
	data := marshal(b, r.jsonForm())
	sideBySide(b,
		path{"fast", func(b *testing.B) {
			got, ok := readReply(data, "")
			if !ok {
				b.Fatal("not read")
			}
			sinkReply = got
		}},
		path{"json", func(b *testing.B) {
			sinkReply = unmarshal[replyJSON](b, data).reply()
		}},
	)
}

func BenchmarkWriteReply(b *testing.B) {
	r := benchReply()
	sideBySide(b,
		path{"fast", func(b *testing.B) {
			sinkBytes, _ = r.MarshalJSON()
		}},
		path{"json", func(b *testing.B) {
			sinkBytes = marshal(b, r.jsonForm())
		}},
	)
}

// BenchmarkReadStatusesReply reads what a subscriber reads per batch: the
// statuses of the 256 contacts it asked for.
func BenchmarkReadStatusesReply(b *testing.B) {
	data := marshal(b, benchStatuses().jsonForm())
	sideBySide(b,
		path{"fast", func(b *testing.B) {
			got, ok := readStatuses(data, benchContacts)
			if !ok {
				b.Fatal("not read")
			}
			sinkReplies = got
		}},
		path{"json", func(b *testing.B) {
			sinkReplies = unmarshal[statusesReplyJSON](b, data).replies()
		}},
	)
}

// BenchmarkWriteStatusesReply writes what the service writes per batch.
func BenchmarkWriteStatusesReply(b *testing.B) {
	r := benchStatuses()
	sideBySide(b,
		path{"fast", func(b *testing.B) {
			sinkBytes, _ = r.MarshalJSON()
		}},
		path{"json", func(b *testing.B) {
			sinkBytes = marshal(b, r.jsonForm())
		}},
	)
}

// BenchmarkReadSetResult reads the answer of a set: no fast path.
func BenchmarkReadSetResult(b *testing.B) {
	data, _ := benchSetResult().MarshalJSON()
	sideBySide(b,
		path{"json", func(b *testing.B) {
			var r SetResult
			if err := r.UnmarshalJSON(data); err != nil {
				b.Fatal(err)
			}
			sinkResult = r
		}},
	)
}

// BenchmarkWriteSetResult writes the answer of a set: no fast path.
func BenchmarkWriteSetResult(b *testing.B) {
	r := benchSetResult()
	sideBySide(b,
		path{"json", func(b *testing.B) {
			sinkBytes, _ = r.MarshalJSON()
		}},
	)
}

// BenchmarkDecodeSetRequest decodes a set request as the service does, checks
// included: no fast path.
func BenchmarkDecodeSetRequest(b *testing.B) {
	data := EncodeSetRequest(benchSetRequest())
	sideBySide(b,
		path{"json", func(b *testing.B) {
			req, err := DecodeSetRequest("sip:alice@contoso.com", data)
			if err != nil {
				b.Fatal(err)
			}
			sinkRequest = req
		}},
	)
}

// BenchmarkEncodeSetRequest writes a set request: no fast path.
func BenchmarkEncodeSetRequest(b *testing.B) {
	req := benchSetRequest()
	sideBySide(b,
		path{"json", func(b *testing.B) {
			sinkBytes = EncodeSetRequest(req)
		}},
	)
}

// BenchmarkDecodeStatusesRequest decodes a statuses request of 256 contacts as
// the service does per batch a subscriber reads, checks included; "json" is
// the field by field reader on encoding/json, which names what is wrong.
func BenchmarkDecodeStatusesRequest(b *testing.B) {
	data := EncodeStatusesRequest(benchContacts, 1234567)
	for _, path := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"json", false}} {
		b.Run(path.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				contacts, _, err := decodeStatusesRequest(data, path.fast)
				if err != nil {
					b.Fatal(err)
				}
				sinkContacts = contacts
			}
		})
	}
}

// BenchmarkEncodeStatusesRequest writes what a subscriber writes per batch.
func BenchmarkEncodeStatusesRequest(b *testing.B) {
	sideBySide(b,
		path{"fast", func(b *testing.B) {
			sinkBytes = EncodeStatusesRequest(benchContacts, 1234567)
		}},
		path{"json", func(b *testing.B) {
			sinkBytes = marshal(b, statusesRequestJSON{Contacts: benchContacts, MinSeq: 1234567})
		}},
	)
}

// BenchmarkEncodeReadRequest writes the body of a status read with a min_seq:
// no fast path.
func BenchmarkEncodeReadRequest(b *testing.B) {
	sideBySide(b,
		path{"json", func(b *testing.B) {
			sinkBytes = EncodeReadRequest(1234567)
		}},
	)
}
