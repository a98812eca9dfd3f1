package engine_test

import (
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// v1Entry is a feed entry as engines wrote it before feed positions: version 1,
// with the log sequence of its event.
type v1Entry struct {
	V        int           `json:"v"`
	Contact  string        `json:"contact"`
	Name     string        `json:"name,omitempty"`
	Previous events.Status `json:"previous"`
	Seq      uint64        `json:"seq"`
	At       string        `json:"at"`
}

// TestUpgradeFromLogSequences starts an engine on a data directory as engines
// left it before positions counted visible changes only: a feed of version 1
// entries (each with the log sequence of its event, numbered from past 1, as
// a feed purged once was), a projection of store format 2 (a 16-byte
// checkpoint, views at log sequences), and no bucket of the engines' own. The
// engine upgrades on start, and says so at Info: the projection is rebuilt
// from the log, the feed deleted and derived again as version 2 entries at
// their feed positions from 1, and reads answer in feed positions.
func TestUpgradeFromLogSequences(t *testing.T) {
	dir := t.TempDir()
	r := enginetest.Start(t, dir, engine.Options{})
	ctx := natstest.Context(t)
	for _, set := range []client.SetRequest{
		{Contact: "sip:alice@contoso.com", Status: events.Online, Name: "Alice"},
		{Contact: "sip:alice@contoso.com", Status: events.Offline},
		{Contact: "sip:alice@contoso.com", Status: events.Invisible}, // hidden
		{Contact: "sip:bob@contoso.com", Status: events.Online, Name: "Bob"},
		{Contact: "sip:alice@contoso.com", Status: events.Offline}, // hidden
		{Contact: "sip:alice@contoso.com", Status: events.Busy},
	} {
		if _, err := r.Writer().Set(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitFeed(t)
	r.Stop(t)

	// The feed, on the same store, as the engine before made it.
	s := natstest.StartWith(t, natstest.Options{StoreDir: dir})
	_, js := natstest.JetStream(t, s)
	log := enginetest.ReadLog(t, js)
	if err := js.DeleteStream(ctx, events.FeedStream); err != nil {
		t.Fatal(err)
	}
	feed, err := js.CreateStream(ctx, engine.FeedStreamConfig(engine.StreamOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, events.ChangeSubject("sip:gone@contoso.com"), []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := feed.Purge(ctx); err != nil { // a purge keeps the numbering: the next entry is at 2
		t.Fatal(err)
	}
	var visible int
	for _, le := range log {
		c, ok := events.ChangeOf(le.Event)
		if !ok {
			continue
		}
		visible++
		data, err := json.Marshal(v1Entry{V: 1, Contact: c.Contact, Name: c.Name, Previous: c.Previous, Seq: le.Seq,
			At: c.At.Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, events.ChangeSubject(c.Contact), data); err != nil {
			t.Fatal(err)
		}
	}
	if visible == len(log) {
		t.Fatal("the log has no hidden change: feed positions and log sequences would not part")
	}
	old, err := feed.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, events.EngineBucket); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()

	// The projection in format 2, with a contact only it holds.
	db, err := pebble.Open(filepath.Join(dir, "projection"), &pebble.Options{Logger: pebbleToTest{t}})
	if err != nil {
		t.Fatal(err)
	}
	state, closer, err := db.Get([]byte("s/sip:alice@contoso.com"))
	if err != nil {
		t.Fatal(err)
	}
	stale := append([]byte(nil), state...)
	closer.Close()
	checkpoint := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, log[len(log)-1].Seq), 7)
	for k, v := range map[string][]byte{"m/format": []byte("presence-projection-2"), "m/checkpoint": checkpoint,
		"s/sip:stale@contoso.com": stale} {
		if err := db.Set([]byte(k), v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	var logs natstest.LockedBuffer
	r = enginetest.Start(t, dir, engine.Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	r.WaitFeed(t)
	js = r.JetStream(t)
	checkFeed(t, js) // version 2 entries at their feed positions, with refs that open

	if feed, err = js.Stream(ctx, events.FeedStream); err != nil {
		t.Fatal(err)
	}
	info := feed.CachedInfo()
	if info.State.FirstSeq != 1 || info.State.LastSeq != uint64(visible) || !info.Created.After(old.Created) {
		t.Errorf("the feed after the upgrade: first seq %d, last %d, created %s; want 1 and %d, created again after %s",
			info.State.FirstSeq, info.State.LastSeq, info.Created, visible, old.Created)
	}
	if m := r.Metrics(); m.Feed.Purges != 1 {
		t.Errorf("the feed was derived again %d times, want once", m.Feed.Purges)
	}
	if cp := r.Projection().Checkpoint(); cp.Seq != log[len(log)-1].Seq || cp.Feed != uint64(visible) {
		t.Errorf("projection checkpoint %+v, want log seq %d, feed position %d", cp, log[len(log)-1].Seq, visible)
	}
	alice, err := r.Reader().Status(ctx, "sip:alice@contoso.com", uint64(visible))
	if err != nil || alice.Status != events.Busy || alice.Seq != uint64(visible) || alice.Name != "Alice" {
		t.Errorf("status of alice = %+v, %v; want busy at feed position %d", alice, err, visible)
	}
	if st, err := r.Reader().Status(ctx, "sip:stale@contoso.com", 0); err != nil || st.Status != events.Unknown {
		t.Errorf("status of a contact only the old projection held = %+v, %v; want unknown: the projection is rebuilt from the log", st, err)
	}

	// Said at Info, each, and nothing louder about either.
	said := func(level, text string) bool {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, `"level":"`+level+`"`) && strings.Contains(line, text) {
				return true
			}
		}
		return false
	}
	for _, text := range []string{"projection: stored in an older format", "feed: deriving the feed again", "of an older format"} {
		if !said("INFO", text) {
			t.Errorf("the engine did not say at Info %q; it logged:\n%s", text, logs.String())
		}
	}
	for _, level := range []string{"WARN", "ERROR"} {
		for _, text := range []string{"projection:", "feed:"} {
			if said(level, text) {
				t.Errorf("the engine logged a %s line about %q during an upgrade:\n%s", level, text, logs.String())
			}
		}
	}
}

// pebbleToTest sends what Pebble reports to the test's log.
type pebbleToTest struct{ t testing.TB }

func (l pebbleToTest) Infof(format string, args ...any)  { l.t.Logf("pebble: "+format, args...) }
func (l pebbleToTest) Errorf(format string, args ...any) { l.t.Logf("pebble: "+format, args...) }
func (l pebbleToTest) Fatalf(format string, args ...any) { l.t.Fatalf("pebble: "+format, args...) }
