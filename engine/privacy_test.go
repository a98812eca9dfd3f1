package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

var (
	privacySets = flag.Int("privacy.sets", 0,
		"random sets in TestPrivacyInvisibleLooksOffline; zero means 300 (for a longer run: -privacy.sets=5000)")
	privacySeed = flag.Uint64("privacy.seed", 0,
		"seed of TestPrivacyInvisibleLooksOffline's sets; zero means the fixed default")
)

// TestPrivacyInvisibleLooksOffline checks the promise of DESIGN.md §4 as a
// property: an invisible contact looks offline to everyone else.
//
// A random sequence of sets (30 contacts, statuses spelled every way the
// service accepts: canonical and MISTATUS_ names in mixed case, decimal, hex and
// JSON numbers, some padded with spaces) runs twice, each time on a fresh
// engine, through the service as a user would send it: once as generated, and
// once with every invisible replaced by offline. Each run records everything a
// subscriber can observe, after every set (the engine is driven in lockstep, so
// that what a handler's Current reads is the state right after its change in
// both runs, not whatever the timing gave):
//
//   - the feed as a JetStream consumer reads it: subject, headers, stream
//     sequence and every field of every entry, and the feed stream's state;
//   - what handlers are given and read (every Change field and Current), for
//     subscribers reading through the service (Client; following the repeats,
//     and from a consumer of the feed),
//     in-process (LocalReader, filtered to a few contacts), a Hub, and after
//     the fact from the start of the feed (durable, in-process, a Hub started
//     at a feed position);
//   - the feed's repeats on presence.live.> (subject, headers with the
//     status they carry, entry);
//   - status of the contact just set and statuses of every contact (and one
//     never seen) after each set, the statuses a Client reads at the end;
//   - the error replies a subscriber can provoke: bad tokens, bad bodies, bad
//     contacts, and a min_seq that is never reached;
//   - how min_seq behaves: after some sets, a status read with min_seq at the
//     last feed position (answered at once) and one past it (never reached:
//     answered 503 after the read timeout). Were positions log sequences, a
//     hidden change after the last visible one would have the second answered
//     at once, and only in the run with invisible.
//
// The two records must be equal. Since the offline run never holds an
// invisible, equality also proves that no subscriber ever sees "invisible" or
// code 6 in the first run. Every position is compared exactly: the feed
// position of a change (Change.Seq, the feed's stream sequence, the repeat's
// Presence-Feed-Seq header), the seq of a status reply (the feed position of
// the contact's last visible change), the min_seq a read takes and what it
// answers. A hidden change (offline -> invisible and back) is an event of the
// log in the first run and nothing at all in the second (a set of the status
// a contact already has appends nothing), so a log sequence anywhere a
// subscriber looks would differ, and is caught. Every seq a subscriber sees is
// also checked to be 0 (never seen) or the position of a feed entry. What may
// legitimately differ is normalised:
//
//   - Times: "at" is when the engine accepted a change, so it differs between
//     runs. Each "at" is checked to be the one of the feed entry at the same
//     position (feed times are checked to be in order) and is then compared as
//     "the time of change #k".
//   - The feed entry's Presence-Log-Ref header: the log sequence of its event,
//     sealed with a fresh nonce, for engines. It is random by design; each is
//     checked to be of the one length every ref has and to be unlike every
//     other entry's, and is then compared as "a sealed log reference".
//   - The repeats' Presence-Feed-Created header: when the feed was created,
//     at the engine's start. Each is checked to be the feed's, and is then
//     compared as such.
//
// What is left that counts hidden changes is outside what subscribers may
// read: the account's storage, which $JS.API.INFO reports, grows with each
// hidden event, and no role but the engine's may ask for it.
//
// A name given with a hidden set is part of it: offline -> invisible
// {"name":"B"} appends an event named B (self shows it), while in the offline
// run the same set is offline -> offline, which appends nothing and drops the
// name. DESIGN.md §4 settles it: the name is not shown to subscribers until a
// visible change gives it again, so a visible change whose set gives no name
// carries the name of the contact's last visible change, not of its last
// event. The sets give names with hidden and visible sets alike.
//
// self (presence.self.<token>) is the contact's own view, not a subscriber's:
// it must tell invisible from offline, and the test checks that it does, with
// the same comparison, so that it is known to be able to see a difference.
func TestPrivacyInvisibleLooksOffline(t *testing.T) {
	n, seed := 300, uint64(2007)
	if *privacySets > 0 {
		n = *privacySets
	}
	if *privacySeed != 0 {
		seed = *privacySeed
	}
	contacts := privacyContacts(30)
	ops := privacyOps(t, rand.New(rand.NewPCG(seed, 0x6)), contacts, n)
	t.Logf("%d sets over %d contacts, seed %d", len(ops), len(contacts), seed)

	var invisible, offline *privacyWorld
	t.Run("worlds", func(t *testing.T) {
		t.Run("as-set", func(t *testing.T) {
			t.Parallel()
			invisible = runPrivacyWorld(t, contacts, ops, false)
		})
		t.Run("invisible-as-offline", func(t *testing.T) {
			t.Parallel()
			offline = runPrivacyWorld(t, contacts, ops, true)
		})
	})
	if invisible == nil || offline == nil {
		t.Fatal("a run did not finish")
	}

	a, b := invisible.transcript(), offline.transcript()
	for _, w := range []*privacyWorld{invisible, offline} {
		for _, v := range w.violations[:min(len(w.violations), 8)] {
			t.Errorf("%s: %s", w.name, v)
		}
	}
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "self" {
			continue
		}
		if diffs := transcriptDiff(a[k], b[k]); len(diffs) > 0 {
			t.Errorf("%s: a subscriber can tell an invisible contact from an offline one (%d of %d/%d observations differ):\n%s",
				k, len(diffs), len(a[k]), len(b[k]), strings.Join(diffs[:min(len(diffs), 8)], "\n"))
		}
	}
	t.Logf("compared %d kinds of observation, %d observations a run", len(keys)-1, countObservations(a)-len(a["self"]))

	// The contact's own view differs, and the comparison sees it.
	if diffs := transcriptDiff(a["self"], b["self"]); len(diffs) == 0 {
		t.Error("self reads the same in both runs; it must show invisible to the contact itself")
	}
	for i, op := range ops {
		got, gotOff := invisible.selfStatus[i], offline.selfStatus[i]
		want, wantOff := invisible.truth[i], offline.truth[i]
		if got != want || gotOff != wantOff {
			t.Errorf("set %d (%s): self reads %s and %s in the two runs, want %s and %s",
				i, op.contact, got, gotOff, want, wantOff)
		}
	}
}

