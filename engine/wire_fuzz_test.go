package engine

import (
	"errors"
	"testing"

	"github.com/presence-engine/presence/events"
)

func FuzzDecodeSetRequest(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"status":"away"}`, `{"status":34,"name":"Alice","request_id":"r-1","expect_seq":3,"cause":"endpoint"}`,
		`{"status":"idle","cause":"endpoint"}`, `{"status":"invisible","expect_seq":0}`, `{"status":"0x0200"}`,
		`{"status":"away","expect_seq":-1}`, `{"status":"away","colour":1}`, `[1]`, `null`, "{\"status\":\"away\",\"name\":\"\xff\"}",
	} {
		f.Add("sip:alice@contoso.com", []byte(seed))
	}
	f.Fuzz(func(t *testing.T, contact string, data []byte) {
		req, err := DecodeSetRequest(contact, data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeSetRequest(%q) error %v does not wrap ErrBadRequest", data, err)
			}
			return
		}
		// What is accepted is fit for the writer, and survives a round trip.
		if err := req.validate(); err != nil {
			t.Fatalf("DecodeSetRequest(%q) accepted %+v, which the writer refuses: %v", data, req, err)
		}
		if req.Cause == events.CauseEngine {
			t.Fatalf("DecodeSetRequest(%q) accepted the engine's own cause", data)
		}
		again, err := DecodeSetRequest(contact, EncodeSetRequest(req))
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", req, err)
		}
		if again.Status != req.Status || again.Name != req.Name || again.RequestID != req.RequestID ||
			again.Cause != req.Cause || (again.ExpectSeq == nil) != (req.ExpectSeq == nil) ||
			(req.ExpectSeq != nil && *again.ExpectSeq != *req.ExpectSeq) {
			t.Fatalf("round trip of %+v gave %+v", req, again)
		}
	})
}

func FuzzDecodeReadRequest(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"min_seq":5}`, `{"min_seq":-1}`, `{"min_seq":1e3}`, `{"seq":1}`, `"x"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := DecodeReadRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeReadRequest(%q) error %v does not wrap ErrBadRequest", data, err)
			}
			return
		}
		if got, err := DecodeReadRequest(EncodeReadRequest(n)); err != nil || got != n {
			t.Fatalf("round trip of min_seq %d gave %d, %v", n, got, err)
		}
	})
}
