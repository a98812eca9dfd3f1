package engine_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// request sends a raw request and returns the reply body and the service error
// code ("" when none).
func request(t testing.TB, nc *nats.Conn, subject string, body string) ([]byte, string, string) {
	t.Helper()
	msg, err := nc.Request(subject, []byte(body), 10*time.Second)
	if err != nil {
		t.Fatalf("request %s %s: %v", subject, body, err)
	}
	return msg.Data, msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader)
}

func set(t testing.TB, nc *nats.Conn, contact, body string) client.SetResult {
	t.Helper()
	data, code, desc := request(t, nc, events.SetPrefix+events.Token(contact), body)
	if code != "" {
		t.Fatalf("set %s %s: error %s %s", contact, body, code, desc)
	}
	var res client.SetResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("set reply %s: %v", data, err)
	}
	return res
}

// statusJSON reads presence.status.<token> as raw JSON, with min_seq.
func statusJSON(t testing.TB, nc *nats.Conn, prefix, contact string, minSeq uint64) map[string]any {
	t.Helper()
	data, code, desc := request(t, nc, prefix+events.Token(contact), string(client.EncodeReadRequest(minSeq)))
	if code != "" {
		t.Fatalf("read %s: error %s %s", contact, code, desc)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("reply %s: %v", data, err)
	}
	return m
}

// TestInvisibleNeverReachesSubscribers sets invisible by every spelling the
// service accepts and checks that neither the feed nor status ever shows it, and
// that going invisible looks exactly like going offline.
func TestInvisibleNeverReachesSubscribers(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	nc := r.Connect(t)
	spellings := []string{`"invisible"`, `"MISTATUS_INVISIBLE"`, `"mistatus_invisible"`, `"6"`, `"0x0006"`, `"0X6"`, `6`}
	for i, sp := range spellings {
		t.Run(sp, func(t *testing.T) {
			hidden, control := fmt.Sprintf("sip:hidden%d@contoso.com", i), fmt.Sprintf("sip:control%d@contoso.com", i)

			set(t, nc, hidden, `{"status":"online","name":"Same"}`)
			set(t, nc, control, `{"status":"online","name":"Same"}`)
			toInvisible := set(t, nc, hidden, `{"status":`+sp+`}`)
			toOffline := set(t, nc, control, `{"status":"offline"}`)
			if toInvisible.Status != events.Invisible || toInvisible.Previous != events.Online || !toInvisible.Changed {
				t.Fatalf("set reply %+v, want online -> invisible, changed", toInvisible)
			}

			// status: the same as the control, but for the contact and seq.
			js := r.JetStream(t)
			posH, posC := enginetest.FeedPosition(t, js, toInvisible.Seq), enginetest.FeedPosition(t, js, toOffline.Seq)
			gotH := statusJSON(t, nc, events.StatusPrefix, hidden, posH)
			gotC := statusJSON(t, nc, events.StatusPrefix, control, posC)
			if gotH["status"] != "offline" || gotH["code"] != float64(1) {
				t.Errorf("status of invisible contact = %v, want offline code 1", gotH)
			}
			if gotH["seq"] != float64(posH) {
				t.Errorf("status seq = %v, want %d (the feed position of the online -> invisible change)", gotH["seq"], posH)
			}
			delete(gotH, "contact")
			delete(gotC, "contact")
			delete(gotH, "seq")
			delete(gotC, "seq")
			if !jsonEqual(gotH, gotC) {
				t.Errorf("status of invisible contact %v differs from offline contact %v", gotH, gotC)
			}
			// self tells the contact the truth.
			if self := statusJSON(t, nc, events.SelfPrefix, hidden, toInvisible.Seq); self["status"] != "invisible" || self["code"] != float64(6) {
				t.Errorf("self of invisible contact = %v, want invisible code 6", self)
			}

			// invisible -> offline -> invisible: no visible change at all.
			before := statusJSON(t, nc, events.StatusPrefix, hidden, 0)
			set(t, nc, hidden, `{"status":"offline","name":"Renamed"}`)
			b := set(t, nc, hidden, `{"status":`+sp+`}`)
			if err := r.Projection().WaitApplied(natstest.Context(t), b.Seq); err != nil {
				t.Fatal(err)
			}
			afterJSON := statusJSON(t, nc, events.StatusPrefix, hidden, 0)
			if !jsonEqual(before, afterJSON) {
				t.Errorf("status changed across hidden changes: before %v, after %v", before, afterJSON)
			}
			r.WaitFeed(t)
			var entries []events.Change
			for _, fe := range enginetest.ReadFeed(t, r.JetStream(t)) {
				if fe.Change.Contact == hidden || fe.Change.Contact == control {
					entries = append(entries, fe.Change)
				}
			}
			// online, then the change away from online, for each contact: the
			// invisible one's entries equal the offline one's but for contact/seq/at.
			if len(entries) != 4 {
				t.Fatalf("feed entries for the pair = %d, want 4: %+v", len(entries), entries)
			}
			var h, c []events.Change
			for _, e := range entries {
				if e.Contact == hidden {
					h = append(h, e)
				} else {
					c = append(c, e)
				}
			}
			for i := range h {
				if h[i].Previous != c[i].Previous || h[i].Name != c[i].Name {
					t.Errorf("feed entry %d: invisible contact %+v, offline contact %+v; want the same previous and name", i, h[i], c[i])
				}
				if h[i].Previous == events.Invisible {
					t.Errorf("feed entry carries invisible: %+v", h[i])
				}
			}
			if h[1].Previous != events.Online {
				t.Errorf("online -> invisible entry has previous %s, want online", h[1].Previous)
			}
		})
	}
}

func jsonEqual(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestFirstInvisibleLooksLikeFirstOffline: unknown -> invisible is in the feed,
// shown as unknown -> offline.
func TestFirstInvisibleLooksLikeFirstOffline(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	nc := r.Connect(t)
	set(t, nc, "first-invisible", `{"status":"invisible"}`)
	set(t, nc, "first-offline", `{"status":"offline"}`)
	r.WaitFeed(t)
	feed := enginetest.ReadFeed(t, r.JetStream(t))
	if len(feed) != 2 {
		t.Fatalf("feed has %d entries, want 2: %+v", len(feed), feed)
	}
	for i, want := range []string{"first-invisible", "first-offline"} {
		got := feed[i]
		if got.FeedSeq != uint64(i+1) || got.Change.Contact != want || got.Change.Previous != events.Unknown {
			t.Errorf("feed entry %d = %+v, want %s at feed seq %d, previous unknown", i, got, want, i+1)
		}
	}
	sa := statusJSON(t, nc, events.StatusPrefix, "first-invisible", 1)
	sb := statusJSON(t, nc, events.StatusPrefix, "first-offline", 2)
	if sa["status"] != "offline" || sb["status"] != "offline" || sa["seq"] != float64(1) || sb["seq"] != float64(2) {
		t.Errorf("status = %v and %v, want offline for both, at feed positions 1 and 2", sa, sb)
	}

}