// privacyContacts returns n contact IDs, some needing their subject token
// escaped.
func privacyContacts(n int) []string {
	out := make([]string, n)
	for i := range out {
		switch i % 10 {
		case 3:
			out[i] = fmt.Sprintf("sip:o'brien.%02d@contoso.com", i)
		case 7:
			out[i] = fmt.Sprintf("sip:zoë+%02d@contoso.com", i)
		default:
			out[i] = fmt.Sprintf("sip:user%02d@contoso.com", i)
		}
	}
	return out
}

// privacyNeverSeen is a contact no set names.
const privacyNeverSeen = "sip:never.seen@contoso.com"

// privacyMarker is set online after the random sets, in both runs: the log then
// ends with a visible change, and an observer that has seen it has seen all.
const privacyMarker = "sip:zz.marker@contoso.com"

// spelling is one way of writing a status in a set request.
type spelling struct {
	kind int    // 0 canonical name, 1 MISTATUS_ name, 2 decimal, 3 hex, 4 JSON number
	bits uint64 // letter case, padding, leading zeros
}

const spellingKinds = 5

// json returns the request's "status" value for s.
func (sp spelling) json(s events.Status) string {
	var text string
	switch sp.kind {
	case 0:
		text = mixCase(s.String(), sp.bits)
	case 1:
		text = mixCase(s.Constant(), sp.bits)
	case 2:
		text = strings.Repeat("0", int(sp.bits>>56&3)) + strconv.Itoa(s.Code())
	case 3:
		prefix := "0x"
		if sp.bits>>55&1 == 1 {
			prefix = "0X"
		}
		text = prefix + mixCase(fmt.Sprintf("%0*x", int(sp.bits>>52&3)+1, s.Code()), sp.bits>>7)
	case 4:
		return strconv.Itoa(s.Code())
	}
	if sp.bits>>60&1 == 1 {
		text = " " + text + " "
	}
	return `"` + text + `"`
}

