package audit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// quietPebble discards Pebble's messages.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func set(t *testing.T, e *enginetest.Running, contact string, s events.Status, name string) client.SetResult {
	t.Helper()
	r, err := e.Writer().Set(natstest.Context(t), client.SetRequest{Contact: contact, Status: s, Name: name})
	if err != nil {
		t.Fatalf("set %s %s: %v", contact, s, err)
	}
	return r
}

// randomSets sets n random statuses across contacts, invisible and offline
// included, and returns the results of those that appended an event.
func randomSets(t *testing.T, e *enginetest.Running, rng *rand.Rand, contacts []string, n int) []client.SetResult {
	t.Helper()
	statuses := []events.Status{events.Online, events.Away, events.Busy, events.Invisible, events.Offline, events.OnThePhone}
	var out []client.SetResult
	for range n {
		c := contacts[rng.IntN(len(contacts))]
		r := set(t, e, c, statuses[rng.IntN(len(statuses))], "Name of "+c)
		if r.Changed {
			out = append(out, r)
		}
	}
	return out
}

func replayAll(t *testing.T, l *audit.Log, q audit.Query) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	if _, err := l.Replay(natstest.Context(t), q, func(e audit.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("replay %+v: %v", q, err)
	}
	return out
}

var contacts = []string{"sip:alice@contoso.com", "sip:bob@contoso.com", "carol", "dave@example.org", "erin"}

func TestReplayEqualsTheLog(t *testing.T) {
	s := natstest.Start(t)
	e := enginetest.Start(t, t.TempDir(), engine.Options{NATSURL: s.ClientURL()})
	rng := rand.New(rand.NewPCG(1, 2))
	acked := randomSets(t, e, rng, contacts, 300)
	_, js := natstest.JetStream(t, s)
	raw := natstest.ReadStream(t, js, events.LogStream)
	log := audit.NewLog(js, "")

	all := replayAll(t, log, audit.Query{})
	if len(all) != len(raw) || len(all) != len(acked) {
		t.Fatalf("replay has %d events, the log %d, %d sets were acknowledged", len(all), len(raw), len(acked))
	}
	for i, m := range raw {
		md, _ := m.Metadata()
		want, err := events.DecodeEvent(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if all[i].Seq != md.Sequence.Stream || all[i].Event != want {
			t.Fatalf("replay entry %d = seq %d %+v, log has seq %d %+v", i, all[i].Seq, all[i].Event, md.Sequence.Stream, want)
		}
		if a := acked[i]; a.Seq != all[i].Seq || a.Status != all[i].Status || a.Previous != all[i].Previous {
			t.Fatalf("replay entry %d = seq %d %s -> %s, the set was acknowledged as seq %d %s -> %s",
				i, all[i].Seq, all[i].Previous, all[i].Status, a.Seq, a.Previous, a.Status)
		}
	}

	// One contact, or two: exactly their events, in order.
	for _, sel := range [][]string{{"carol"}, {"sip:bob@contoso.com", "erin"}} {
		got := replayAll(t, log, audit.Query{Contacts: sel})
		want := slices.DeleteFunc(slices.Clone(all), func(e audit.Entry) bool { return !slices.Contains(sel, e.Contact) })
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("replay of %v: %d events, want %d", sel, len(got), len(want))
		}
	}
	// A contact never seen: nothing, at once.
	if got := replayAll(t, log, audit.Query{Contacts: []string{"nobody"}}); len(got) != 0 {
		t.Errorf("replay of a never-seen contact: %d events", len(got))
	}

	// Sequence bounds are inclusive.
	from, to := all[50].Seq, all[120].Seq
	if got := replayAll(t, log, audit.Query{FromSeq: from, ToSeq: to}); !slices.Equal(got, all[50:121]) {
		t.Errorf("replay of seq %d..%d: %d events, want %d", from, to, len(got), 71)
	}
	// Time bounds select by the events' own times.
	since, until := all[100].At, all[200].At
	var want []audit.Entry
	for _, e := range all {
		if !e.At.Before(since) && !e.At.After(until) {
			want = append(want, e)
		}
	}
	if got := replayAll(t, log, audit.Query{Since: since, Until: until}); !slices.Equal(got, want) {
		t.Errorf("replay of %s..%s: %d events, want %d", since, until, len(got), len(want))
	}
	// A replay stops when its handler says so, with the handler's error.
	stop := errors.New("enough")
	n := 0
	_, err := log.Replay(natstest.Context(t), audit.Query{}, func(audit.Entry) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("replay stopped after %d events with %v, want 3 and %v", n, err, stop)
	}
	// Bad queries are refused, naming the value.
	for _, q := range []audit.Query{
		{Contacts: []string{"has space"}},
		{FromSeq: 10, ToSeq: 5},
		{Since: until, Until: since},
	} {
		if _, err := log.Replay(natstest.Context(t), q, func(audit.Entry) error { return nil }); err == nil {
			t.Errorf("replay %+v: no error", q)
		}
	}
}

