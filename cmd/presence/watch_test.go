package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// watcher is `presence watch` run in-process until stopped.
type watcher struct {
	out    *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startWatch(t *testing.T, args ...string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{out: newSyncBuffer(), stderr: newSyncBuffer(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = run(ctx, append([]string{"watch"}, args...), w.out, w.stderr)
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop ends the watch and checks that it ended as a watch should: nil, nothing
// on stderr. It is safe to call more than once.
func (w *watcher) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("watch did not return within 30s of its context ending")
	}
	if w.err != nil {
		t.Errorf("watch returned %v when stopped, want nil", w.err)
	}
	if s := w.stderr.String(); s != "" {
		t.Errorf("watch wrote to stderr: %q", s)
	}
	w.err = nil
	w.stderr = newSyncBuffer()
}

// watchLine is one line of `presence watch --json`.
type watchLine struct {
	Contact  string        `json:"contact"`
	Name     string        `json:"name"`
	Previous events.Status `json:"previous"`
	Status   events.Status `json:"status"`
	Code     int           `json:"code"`
	Seq      uint64        `json:"seq"`
	At       time.Time     `json:"at"`
}

var watchKeys = []string{"contact", "name", "previous", "status", "code", "seq", "at"}

// lines decodes the JSON lines a watcher printed, checking each has exactly the
// keys of a change.
func (w *watcher) lines(t *testing.T) []watchLine {
	t.Helper()
	return decodeWatchLines(t, w.out.String())
}

func decodeWatchLines(t *testing.T, s string) []watchLine {
	t.Helper()
	var out []watchLine
	for _, m := range jsonLines(s) {
		if len(m) != len(watchKeys) {
			t.Errorf("watch line %v: want exactly the keys %v", m, watchKeys)
		}
		b, _ := json.Marshal(m)
		var l watchLine
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("watch line %s: %v", b, err)
		}
		out = append(out, l)
	}
	return out
}

func hasSeq(lines []watchLine, seq uint64) bool {
	for _, l := range lines {
		if l.Seq == seq {
			return true
		}
	}
	return false
}

// feedConsumers returns how many consumers the feed has: a watch is live once its
// consumer exists, and from then on sees every later change.
func feedConsumers(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.FeedStream)
	if err != nil {
		t.Fatalf("open the feed: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("feed info: %v", err)
	}
	return info.State.Consumers
}

func jsOf(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func TestWatch(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	_, js := jsOf(t, s.url)
	begin := time.Now()
	const (
		ann = "sip:ann@contoso.com"
		ben = "sip:ben@contoso.com"
		cy  = "sip:cy@contoso.com"
	)

	// The watches of every contact follow the feed on core NATS, with no
	// consumer to wait for: they start from the beginning of the feed (empty
	// yet), and from a time before the first change. Ben's has a consumer.
	jsonW := startWatch(t, "--json", "--all", "--server", s.url)
	humanW := startWatch(t, "--since", begin.Add(-time.Second).Format(time.RFC3339Nano), "--server", s.url)
	benW := startWatch(t, "--json", ben, "--server", s.url)
	waitUntil(t, 10*time.Second, "ben's watch consumer on the feed", func() bool { return feedConsumers(t, js) == 1 })

	type want struct {
		line  watchLine
		human string // what the human line holds after its time
	}
	var wants []want
	steps := []struct {
		contact, status, name string
		visible               bool
		previous, now         events.Status // as subscribers see them
	}{
		{ann, "online", "Ann", true, events.Unknown, events.Online},
		{ann, "offline", "", true, events.Online, events.Offline},
		{ann, "invisible", "", false, 0, 0},
		{ann, "offline", "", false, 0, 0},
		{ann, "online", "", true, events.Offline, events.Online},
		{ann, "invisible", "", true, events.Online, events.Offline}, // online -> invisible
		{ben, "online", "Ben", true, events.Unknown, events.Online},
		{ben, "offline", "", true, events.Online, events.Offline}, // online -> offline
		{cy, "invisible", "Cy", true, events.Unknown, events.Offline},
		{ann, "busy", "", true, events.Offline, events.Busy}, // invisible -> busy
		{cy, "online", "", true, events.Offline, events.Online},
	}
	names := map[string]string{}
	var pos uint64 // the feed position of the last visible change: the feed was empty
	for i, st := range steps {
		args := []string{"set", st.contact, st.status, "--json"}
		if st.name != "" {
			args = append(args, "--name", st.name)
			names[st.contact] = st.name
		}
		res := decodeSet(t, p(args...))
		if !res.Changed {
			t.Fatalf("step %d: set %s %s changed nothing", i, st.contact, st.status)
		}
		if got := events.VisibleChange(res.Previous, res.Status); got != st.visible {
			t.Fatalf("step %d: set %s %s: %s -> %s visible %v, the test expects %v", i, st.contact, st.status, res.Previous, res.Status, got, st.visible)
		}
		if !st.visible {
			continue
		}
		pos++ // hidden changes have none
		w := want{
			line: watchLine{Contact: st.contact, Name: names[st.contact], Previous: st.previous, Status: st.now, Code: st.now.Code(), Seq: pos},
			human: fmt.Sprintf("  %s <%s>: Status Changed EVENT: Old Status-%s New Status:%s  (seq %d)",
				names[st.contact], st.contact, st.previous, st.now, pos),
		}
		wants = append(wants, w)
		// Wait for the line before the next change, so that the status it read
		// (never older than the change) is exactly the one after it.
		jsonW.out.waitFor(t, 10*time.Second, jsonW.done, fmt.Sprintf("the watch --json line of seq %d", pos),
			func(s string) bool { return hasSeq(decodeWatchLines(t, s), pos) })
		humanW.out.waitFor(t, 10*time.Second, humanW.done, fmt.Sprintf("the watch line of seq %d", pos),
			func(s string) bool { return strings.Contains(s, w.human) })
		if st.contact == ben {
			benW.out.waitFor(t, 10*time.Second, benW.done, fmt.Sprintf("ben's watch line of seq %d", pos),
				func(s string) bool { return hasSeq(decodeWatchLines(t, s), pos) })
		}
	}
	// Changes of others go into the feed in log order: once the last line is
	// there, every line there will ever be for these changes is.
	var benWants []watchLine
	for _, w := range wants {
		if w.line.Contact == ben {
			benWants = append(benWants, w.line)
		}
	}
	benW.out.waitFor(t, 10*time.Second, benW.done, "ben's lines", func(s string) bool {
		return hasSeq(decodeWatchLines(t, s), benWants[len(benWants)-1].Seq)
	})

	t.Run("json", func(t *testing.T) {
		lines := jsonW.lines(t)
		if len(lines) != len(wants) {
			t.Errorf("watch --json printed %d lines, want %d (one per visible change, none for hidden ones):\n%s", len(lines), len(wants), jsonW.out)
		}
		for i := range min(len(lines), len(wants)) {
			got, want := lines[i], wants[i].line
			if got.At.Before(begin.Add(-time.Second)) || got.At.After(time.Now().Add(time.Second)) {
				t.Errorf("line %d: at %v, want a time during the test", i, got.At)
			}
			got.At = time.Time{}
			if got != want {
				t.Errorf("line %d = %+v, want %+v", i, got, want)
			}
		}
	})

	t.Run("online to invisible prints as online to offline", func(t *testing.T) {
		// ann's first line from online is online -> offline, the second
		// online -> invisible; ben's is online -> offline.
		var annOnline, benOnline []map[string]any
		for _, m := range jsonLines(jsonW.out.String()) {
			switch {
			case m["contact"] == ann && m["previous"] == "online":
				annOnline = append(annOnline, m)
			case m["contact"] == ben && m["previous"] == "online":
				benOnline = append(benOnline, m)
			}
		}
		if len(annOnline) != 2 || len(benOnline) != 1 {
			t.Fatalf("want two lines of ann from online and one of ben; got %v and %v", annOnline, benOnline)
		}
		annLine, benLine := annOnline[1], benOnline[0]
		for _, m := range []map[string]any{annLine, benLine} {
			for _, k := range []string{"contact", "name", "seq", "at"} {
				delete(m, k)
			}
		}
		a, _ := json.Marshal(annLine)
		b, _ := json.Marshal(benLine)
		if string(a) != string(b) {
			t.Errorf("online -> invisible printed %s, online -> offline %s; want them alike but for contact, name, seq and time", a, b)
		}
	})

	t.Run("human", func(t *testing.T) {
		out := humanW.out.String()
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(wants) {
			t.Errorf("watch printed %d lines, want %d:\n%s", len(lines), len(wants), out)
		}
		for i := range min(len(lines), len(wants)) {
			at, rest, _ := strings.Cut(lines[i], "  ")
			if _, err := time.Parse(time.RFC3339, at); err != nil {
				t.Errorf("line %q does not start with an RFC 3339 time: %v", lines[i], err)
			}
			if "  "+rest != wants[i].human {
				t.Errorf("line %d = %q, want %q after the time", i, "  "+rest, wants[i].human)
			}
		}
	})

	t.Run("invisible never shows", func(t *testing.T) {
		for name, w := range map[string]*watcher{"json": jsonW, "human": humanW, "ben": benW} {
			if out := w.out.String(); strings.Contains(out, "invisible") || strings.Contains(out, `"code":6`) {
				t.Errorf("%s watch output reveals invisible:\n%s", name, out)
			}
		}
	})

	t.Run("one contact", func(t *testing.T) {
		lines := benW.lines(t)
		for i := range lines {
			lines[i].At = time.Time{}
		}
		if fmt.Sprint(lines) != fmt.Sprint(benWants) {
			t.Errorf("watch %s printed %+v, want %+v", ben, lines, benWants)
		}
	})

	// Where to start: the feed is complete up to the last change by now. Each
	// replayed line reads the status now, offline: newer than the change, never
	// older.
	var benReplay []watchLine
	for _, l := range benWants {
		l.Status, l.Code = events.Offline, events.Offline.Code()
		benReplay = append(benReplay, l)
	}
	starts := []struct {
		name string
		args []string
		want []watchLine
	}{
		{"--all", []string{"--all"}, benReplay},
		{"--from-seq", []string{"--from-seq", fmt.Sprint(benReplay[1].Seq)}, benReplay[1:]},
		{"--since a time", []string{"--since", begin.Add(-time.Second).UTC().Format(time.RFC3339Nano)}, benReplay},
		{"--since a duration", []string{"--since", "1h"}, benReplay},
	}
	for _, st := range starts {
		t.Run(st.name, func(t *testing.T) {
			w := startWatch(t, append(st.args, "--json", ben, "--server", s.url)...)
			w.out.waitFor(t, 10*time.Second, w.done, "ben's lines", func(s string) bool {
				return hasSeq(decodeWatchLines(t, s), st.want[len(st.want)-1].Seq)
			})
			w.stop(t)
			lines := w.lines(t)
			for i := range lines {
				lines[i].At = time.Time{}
			}
			if fmt.Sprint(lines) != fmt.Sprint(st.want) {
				t.Errorf("watch %s printed %+v, want %+v", strings.Join(st.args, " "), lines, st.want)
			}
		})
	}

	for _, w := range []*watcher{jsonW, humanW, benW} {
		w.stop(t)
	}
}

// TestWatchDurable: a durable watch stopped mid-stream and started again with
// the same name misses nothing and repeats nothing.
func TestWatchDurable(t *testing.T) {
	s := startServer(t)
	_, js := jsOf(t, s.url)
	nc, err := nats.Connect(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	svc := client.New(nc)
	const durable = "audit-mirror"
	args := []string{"--json", "--durable", durable, "--server", s.url}

	first := startWatch(t, args...)
	waitUntil(t, 10*time.Second, "the durable consumer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, events.FeedStream)
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Consumer(ctx, durable)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		return err == nil
	})

	// One writer goroutine, sets in turn on four contacts, until told how many
	// more to do.
	var (
		mu       sync.Mutex
		expected []client.SetResult // the visible changes, in order: the one at feed position k is [k-1] (the feed was empty)
		changes  []client.SetResult
		sets     atomic.Int64
		stopAt   atomic.Int64 // 0: no limit yet
		writerOK = make(chan error, 1)
	)
	stopAt.Store(-1)
	go func() {
		cycle := []events.Status{events.Online, events.Away, events.Busy, events.Offline, events.Invisible}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := 0; ; i++ {
			if lim := stopAt.Load(); lim >= 0 && sets.Load() >= lim {
				writerOK <- nil
				return
			}
			contact := fmt.Sprintf("sip:d%d@contoso.com", i%4)
			res, err := svc.Set(ctx, client.SetRequest{Contact: contact, Status: cycle[(i/4)%len(cycle)]})
			if err != nil {
				writerOK <- fmt.Errorf("set %d: %w", i, err)
				return
			}
			mu.Lock()
			if res.Changed {
				changes = append(changes, res)
			}
			if res.Changed && events.VisibleChange(res.Previous, res.Status) {
				expected = append(expected, res)
			}
			mu.Unlock()
			sets.Add(1)
		}
	}()

	first.out.waitFor(t, 20*time.Second, first.done, "20 lines from the first watch", func(s string) bool {
		return len(jsonLines(s)) >= 20
	})
	stopAt.Store(sets.Load() + 150) // the writer goes on while the watch stops
	first.stop(t)
	if err := <-writerOK; err != nil {
		t.Fatalf("writer: %v", err)
	}
	mu.Lock()
	want := make([]uint64, len(expected)) // feed positions
	for i := range want {
		want[i] = uint64(i + 1)
	}
	mu.Unlock()
	firstLines := first.lines(t)
	if len(firstLines) >= len(want) {
		t.Fatalf("the first watch saw all %d changes before it stopped; the test wants it stopped mid-stream", len(want))
	}

	second := startWatch(t, args...)
	second.out.waitFor(t, 20*time.Second, second.done, "the second watch to reach the last change", func(s string) bool {
		return hasSeq(decodeWatchLines(t, s), want[len(want)-1])
	})
	second.stop(t)
	secondLines := second.lines(t)

	seen := map[uint64]int{}
	var got []uint64
	for _, l := range append(firstLines, secondLines...) {
		seen[l.Seq]++
		got = append(got, l.Seq)
	}
	for _, seq := range want {
		switch seen[seq] {
		case 0:
			t.Errorf("change at seq %d was missed", seq)
		case 1:
		default:
			t.Errorf("change at seq %d was printed %d times", seq, seen[seq])
		}
		delete(seen, seq)
	}
	for seq := range seen {
		t.Errorf("a line for seq %d, which is no visible change the writer made", seq)
	}
	if t.Failed() {
		t.Logf("first watch: %d lines, second: %d; want %d changes", len(firstLines), len(secondLines), len(want))
		return
	}
	// Each line: the previous visible status, and a status read no older than
	// the change.
	mu.Lock()
	for _, l := range append(firstLines, secondLines...) {
		ch := expected[l.Seq-1]
		if l.Contact != ch.Contact || l.Previous != ch.Previous.Visible() {
			t.Errorf("line %+v: want contact %s and previous %s (the change at feed seq %d, log seq %d, was %s -> %s)",
				l, ch.Contact, ch.Previous.Visible(), l.Seq, ch.Seq, ch.Previous, ch.Status)
		}
		var later []events.Status
		for _, c := range changes {
			if c.Contact == l.Contact && c.Seq >= ch.Seq {
				later = append(later, c.Status.Visible())
			}
		}
		if !slices.Contains(later, l.Status) || l.Code != l.Status.Code() {
			t.Errorf("line %+v: status %s (code %d) is none of the visible statuses %v of %s from seq %d on", l, l.Status, l.Code, later, l.Contact, l.Seq)
		}
	}
	mu.Unlock()
	// In feed order, as a subscriber is promised: above all, never a contact's
	// older change after a newer one.
	last := map[string]uint64{}
	for _, l := range append(firstLines, secondLines...) {
		if l.Seq < last[l.Contact] {
			t.Errorf("%s: the change at seq %d was printed after the one at seq %d", l.Contact, l.Seq, last[l.Contact])
		}
		last[l.Contact] = max(last[l.Contact], l.Seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the two watches printed the changes in the order\n%v\nwant log order\n%v", got, want)
	}
	t.Logf("first watch printed %d lines, second %d", len(firstLines), len(secondLines))
}

// TestParseTime: every command that takes a time (watch --since, replay,
// report, status --at) reads the same forms.
func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-11-24T09:00:00Z", want: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)},
		{in: "2026-11-24T09:00:00.5+01:00", want: time.Date(2026, 11, 24, 8, 0, 0, 5e8, time.UTC)},
		{in: "2026-11-24", want: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)},
		{in: "now", want: now},
		{in: "10m", want: now.Add(-10 * time.Minute)},
		{in: "-2h", want: now.Add(-2 * time.Hour)},
		{in: "1h30m ago", want: now.Add(-90 * time.Minute)},
		{in: " -24h ", want: now.Add(-24 * time.Hour)},
		{in: "0s", want: now},
		{in: "+5m", wantErr: true},
		{in: "--5m", wantErr: true},
		{in: "ago", wantErr: true},
		{in: "5mago", wantErr: true},
		{in: "10", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "2026-13-01", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTime("--since", tt.in, now)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseTime(%q) = %v, want an error", tt.in, got)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("--since %q", tt.in)) || !strings.Contains(msg, "RFC 3339") {
					t.Errorf("parseTime(%q) error %q: want it to name the flag, the input and what is accepted", tt.in, msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTime(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("parseTime(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestPrintChange: a watch line names the contact by its friendly name and the
// contact, or by the contact alone when it has no name.
func TestPrintChange(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ch   client.Change
		cur  client.Reply
		want string
	}{
		{"with a name",
			client.Change{Contact: "sip:alice@contoso.com", Previous: events.Away, Seq: 3, At: at},
			client.Reply{Contact: "sip:alice@contoso.com", Name: "Alice", Status: events.Busy, Seq: 3},
			"2026-11-24T09:00:00Z  Alice <sip:alice@contoso.com>: Status Changed EVENT: Old Status-away New Status:busy  (seq 3)\n"},
		{"without a name",
			client.Change{Contact: "carol", Previous: events.Unknown, Seq: 1, At: at},
			client.Reply{Contact: "carol", Status: events.Online, Seq: 1},
			"2026-11-24T09:00:00Z  carol: Status Changed EVENT: Old Status-unknown New Status:online  (seq 1)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := printChange(&b, tt.ch, tt.cur, false); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("printChange wrote %q, want %q", b.String(), tt.want)
			}
		})
	}
}

// TestContactWithoutName: every command that prints a contact for people
// prints one without a friendly name alone, never "carol <carol>".
func TestContactWithoutName(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	const alice = "sip:alice@contoso.com"
	carol := decodeSet(t, p("set", "carol", "online", "--json")).Seq
	ali := decodeSet(t, p("set", alice, "away", "--name", "Alice", "--json")).Seq

	w := startWatch(t, "--all", "--server", s.url)
	wantLines := []string{
		fmt.Sprintf("  carol: Status Changed EVENT: Old Status-unknown New Status:online  (seq %d)\n", carol),
		fmt.Sprintf("  Alice <%s>: Status Changed EVENT: Old Status-unknown New Status:away  (seq %d)\n", alice, ali),
	}
	w.out.waitFor(t, 10*time.Second, w.done, "the watch lines of both changes", func(s string) bool {
		return strings.Contains(s, wantLines[0]) && strings.Contains(s, wantLines[1])
	})
	w.stop(t)

	for _, tt := range []struct {
		name, out, want string
	}{
		{"status", p("status", "carol"), fmt.Sprintf("carol: online (0x0002, seq %d)\n", carol)},
		{"self", p("self", "carol"), fmt.Sprintf("carol: online (0x0002, seq %d)\n", carol)},
		{"status --at", p("status", "carol", "--at", "now"), fmt.Sprintf("carol: online (0x0002, seq %d)\n", carol)},
		{"report", p("report", "carol"), "carol from "},
		{"report with a name", p("report", alice), "Alice <" + alice + "> from "},
	} {
		if !strings.HasPrefix(tt.out, tt.want) || strings.Contains(tt.out, "<carol>") {
			t.Errorf("%s printed %q, want it to begin %q", tt.name, tt.out, tt.want)
		}
	}
	if out := w.out.String(); strings.Contains(out, "<carol>") {
		t.Errorf("watch printed\n%s\nwith carol <carol>", out)
	}
}