// mixCase sets the case of each letter of s from a bit of bits.
func mixCase(s string, bits uint64) string {
	b := []byte(s)
	for i, c := range b {
		if bits>>(i%48)&1 == 1 {
			b[i] = byte(strings.ToUpper(string(c))[0])
		} else {
			b[i] = byte(strings.ToLower(string(c))[0])
		}
	}
	return string(b)
}

// privacyOp is one set of the sequence.
type privacyOp struct {
	contact string
	status  events.Status
	spell   spelling
	name    string
	cause   string
}

// status is the status the op sets in a run: invisible becomes offline when
// asOffline.
func (op privacyOp) statusIn(asOffline bool) events.Status {
	if asOffline && op.status == events.Invisible {
		return events.Offline
	}
	return op.status
}

func (op privacyOp) body(asOffline bool) string {
	b := `{"status":` + op.spell.json(op.statusIn(asOffline))
	if op.name != "" {
		b += `,"name":` + strconv.Quote(op.name)
	}
	if op.cause != "" {
		b += `,"cause":"` + op.cause + `"`
	}
	return b + "}"
}

// seenAs is how everyone but the contact sees a status: the test's own model,
// apart from events.Status.Visible, which is under test.
func seenAs(s events.Status) events.Status {
	if s == events.Invisible {
		return events.Offline
	}
	return s
}

// privacyOps generates n sets, heavy on invisible and offline so that every
// kind of hidden change comes up often, then the marker. It fails the test if
// a kind of change the property needs never comes up.
func privacyOps(t testing.TB, rng *rand.Rand, contacts []string, n int) []privacyOp {
	t.Helper()
	others := []events.Status{events.Online, events.Busy, events.BeRightBack, events.Idle, events.Away,
		events.OnThePhone, events.OutToLunch, events.InAMeeting, events.OutOfOffice, events.DoNotDisturb,
		events.InAConference, events.AllowUrgentInterruptions, events.MayBeAvailable, events.Custom}
	names := []string{"", "", "", "Alice", "Bob Ó Briain", "Zoë (phone)", "Dr. Who"}
	ops := make([]privacyOp, 0, n+1)
	// Each contact's status and name in both runs, as the writer keeps them:
	// a set appends (and renames, if it names) only when the status changes.
	type contactState struct {
		status [2]events.Status // in each run
	}
	state := map[string]*contactState{}
	var covered struct {
		toInvisible, fromInvisible, firstInvisible, visibleFromInvisible, namedHidden int
		kinds                                                                         [spellingKinds]int
	}
	for range n {
		op := privacyOp{contact: contacts[rng.IntN(len(contacts))],
			spell: spelling{kind: rng.IntN(spellingKinds), bits: rng.Uint64()}}
		switch p := rng.IntN(100); {
		case p < 35:
			op.status = events.Invisible
		case p < 60:
			op.status = events.Offline
		default:
			op.status = others[rng.IntN(len(others))]
		}
		op.name = names[rng.IntN(len(names))]
		st := state[op.contact]
		if st == nil {
			st = &contactState{}
			state[op.contact] = st
		}
		prev := st.status[0]
		for w, asOffline := range []bool{false, true} {
			st.status[w] = op.statusIn(asOffline)
		}
		switch c := rng.IntN(4); {
		case op.status == events.Idle || c == 0:
			op.cause = "endpoint"
		case c == 1:
			op.cause = "user"
		}
		// Every spelling must be one ParseStatus reads as the op's status,
		// in both runs.
		for _, asOffline := range []bool{false, true} {
			s := op.statusIn(asOffline)
			raw := op.spell.json(s)
			if unq, err := strconv.Unquote(raw); err == nil {
				raw = unq
			}
			if got, err := events.ParseStatus(raw); err != nil || got != s {
				t.Fatalf("spelling %q of %s parses as %v, %v", raw, s, got, err)
			}
		}
		switch {
		case op.status == events.Invisible && prev == events.Unknown:
			covered.firstInvisible++
		case op.status == events.Invisible && prev == events.Offline:
			covered.toInvisible++
			if op.name != "" {
				covered.namedHidden++
			}
		case op.status == events.Offline && prev == events.Invisible:
			covered.fromInvisible++
		case prev == events.Invisible && op.status != events.Invisible:
			covered.visibleFromInvisible++
		}
		if op.status == events.Invisible {
			covered.kinds[op.spell.kind]++
		}
		ops = append(ops, op)
	}
	if covered.toInvisible == 0 || covered.fromInvisible == 0 || covered.firstInvisible == 0 || covered.visibleFromInvisible == 0 || covered.namedHidden == 0 ||
		slices.Contains(covered.kinds[:], 0) {
		t.Fatalf("the sets do not cover every kind of change to or from invisible: %+v; pick another seed or more sets", covered)
	}
	return append(ops, privacyOp{contact: privacyMarker, status: events.Online, name: "Marker"})
}