// history sets statuses of one contact one by one, with another contact's
// events in between so that its sequences are not consecutive, and returns its
// events as the log holds them.
func history(t *testing.T, e *enginetest.Running, log *audit.Log, contact string, statuses []events.Status) []audit.Entry {
	t.Helper()
	for i, s := range statuses {
		set(t, e, contact, s, fmt.Sprintf("Carol %d", i))
		set(t, e, "other", []events.Status{events.Online, events.Away}[i%2], "")
	}
	h := replayAll(t, log, audit.Query{Contacts: []string{contact}})
	if len(h) != len(statuses) {
		t.Fatalf("history of %s has %d events, want %d", contact, len(h), len(statuses))
	}
	return h
}

func TestAt(t *testing.T) {
	s := natstest.Start(t)
	e := enginetest.Start(t, t.TempDir(), engine.Options{NATSURL: s.ClientURL()})
	_, js := natstest.JetStream(t, s)
	log := audit.NewLog(js, "")
	const carol = "sip:carol@contoso.com"
	statuses := []events.Status{events.Online, events.Away, events.Invisible, events.Offline, events.Busy, events.Invisible, events.Online}
	// What everyone else saw after each event, by hand: invisible reads offline,
	// and a hidden change (invisible <-> offline) leaves the visible seq as it
	// was. That seq is a feed position: visible changes only, of every contact.
	visible := []events.Status{events.Online, events.Away, events.Offline, events.Offline, events.Busy, events.Offline, events.Online}
	visibleAt := []int{0, 1, 2, 2, 4, 5, 6} // index of the event of the last visible change
	h := history(t, e, log, carol, statuses)
	positions := enginetest.FeedPositions(enginetest.ReadLog(t, js))

	check := func(at audit.Point, i int) {
		t.Helper()
		st, seen, err := log.At(natstest.Context(t), carol, at)
		if err != nil {
			t.Fatalf("at %s: %v", at, err)
		}
		if i < 0 {
			if seen || st.Status != events.Unknown || st.Visible.Status != events.Unknown || st.Seq != 0 {
				t.Errorf("at %s (before the first event): seen %v, %s / %s seq %d; want unknown", at, seen, st.Status, st.Visible.Status, st.Seq)
			}
			return
		}
		if !seen || st.Status != statuses[i] || st.Seq != h[i].Seq || st.Name != fmt.Sprintf("Carol %d", i) {
			t.Errorf("at %s: self %s seq %d %q, want %s seq %d", at, st.Status, st.Seq, st.Name, statuses[i], h[i].Seq)
		}
		if v, want := st.Visible, positions[h[visibleAt[i]].Seq]; v.Status != visible[i] || v.Seq != want || v.Status == events.Invisible {
			t.Errorf("at %s: status %s seq %d, want %s at feed position %d (log seq %d)", at, v.Status, v.Seq, visible[i], want, h[visibleAt[i]].Seq)
		}
	}
	check(audit.Point{Time: h[0].At.Add(-time.Nanosecond)}, -1)
	for i := range h {
		check(audit.Point{Seq: h[i].Seq}, i)
		check(audit.Point{Seq: h[i].Seq + 1}, i) // the other contact's event after it
		check(audit.Point{Time: h[i].At}, i)
		if i+1 < len(h) {
			check(audit.Point{Time: h[i].At.Add(h[i+1].At.Sub(h[i].At) / 2)}, i)
		}
	}
	check(audit.Point{Time: time.Now()}, len(h)-1)

	// Nothing, both, or what the log does not know yet: the future, or past its end.
	for _, p := range []audit.Point{{}, {Seq: 3, Time: time.Now()}, {Time: time.Now().Add(time.Hour)}, {Seq: 1 << 40}} {
		_, _, err := log.At(natstest.Context(t), carol, p)
		checkBadQuery(t, fmt.Sprintf("at %+v", p), err)
	}
}