// privacyWorld is everything subscribers observed in one run, before
// normalisation, and what self read.
type privacyWorld struct {
	mu    sync.Mutex
	obs   map[string][]any // kind of observation -> observations in order
	moved chan struct{}    // closed and replaced on each observation

	name       string
	feedLen    uint64            // entries of the feed: the last feed position
	feedAt     map[uint64]string // feed position -> the entry's "at"
	refs       map[string]bool   // the sealed log references seen on the feed's entries
	created    time.Time         // when the feed was created
	violations []string          // what normalisation found that no subscriber may see

	outOfStep  bool            // an observer missed a change; no more waiting for them
	truth      []events.Status // status of each set's contact after it, by the model
	selfStatus []events.Status // and as self read it
}

func (w *privacyWorld) add(kind string, v any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.obs[kind] = append(w.obs[kind], v)
	close(w.moved)
	w.moved = make(chan struct{})
}

// waitCount waits until kind has at least n observations. When they do not
// come (a change the model calls visible never reached the observer), it fails
// the test and waits no more: the run goes on out of step, and the comparison
// shows the rest.
func (w *privacyWorld) waitCount(t testing.TB, kind string, n int, when string) {
	t.Helper()
	if w.outOfStep {
		return
	}
	const wait = 10 * time.Second
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		got, moved := len(w.obs[kind]), w.moved
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-moved:
		case <-deadline.C:
			t.Errorf("%s: %s has %d observations after %s, want %d: a change everyone else can see did not reach it, or came in a form it refused",
				when, kind, got, wait, n)
			w.outOfStep = true
			return
		}
	}
}

// handler records each change and what Current reads for it.
func (w *privacyWorld) handler(kind string) client.Handler {
	return func(ctx context.Context, c client.Change) error {
		cur, err := c.Current(ctx)
		if err != nil {
			return err // handed over again
		}
		if cur.Seq < c.Seq {
			w.mu.Lock()
			w.violations = append(w.violations, fmt.Sprintf("%s: the change at feed position %d read a status as of position %d, older", kind, c.Seq, cur.Seq))
			w.mu.Unlock()
		}
		w.add(kind, map[string]any{"change": changeObservation(c), "current": replyObservation(cur)})
		return nil
	}
}

func changeObservation(c client.Change) map[string]any {
	return map[string]any{
		"contact": c.Contact, "name": c.Name, "previous": c.Previous.String(), "previous_code": c.Previous.Code(),
		"seq": c.Seq, "at": c.At.UTC().Format(time.RFC3339Nano),
	}
}

func replyObservation(r client.Reply) any {
	b, err := r.MarshalJSON()
	if err != nil {
		return "unencodable reply: " + err.Error()
	}
	return decodeObservation(b)
}

// decodeObservation decodes JSON as it is, numbers as written; what is not JSON
// is kept as text.
func decodeObservation(b []byte) any {
	if len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "not JSON: " + string(b)
	}
	return v
}

// answer records a request's reply as a subscriber gets it: error code and
// description headers and body.
func answer(t testing.TB, nc *nats.Conn, subject, body string) map[string]any {
	t.Helper()
	data, code, desc := request(t, nc, subject, body)
	return map[string]any{"subject": subject, "request": body, "code": code, "description": desc, "body": decodeObservation(data)}
}

// runPrivacyWorld runs the ops on a fresh engine (invisible set as offline when
// asOffline) and returns what subscribers observed.
func runPrivacyWorld(t *testing.T, contacts []string, ops []privacyOp, asOffline bool) *privacyWorld {
	r := enginetest.Start(t, "", engine.Options{ReadTimeout: 250 * time.Millisecond})
	w := &privacyWorld{name: t.Name(), obs: map[string][]any{}, moved: make(chan struct{}), feedAt: map[uint64]string{},
		refs: map[string]bool{}}
	nc := r.Connect(t)
	svc := client.New(r.Connect(t))
	all := append(slices.Clone(contacts), privacyMarker, privacyNeverSeen)
	filtered := []string{contacts[0], contacts[3], contacts[7], privacyNeverSeen}

	// Live observers, from before the first set.
	repeats, err := nc.Subscribe(events.LivePrefix+">", func(m *nats.Msg) {
		// Every header, the carried status decoded (its seq is a feed position).
		header := map[string]any{}
		for k, v := range m.Header {
			if k == client.CurrentHeader && len(v) == 1 {
				header[k] = decodeObservation([]byte(v[0]))
				continue
			}
			header[k] = v
		}
		w.add("repeats", map[string]any{"subject": m.Subject, "header": header, "entry": decodeObservation(m.Data)})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = repeats.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	startPrivacySubscriber(t, w, "subscriber/client", client.SubscriberConfig{Conn: r.Connect(t), Reader: svc})
	startPrivacySubscriber(t, w, "subscriber/consumer", client.SubscriberConfig{Conn: r.Connect(t), Reader: svc, LiveCheck: -1})
	startPrivacySubscriber(t, w, "subscriber/local-filtered", client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Contacts: filtered})
	startPrivacyHub(t, w, "hub", r, client.StartNew())

	// The sets, in lockstep: after each, wait until the projection has
	// applied it and every live observer has seen every visible change so far.
	model := map[string]events.Status{}
	visible, visibleFiltered := 0, 0
	minSeqProbes := 0
	lockstep := []string{"repeats", "subscriber/client", "subscriber/consumer", "hub"}
	for i, op := range ops {
		data, code, desc := request(t, nc, events.SetPrefix+events.Token(op.contact), op.body(asOffline))
		if code != "" {
			t.Fatalf("set %d %s %s: error %s %s", i, op.contact, op.body(asOffline), code, desc)
		}
		var res client.SetResult
		if err := json.Unmarshal(data, &res); err != nil {
			t.Fatalf("set reply %s: %v", data, err)
		}
		if err := r.Projection().WaitApplied(natstest.Context(t), res.Seq); err != nil {
			t.Fatal(err)
		}
		prev, next := model[op.contact], op.statusIn(asOffline)
		model[op.contact] = next
		if seenAs(prev) != seenAs(next) {
			visible++
			if slices.Contains(filtered, op.contact) {
				visibleFiltered++
			}
		}
		when := fmt.Sprintf("after set %d (%s %s)", i, op.contact, op.body(asOffline))
		for _, kind := range lockstep {
			w.waitCount(t, kind, visible, when)
		}
		w.waitCount(t, "subscriber/local-filtered", visibleFiltered, when)

		w.add("status", answer(t, nc, events.StatusPrefix+events.Token(op.contact), ""))
		w.add("statuses", answer(t, nc, events.StatusesSubject, string(client.EncodeStatusesRequest(all, 0))))
		if op.status == events.Invisible && minSeqProbes < 20 {
			// After a set the first run makes invisible (perhaps hidden):
			// min_seq at the last feed position is reached, one past it is
			// not, in both runs (each costs the read timeout).
			minSeqProbes++
			subject := events.StatusPrefix + events.Token(op.contact)
			w.add("min_seq", answer(t, nc, subject, fmt.Sprintf(`{"min_seq":%d}`, visible)))
			w.add("min_seq", answer(t, nc, subject, fmt.Sprintf(`{"min_seq":%d}`, visible+1)))
			w.add("min_seq", answer(t, nc, events.StatusesSubject, string(client.EncodeStatusesRequest([]string{op.contact}, uint64(visible+1)))))
		}
		self, err := svc.Self(natstest.Context(t), op.contact, res.Seq)
		if err != nil {
			t.Fatalf("self of %s: %v", op.contact, err)
		}
		// Only what self says of the status: its seq counts hidden events.
		w.add("self", map[string]any{"status": self.Status.String(), "code": self.Status.Code(), "name": self.Name})
		w.truth = append(w.truth, next)
		w.selfStatus = append(w.selfStatus, self.Status)
	}

	// The feed, as a JetStream consumer of it reads it.
	js := r.JetStream(t)
	for _, m := range natstest.ReadStream(t, js, events.FeedStream) {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		entry := decodeObservation(m.Data())
		headers := map[string]any{}
		for k, v := range m.Headers() {
			headers[k] = strings.Join(v, ", ")
		}
		w.add("feed", map[string]any{"subject": m.Subject(), "headers": headers, "stream_seq": md.Sequence.Stream, "entry": entry})
		if _, err := events.DecodeChange(m.Data()); err != nil {
			w.violations = append(w.violations, fmt.Sprintf("feed entry %d does not decode: %v", md.Sequence.Stream, err))
		}
		pos := md.Sequence.Stream
		if pos != w.feedLen+1 {
			w.violations = append(w.violations, fmt.Sprintf("feed entry %d follows feed entry %d: positions number from 1 with no gap", pos, w.feedLen))
		}
		if at, ok := entry.(map[string]any)["at"].(string); ok {
			if prevAt, ok := w.feedAt[w.feedLen]; ok && timeOf(at).Before(timeOf(prevAt)) {
				w.violations = append(w.violations, fmt.Sprintf("feed entry %d is at %s, before the entry before it (%s)", pos, at, prevAt))
			}
			w.feedAt[pos] = at
		}
		w.feedLen = pos
	}
	if w.feedLen != uint64(visible) {
		t.Errorf("the feed ends at position %d, the sets made %d visible changes", w.feedLen, visible)
	}
	feed, err := js.Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := feed.Info(natstest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	w.created = info.Created
	w.add("feed/state", map[string]any{"msgs": info.State.Msgs, "first_seq": info.State.FirstSeq, "last_seq": info.State.LastSeq,
		"subjects": info.State.NumSubjects, "deleted": info.State.NumDeleted})

	// Observers that start after the fact, from the start of the feed or from
	// the middle.
	startPrivacySubscriber(t, w, "catch-up/durable-client", client.SubscriberConfig{Conn: r.Connect(t), Reader: svc, Durable: "privacy", Start: client.StartAll()})
	startPrivacySubscriber(t, w, "catch-up/local", client.SubscriberConfig{Conn: r.Connect(t), Reader: r.Reader(), Start: client.StartAll()})
	middle := int(w.feedLen) / 2
	startPrivacyHub(t, w, "catch-up/hub-at-seq", r, client.StartAtSeq(uint64(middle+1)))
	w.waitCount(t, "catch-up/durable-client", visible, "at the end")
	w.waitCount(t, "catch-up/local", visible, "at the end")
	w.waitCount(t, "catch-up/hub-at-seq", visible-middle, "at the end")

	// Reads at the end, through a Client.
	replies, err := svc.Statuses(natstest.Context(t), all, w.feedLen)
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range replies {
		w.add("client/statuses", replyObservation(rep))
	}

	// The errors a subscriber can provoke, a min_seq past the feed's end
	// among them.
	probes := [][2]string{
		{events.StatusPrefix + "%zz", ""},
		{events.StatusPrefix + "%2e", ""},
		{events.StatusPrefix + "a%20b", ""},
		{events.StatusPrefix + "a%00b", ""},
		{events.StatusesSubject, ""},
		{events.StatusesSubject, "{"},
		{events.StatusesSubject, `{"contacts":[]}`},
		{events.StatusesSubject, `{"contacts":["a b"]}`},
		{events.StatusesSubject, `{"contacts":"sip:user01@contoso.com"}`},
	}
	for _, c := range all {
		probes = append(probes,
			[2]string{events.StatusPrefix + events.Token(c), `{"min_seq":"1"}`},
			[2]string{events.StatusPrefix + events.Token(c), `{"min_seq":-1}`},
			[2]string{events.StatusPrefix + events.Token(c), `{"status":"invisible"}`},
			[2]string{events.StatusPrefix + events.Token(c), "not json"},
			[2]string{events.StatusesSubject, string(client.EncodeStatusesRequest([]string{c, "bad contact"}, 0))},
			[2]string{events.StatusesSubject, `{"contacts":[` + strconv.Quote(c) + `],"min_seq":"x"}`},
		)
	}
	beyond := strconv.FormatUint(w.feedLen+1000, 10)
	probes = append(probes,
		[2]string{events.StatusPrefix + events.Token(contacts[0]), `{"min_seq":` + beyond + `}`},
		[2]string{events.StatusesSubject, `{"contacts":["` + contacts[0] + `"],"min_seq":` + beyond + `}`})
	for _, p := range probes {
		w.add("errors", answer(t, nc, p[0], p[1]))
	}
	return w
}

func timeOf(s string) time.Time {
	at, _ := time.Parse(time.RFC3339Nano, s)
	return at
}

// startPrivacySubscriber runs a subscriber recording under kind until the test
// ends, and waits until it consumes the feed.
func startPrivacySubscriber(t testing.TB, w *privacyWorld, kind string, cfg client.SubscriberConfig) {
	t.Helper()
	cfg.Logger = natstest.Logger(t)
	sub, err := client.NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx, w.handler(kind)) }()
	t.Cleanup(func() {
		cancel()
		natstest.Stopped(t, "subscriber", done)
	})
	select {
	case <-sub.Ready():
	case err := <-done:
		t.Fatalf("subscriber %s stopped: %v", kind, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("subscriber %s not ready after 20s", kind)
	}
}

// startPrivacyHub runs a hub on the engine's projection, from start, with one
// subscription recording under kind, until the test ends.
func startPrivacyHub(t testing.TB, w *privacyWorld, kind string, r *enginetest.Running, start client.Start) {
	t.Helper()
	hub, err := client.NewHub(client.HubConfig{Conn: r.Connect(t), Reader: r.Reader(), Logger: natstest.Logger(t), Start: start})
	if err != nil {
		t.Fatal(err)
	}
	s := hub.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	hubDone, subDone := make(chan error, 1), make(chan error, 1)
	go func() { hubDone <- hub.Run(ctx) }()
	go func() { subDone <- s.Run(ctx, w.handler(kind)) }()
	t.Cleanup(func() {
		cancel()
		natstest.Stopped(t, "subscriber", subDone)
		natstest.Stopped(t, "subscriber", hubDone)
	})
	select {
	case <-hub.Ready():
	case err := <-hubDone:
		hubDone <- err // for the cleanup
		t.Fatalf("hub %s stopped: %v", kind, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("hub %s not ready after 20s", kind)
	}
}

// transcript normalises every observation (see the test's comment) into one
// line of JSON each, by kind. What a subscriber may never see (a seq that is no
// visible change's position, an "at" that is not its change's, a log
// reference that is not sealed) is kept raw and marked, and added to the
// world's violations.
func (w *privacyWorld) transcript() map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for kind, list := range w.obs {
		lines := make([]string, len(list))
		for i, v := range list {
			before := len(w.violations)
			b, _ := json.Marshal(w.normalise(v, 0))
			lines[i] = string(b)
			if len(w.violations) > before {
				w.violations = append(w.violations, fmt.Sprintf("  in %s #%d: %s", kind, i, lines[i]))
			}
		}
		out[kind] = lines
	}
	return out
}

// sealedRef matches what a feed entry's log reference must look like: 48
// characters of unpadded base64url (a nonce, 8 sealed bytes and a tag).
var sealedRef = regexp.MustCompile(`^[A-Za-z0-9_-]{48}$`)

// normalise returns v as compared between the runs. pos is the feed position
// of the entry v is part of (a feed message's stream_seq, a repeat's
// Presence-Feed-Seq), for the "at" of an entry, which has no seq of its own;
// 0 if none.
func (w *privacyWorld) normalise(v any, pos uint64) any {
	checkSeq := func(s uint64) {
		if s > w.feedLen {
			w.violations = append(w.violations, fmt.Sprintf("a subscriber is shown seq %d, which is no visible change's feed position (the feed ends at %d)", s, w.feedLen))
		}
	}
	switch x := v.(type) {
	case map[string]any:
		if s, ok := uintOf(x["stream_seq"]); ok {
			pos = s
		}
		if h, ok := x["header"].(map[string]any); ok {
			if v, ok := h[client.FeedSeqHeader].([]string); ok && len(v) == 1 {
				if s, err := strconv.ParseUint(v[0], 10, 64); err == nil {
					pos = s
				}
			}
		}
		atPos := pos
		seq, hasSeq := uintOf(x["seq"])
		if hasSeq {
			atPos = seq
			checkSeq(seq)
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			switch {
			case k == "at":
				at, _ := e.(string)
				if want, ok := w.feedAt[atPos]; atPos > 0 && ok && timeOf(at).Equal(timeOf(want)) {
					out[k] = fmt.Sprintf("the time of change #%d", atPos)
				} else {
					w.violations = append(w.violations, fmt.Sprintf("a subscriber is shown the time %s, which is not its change's", at))
					out[k] = "at " + at + ", which is not its change's"
				}
			case k == client.FeedCreatedHeader:
				v, _ := e.([]string)
				if at, err := time.Parse(time.RFC3339Nano, strings.Join(v, "")); err != nil || !at.Equal(w.created) {
					w.violations = append(w.violations, fmt.Sprintf("a repeat says its feed was created at %q, not when the feed was (%s)", v, w.created))
					out[k] = v
				} else {
					out[k] = "when the feed was created"
				}
			case k == events.LogRefHeader:
				ref, _ := e.(string)
				switch {
				case !sealedRef.MatchString(ref):
					w.violations = append(w.violations, fmt.Sprintf("a feed entry's log reference %q is not a sealed one", ref))
					out[k] = ref
				case w.refs[ref]:
					w.violations = append(w.violations, fmt.Sprintf("two feed entries have the log reference %q", ref))
					out[k] = ref
				default:
					w.refs[ref] = true
					out[k] = "a sealed log reference"
				}
			default:
				out[k] = w.normalise(e, pos)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = w.normalise(e, pos)
		}
		return out
	}
	return v
}

func uintOf(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint64:
		return x, true
	case json.Number:
		n, err := strconv.ParseUint(string(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// transcriptDiff returns a line for each observation that differs.
func transcriptDiff(a, b []string) []string {
	var out []string
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		} else {
			x = "(none)"
		}
		if i < len(b) {
			y = b[i]
		} else {
			y = "(none)"
		}
		if x != y {
			x, y = aroundDifference(x, y)
			out = append(out, fmt.Sprintf("  #%d with invisible: %s\n  #%d all offline:    %s", i, x, i, y))
		}
	}
	return out
}

// aroundDifference cuts two lines down to where they first differ, with some
// context.
func aroundDifference(x, y string) (string, string) {
	const context = 100
	i := 0
	for i < len(x) && i < len(y) && x[i] == y[i] {
		i++
	}
	start := max(0, i-context)
	for start > 0 && !utf8.RuneStart(x[start]) {
		start--
	}
	cut := func(s string) string {
		end := min(len(s), i+context)
		for end < len(s) && !utf8.RuneStart(s[end]) {
			end++
		}
		out := s[start:end]
		if start > 0 {
			out = "…" + out
		}
		if end < len(s) {
			out += "…"
		}
		return out
	}
	return cut(x), cut(y)
}

func countObservations(m map[string][]string) int {
	n := 0
	for _, l := range m {
		n += len(l)
	}
	return n
}