// checkBadQuery checks a refused query's error: ErrBadQuery to errors.Is, and
// a text for the user without the sentinel's "audit: bad query" in it.
func checkBadQuery(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, audit.ErrBadQuery) {
		t.Errorf("%s: %v, want ErrBadQuery", what, err)
		return
	}
	if msg := err.Error(); strings.Contains(msg, audit.ErrBadQuery.Error()) || strings.HasPrefix(msg, "audit:") {
		t.Errorf("%s: error %q carries the package's prefix; want only what is refused and what is accepted", what, msg)
	}
}

// TestBadQueryText: every refused query is ErrBadQuery to errors.Is, and says
// what is refused without the package's prefix.
func TestBadQueryText(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		q    audit.Query
		want string
	}{
		{"from after to", audit.Query{FromSeq: 5, ToSeq: 3}, "from seq 5 is after to seq 3"},
		{"since after until", audit.Query{Since: now, Until: now.Add(-time.Hour)}, "since " + now.Format(time.RFC3339Nano) + " is after until "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			checkBadQuery(t, "Validate", err)
			if err != nil && !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Validate: error %q, want it to begin %q", err, tt.want)
			}
		})
	}
}

func verify(t *testing.T, js jetstream.JetStream, p *projections.Projection) *audit.VerifyReport {
	t.Helper()
	r, err := audit.Verify(natstest.Context(t), audit.VerifyConfig{JetStream: js, Projection: p, TempDir: t.TempDir(),
		FeedWait: 2 * time.Second, Logger: natstest.Logger(t)})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

// hasDifference reports whether r lists a difference of contact at seq whose
// What starts with what.
func hasDifference(r *audit.VerifyReport, contact string, seq uint64, what string) bool {
	for _, d := range r.Differences {
		if d.Contact == contact && d.Seq == seq && strings.HasPrefix(d.What, what) {
			return true
		}
	}
	return false
}

// waitFeed waits until the engine's feed has derived the log up to seq,
// polling its position (the feed has no event to wait on).
func waitFeed(t *testing.T, e *enginetest.Running, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for e.Metrics().Feed.Position < seq {
		if time.Now().After(deadline) {
			t.Fatalf("the feed is at log seq %d after 20s, want %d", e.Metrics().Feed.Position, seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestVerifyHealthy(t *testing.T) {
	s := natstest.Start(t)
	e := enginetest.Start(t, t.TempDir(), engine.Options{NATSURL: s.ClientURL()})
	acked := randomSets(t, e, rand.New(rand.NewPCG(3, 4)), contacts, 200)
	// Verify checks the log up to the projection's checkpoint: let it get there.
	if err := e.Projection().WaitApplied(natstest.Context(t), acked[len(acked)-1].Seq); err != nil {
		t.Fatal(err)
	}
	waitFeed(t, e, acked[len(acked)-1].Seq)
	_, js := natstest.JetStream(t, s)
	var progress atomic.Uint64
	r, err := e.Verify(natstest.Context(t), func(p projections.Progress) { progress.Store(p.Done) })
	if err != nil {
		t.Fatal(err)
	}
	feed := natstest.ReadStream(t, js, events.FeedStream)
	if !r.OK() || r.Seq != acked[len(acked)-1].Seq || r.Events != uint64(len(acked)) ||
		r.Contacts != uint64(len(contacts)) || r.FeedEntries != uint64(len(feed)) || r.Changes != uint64(len(feed)) {
		t.Errorf("verify of a healthy engine: %+v; want ok, seq %d, %d events, %d contacts, %d feed entries",
			r, acked[len(acked)-1].Seq, len(acked), len(contacts), len(feed))
	}
	if r.Digest != r.Fresh || r.Digest.Seq != r.Seq {
		t.Errorf("digests differ on a healthy engine: %s, fresh %s", r.Digest, r.Fresh)
	}
	if progress.Load() != r.Seq {
		t.Errorf("last progress reported %d, want %d", progress.Load(), r.Seq)
	}
}

func TestVerifyFindsAlteredProjection(t *testing.T) {
	s := natstest.Start(t)
	dir := t.TempDir()
	e := enginetest.Start(t, dir, engine.Options{NATSURL: s.ClientURL()})
	acked := randomSets(t, e, rand.New(rand.NewPCG(5, 6)), contacts, 100)
	if err := e.Projection().WaitApplied(natstest.Context(t), acked[len(acked)-1].Seq); err != nil {
		t.Fatal(err)
	}
	e.Stop(t)
	// Alter one contact's stored status behind the projection's back: the state
	// value is a version byte, then the status as a big-endian uint16.
	var victim client.SetResult
	for _, a := range slices.Backward(acked) {
		if a.Contact == "carol" {
			victim = a
			break
		}
	}
	db, err := pebble.Open(filepath.Join(dir, "projection"), &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("s/carol")
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	altered := slices.Clone(v)
	closer.Close()
	forged := events.Busy
	if victim.Status == events.Busy {
		forged = events.Away
	}
	altered[1], altered[2] = byte(forged>>8), byte(forged)
	if err := db.Set(key, altered, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	p, err := projections.Open(filepath.Join(dir, "projection"), projections.Options{Logger: natstest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, js := natstest.JetStream(t, s)
	r := verify(t, js, p)
	if r.OK() || !hasDifference(r, "carol", victim.Seq, "projection: status") {
		t.Fatalf("verify of an altered projection: %+v; want a difference of carol's status at seq %d", r, victim.Seq)
	}
	for _, d := range r.Differences {
		if d.What == "projection: status" && (d.Expected != victim.Status.String() || d.Found != forged.String()) {
			t.Errorf("difference %s: want expected %s, found %s", d, victim.Status, forged)
		}
	}
	if r.Digest == r.Fresh {
		t.Errorf("the digest of an altered projection equals the fresh one: %s", r.Digest)
	}
}

func TestVerifyFindsFeedDamage(t *testing.T) {
	s := natstest.Start(t)
	// The engine's feed refuses deletes; this one, created before the engine
	// starts, lets the test remove an entry.
	_, js := natstest.JetStream(t, s)
	cfg := jetstream.StreamConfig{Name: events.FeedStream, Subjects: []string{events.ChangesPrefix + ">"}, Storage: jetstream.FileStorage}
	if _, err := js.CreateStream(natstest.Context(t), cfg); err != nil {
		t.Fatal(err)
	}
	e := enginetest.Start(t, t.TempDir(), engine.Options{NATSURL: s.ClientURL()})
	acked := randomSets(t, e, rand.New(rand.NewPCG(7, 8)), contacts, 100)
	if err := e.Projection().WaitApplied(natstest.Context(t), acked[len(acked)-1].Seq); err != nil {
		t.Fatal(err)
	}
	waitFeed(t, e, acked[len(acked)-1].Seq)
	feed := natstest.ReadStream(t, js, events.FeedStream)
	if len(feed) < 20 {
		t.Fatalf("only %d feed entries", len(feed))
	}
	entry := func(i int) (events.Change, uint64) {
		c, err := events.DecodeChange(feed[i].Data())
		if err != nil {
			t.Fatal(err)
		}
		md, _ := feed[i].Metadata()
		return c, md.Sequence.Stream
	}
	stream, err := js.Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}

	logSeqOf := map[uint64]uint64{} // feed position -> log seq
	for logSeq, pos := range enginetest.FeedPositions(enginetest.ReadLog(t, js)) {
		logSeqOf[pos] = logSeq
	}
	// The engine's verify opens each entry's log reference, which must name
	// its event.
	engineVerify := func() *audit.VerifyReport {
		t.Helper()
		r, err := e.Verify(natstest.Context(t), nil)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return r
	}
	if r := engineVerify(); !r.OK() || r.FeedEntries != uint64(len(feed)) || r.Changes != uint64(len(feed)) {
		t.Fatalf("verify of the healthy feed: %+v; want nothing wrong, %d entries for as many changes", r, len(feed))
	}

	// Removed: the entry is missing, named by contact and log sequence.
	removed, feedSeq := entry(7)
	if err := stream.DeleteMsg(natstest.Context(t), feedSeq); err != nil {
		t.Fatal(err)
	}
	r := verify(t, js, e.Projection())
	if r.Count != 1 || !hasDifference(r, removed.Contact, logSeqOf[feedSeq], "feed: missing entry") {
		t.Fatalf("verify with feed entry %d removed: %+v; want one missing entry for %s at seq %d", feedSeq, r, removed.Contact, logSeqOf[feedSeq])
	}

	// Repeated: a copy of an entry, its log reference with it, appended to
	// the feed: its reference names an event whose entry is in the feed
	// already. Only the engine's verify, which can open it, tells.
	repeated, repeatedSeq := entry(3)
	copied := &nats.Msg{Subject: events.ChangeSubject(repeated.Contact), Data: feed[3].Data(),
		Header: nats.Header{events.LogRefHeader: []string{feed[3].Headers().Get(events.LogRefHeader)}}}
	if _, err := js.PublishMsg(natstest.Context(t), copied); err != nil {
		t.Fatal(err)
	}
	if r := verify(t, js, e.Projection()); r.Count != 1 {
		t.Errorf("verify without the engine's key, a feed entry repeated past the last change: %+v; want only the missing one", r)
	}
	r = engineVerify()
	if r.Count != 2 || !hasDifference(r, repeated.Contact, logSeqOf[repeatedSeq], "feed: entry for no visible change") {
		t.Fatalf("verify with feed entry repeated: %+v; want it named (%s at seq %d) beside the missing one", r, repeated.Contact, logSeqOf[repeatedSeq])
	}

	// An entry whose log reference does not open.
	if _, err := js.PublishMsg(natstest.Context(t), &nats.Msg{Subject: copied.Subject, Data: []byte("not an entry"),
		Header: nats.Header{events.LogRefHeader: []string{"forged"}}}); err != nil {
		t.Fatal(err)
	}
	if r := engineVerify(); r.Count != 3 || !hasDifference(r, "", 0, "feed: log reference") {
		t.Errorf("verify with an entry whose reference does not open: %+v; want it named beside the other two", r)
	}
}

func TestVerifyFindsBrokenChain(t *testing.T) {
	s := natstest.Start(t)
	e := enginetest.Start(t, t.TempDir(), engine.Options{NATSURL: s.ClientURL()})
	set(t, e, "carol", events.Online, "Carol")
	set(t, e, "carol", events.Away, "Carol")
	// A forged event whose previous is not what carol had (away).
	_, js := natstest.JetStream(t, s)
	forged := events.Event{Contact: "carol", Name: "Carol", Status: events.Busy, Previous: events.Online,
		At: time.Now().UTC(), Cause: events.CauseUser}
	ack, err := js.Publish(natstest.Context(t), events.EventSubject("carol"), forged.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Projection().WaitApplied(natstest.Context(t), ack.Sequence); err != nil {
		t.Fatal(err)
	}
	waitFeed(t, e, ack.Sequence)
	r := verify(t, js, e.Projection())
	if r.Count != 1 || !hasDifference(r, "carol", ack.Sequence, "chain: previous") ||
		r.Differences[0].Expected != "away" || r.Differences[0].Found != "online" {
		t.Fatalf("verify with a broken chain: %+v; want one chain difference for carol at seq %d (expected away, found online)", r, ack.Sequence)
	}
}

func TestRebuildWhileServing(t *testing.T) {
	s := natstest.Start(t)
	dir := t.TempDir()
	e := enginetest.Start(t, dir, engine.Options{NATSURL: s.ClientURL()})
	randomSets(t, e, rand.New(rand.NewPCG(9, 10)), contacts, 2000)
	before, err := e.Digest(natstest.Context(t))
	if err != nil {
		t.Fatal(err)
	}

	// Reads and writes go on throughout the rebuild, and none fails.
	nc := natstest.Connect(t, s)
	svc := client.New(nc)
	// The load stops between requests, not in the middle of one: a set cut
	// short on the client's side could still be appended after the log's end
	// is read below, and the digests compared at different sequences.
	ctx := natstest.Context(t)
	var stopped atomic.Bool
	stopLoad := func() { stopped.Store(true) }
	firstWrite := make(chan struct{})
	var (
		wg             sync.WaitGroup
		reads, writes  atomic.Uint64
		loadErr        error
		lastSet        atomic.Uint64
		errOnce        sync.Once
		statusesCycled = []events.Status{events.Online, events.Away, events.Busy, events.Invisible}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stopped.Load(); i++ {
			c := contacts[i%len(contacts)]
			res, err := svc.Set(ctx, client.SetRequest{Contact: c, Status: statusesCycled[i%len(statusesCycled)]})
			if err == nil {
				if writes.Add(1) == 1 {
					close(firstWrite)
				}
				lastSet.Store(max(lastSet.Load(), res.Seq))
				_, err = svc.Self(ctx, c, res.Seq) // a read of one's own write, with its log seq
				reads.Add(1)
			}
			if err != nil {
				errOnce.Do(func() { loadErr = err })
				return
			}
		}
	}()
	<-firstWrite // the rebuild starts with the load under way
	var duringRebuild atomic.Uint64
	res, err := e.Rebuild(natstest.Context(t), func(projections.Progress) { duringRebuild.Store(writes.Load()) })
	stopLoad()
	wg.Wait()
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if loadErr != nil {
		t.Fatalf("a request failed during the rebuild: %v", loadErr)
	}
	if writes.Load() == 0 || reads.Load() == 0 {
		t.Fatalf("no load ran during the rebuild")
	}
	t.Logf("%d sets and %d reads, %d of the sets before the rebuild's last progress", writes.Load(), reads.Load(), duringRebuild.Load())
	if res.Seq < before.Seq || res.Digest.Seq != res.Seq {
		t.Errorf("rebuild switched at seq %d (digest at %d), before it the projection was at %d", res.Seq, res.Digest.Seq, before.Seq)
	}
	if m := e.Metrics(); m.OperatorRebuilds != 1 || m.Rebuilds != 0 {
		t.Errorf("metrics after one rebuild asked for: operator_rebuilds %d, rebuilds %d; want 1 and 0", m.OperatorRebuilds, m.Rebuilds)
	}
	// Every set of the load has had its answer: the log's end is the last
	// acknowledged set's, or a set's whose answer was an error.
	_, js := natstest.JetStream(t, s)
	logStream, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	end := logStream.CachedInfo().State.LastSeq
	if end < lastSet.Load() {
		t.Fatalf("the log ends at %d, before the last acknowledged set %d", end, lastSet.Load())
	}
	if err := e.Projection().WaitApplied(natstest.Context(t), end); err != nil {
		t.Fatal(err)
	}
	waitFeed(t, e, end)
	r, err := e.Verify(natstest.Context(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("verify after a rebuild under load: %+v", r)
	}

	// With the log still, the rebuilt projection's digest is the old one's.
	again, err := e.Rebuild(natstest.Context(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != r.Digest {
		t.Errorf("digest of a rebuild %s, of the live projection %s", again.Digest, r.Digest)
	}
	// A restart takes the rebuilt store as it is: no refold.
	e.Stop(t)
	e = enginetest.Start(t, dir, engine.Options{NATSURL: s.ClientURL()})
	if d, err := e.Digest(natstest.Context(t)); err != nil || d != again.Digest || e.Metrics().Rebuilds != 0 {
		t.Errorf("after a restart: digest %s (%v), %d rebuilds; want %s and none", d, err, e.Metrics().Rebuilds, again.Digest)
	}
}

func TestEntryLines(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 5, time.UTC)
	e := audit.Entry{Seq: 42, Event: events.Event{Contact: "sip:zoë@contoso.com", Name: "Zoë \"Z\" \\ <\u2028>",
		Status: events.Invisible, Previous: events.Busy, At: at, Cause: events.CauseEndpoint, RequestID: "r-1"}}
	var got audit.EntryJSON
	if err := json.Unmarshal(e.AppendJSON(nil), &got); err != nil {
		t.Fatalf("AppendJSON wrote %s: %v", e.AppendJSON(nil), err)
	}
	want := audit.EntryJSON{Seq: 42, At: "2026-11-24T10:00:00.000000005Z", Contact: e.Contact, Name: e.Name,
		Previous: events.Busy, Status: events.Invisible, Code: 0x0006, Cause: events.CauseEndpoint, RequestID: "r-1"}
	if got != want {
		t.Errorf("AppendJSON = %+v, want %+v", got, want)
	}
	if got, want := string(e.AppendText(nil)), `42  2026-11-24T10:00:00.000000005Z  sip:zoë@contoso.com  "Zoë \"Z\" \\ <\u2028>"  busy -> invisible  endpoint`+"\n"; got != want {
		t.Errorf("AppendText = %q, want %q", got, want)
	}
	expiry := audit.Entry{Seq: 43, Event: events.Event{Contact: "a", Status: events.Offline, Previous: events.Online, At: at,
		Cause: events.CauseExpiry, Op: events.OpExpire, Endpoint: "desk-1"}}
	if got, want := string(expiry.AppendText(nil)), `43  2026-11-24T10:00:00.000000005Z  a  ""  online -> offline  expiry  expire  endpoint "desk-1"`+"\n"; got != want {
		t.Errorf("AppendText of an endpoint's expiry = %q, want %q", got, want)
	}
	var gotExpiry audit.EntryJSON
	if err := json.Unmarshal(expiry.AppendJSON(nil), &gotExpiry); err != nil || gotExpiry.Op != events.OpExpire || gotExpiry.Endpoint != "desk-1" {
		t.Errorf("AppendJSON of an endpoint's expiry = %s (%v), want its op and endpoint", expiry.AppendJSON(nil), err)
	}
	held, show := expiry, expiry
	held.Held = true
	show.Op, show.Endpoint, show.Previous, show.Shown = events.OpShow, "", events.Offline, events.Online
	if got, want := string(held.AppendText(nil)), `43  2026-11-24T10:00:00.000000005Z  a  ""  online -> offline  expiry  expire  endpoint "desk-1"  held`+"\n"; got != want {
		t.Errorf("AppendText of a change held back = %q, want %q", got, want)
	}
	if got, want := string(show.AppendText(nil)), `43  2026-11-24T10:00:00.000000005Z  a  ""  offline -> offline  expiry  show  shown was online`+"\n"; got != want {
		t.Errorf("AppendText of a show = %q, want %q", got, want)
	}
	var gotHeld, gotShow audit.EntryJSON
	if err := json.Unmarshal(held.AppendJSON(nil), &gotHeld); err != nil || !gotHeld.Held || gotHeld.Shown != events.Unknown {
		t.Errorf("AppendJSON of a change held back = %s (%v), want held", held.AppendJSON(nil), err)
	}
	if err := json.Unmarshal(show.AppendJSON(nil), &gotShow); err != nil || gotShow.Held || gotShow.Shown != events.Online {
		t.Errorf("AppendJSON of a show = %s (%v), want shown online", show.AppendJSON(nil), err)
	}
	e.At = time.Date(2026, 11, 24, 10, 0, 0, 5e8, time.UTC)
	if got := string(e.AppendText(nil)); !strings.Contains(got, "  2026-11-24T10:00:00.500000000Z  ") {
		t.Errorf("AppendText = %q, want the time with every digit of its nanoseconds, as the lines around it", got)
	}
	bad := audit.Entry{Seq: 7}
	if got := string(bad.AppendJSON(nil)); got != `{"seq":7,"malformed":true}`+"\n" {
		t.Errorf("AppendJSON of a record that is not an event = %q", got)
	}
}

// TestReplayUntilWithEnginesClocksApart: two engines whose clocks are each
// within ClockSkew of the server's may be twice that apart. An event stamped
// by a fast engine past the window's end may be followed in the log by one a
// slow engine stamped inside it: the replay must not stop at the first.
func TestReplayUntilWithEnginesClocksApart(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.JetStream(t, s)
	ctx := natstest.Context(t)
	if err := engine.EnsureStreams(ctx, js, engine.StreamOptions{}, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	until := now.Add(-2 * time.Second)
	for _, e := range []events.Event{
		{Contact: "fast", Status: events.Online, Previous: events.Unknown, At: now.Add(audit.ClockSkew - time.Second), Cause: events.CauseUser},
		{Contact: "slow", Status: events.Online, Previous: events.Unknown, At: now.Add(-audit.ClockSkew + time.Second), Cause: events.CauseUser},
	} {
		if _, err := js.Publish(ctx, events.EventSubject(e.Contact), e.Encode()); err != nil {
			t.Fatal(err)
		}
	}
	got := replayAll(t, audit.NewLog(js, ""), audit.Query{Since: now.Add(-10 * time.Minute), Until: until})
	if len(got) != 1 || got[0].Event.Contact != "slow" {
		t.Errorf("replay until %s: %+v, want the slow engine's event only, stamped inside the window", until.Format(time.RFC3339), got)
	}
}
