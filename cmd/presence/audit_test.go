package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// replayed decodes the lines of `presence replay --json`.
func replayed(t *testing.T, out string) []audit.EntryJSON {
	t.Helper()
	var lines []audit.EntryJSON
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var r audit.EntryJSON
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("replay line %q: %v", l, err)
		}
		lines = append(lines, r)
	}
	return lines
}

func TestReplayCommand(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	steps := []struct {
		contact, status string
	}{
		{"sip:alice@contoso.com", "online"}, {"bob", "away"}, {"sip:alice@contoso.com", "invisible"},
		{"bob", "offline"}, {"sip:alice@contoso.com", "busy"},
	}
	var seqs []uint64
	for _, st := range steps {
		seqs = append(seqs, decodeSet(t, p("set", st.contact, st.status, "--name", "N "+st.contact, "--json")).Seq)
	}

	lines := replayed(t, p("replay", "--json"))
	if len(lines) != len(steps) {
		t.Fatalf("replay --json printed %d events, want %d", len(lines), len(steps))
	}
	prev := map[string]events.Status{}
	for i, l := range lines {
		want, _ := events.ParseStatus(steps[i].status)
		if l.Seq != seqs[i] || l.Contact != steps[i].contact || l.Status != want || l.Code != want.Code() ||
			l.Previous != prev[l.Contact] || l.Name != "N "+l.Contact || l.Cause != events.CauseUser {
			t.Errorf("replay line %d = %+v, want seq %d %s %s (previous %s)", i, l, seqs[i], steps[i].contact, want, prev[l.Contact])
		}
		if _, err := time.Parse(time.RFC3339Nano, l.At); err != nil {
			t.Errorf("replay line %d: at %q: %v", i, l.At, err)
		}
		prev[l.Contact] = want
	}
	// The privileged view: invisible shows as invisible.
	text := p("replay")
	want := fmt.Sprintf(`^%d  \S+  sip:alice@contoso.com  "N sip:alice@contoso.com"  online -> invisible  user$`, seqs[2])
	if !regexp.MustCompile(`(?m)`+want).MatchString(text) || strings.Count(text, "\n") != len(steps) {
		t.Errorf("replay printed\n%s\nwant %d lines, one matching %s", text, len(steps), want)
	}
	// One contact, and sequence bounds.
	if got := replayed(t, p("replay", "--json", "--contact", "bob")); len(got) != 2 || got[0].Seq != seqs[1] || got[1].Seq != seqs[3] {
		t.Errorf("replay --contact bob: %+v", got)
	}
	if got := replayed(t, p("replay", "--json", "--from-seq", fmt.Sprint(seqs[1]), "--to-seq", fmt.Sprint(seqs[3]))); len(got) != 3 || got[0].Seq != seqs[1] {
		t.Errorf("replay --from-seq %d --to-seq %d: %+v", seqs[1], seqs[3], got)
	}
	// Times: from the third event's time on.
	if got := replayed(t, p("replay", "--json", "--since", lines[2].At)); len(got) != 3 || got[0].Seq != seqs[2] {
		t.Errorf("replay --since %s: %+v", lines[2].At, got)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--since", "yesterday-ish"}, `--since "yesterday-ish" is not a time`},
		{[]string{"replay", "--since", "-1h", "--from-seq", "3"}, "give one of them"},
		{[]string{"replay", "--from-seq", "5", "--to-seq", "2"}, "from seq 5 is after to seq 2"},
		{[]string{"replay", "--contact", "has space"}, "has space"},
		{[]string{"replay", "--to-seq", "-1"}, "--to-seq -1"},
	} {
		r := presence(t, append(bad.args, "--server", s.url)...)
		if r.code != 2 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("presence %s: %s; want exit 2 and %q", strings.Join(bad.args, " "), r, bad.want)
		}
		noSentinelText(t, r)
	}
}

func TestStatusAtAndReport(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	const carol = "sip:carol@contoso.com"
	online := decodeSet(t, p("set", carol, "online", "--name", "Carol", "--json")) // log seq 1, feed position 1
	// Another contact's changes, one hidden: carol's log sequences and feed
	// positions part.
	p("set", "sip:dan@contoso.com", "offline")                      // 2, feed position 2
	p("set", "sip:dan@contoso.com", "invisible")                    // 3, hidden
	hidden := decodeSet(t, p("set", carol, "invisible", "--json"))  // 4, feed position 3
	offline := decodeSet(t, p("set", carol, "offline", "--json"))   // 5, hidden
	lines := replayed(t, p("replay", "--contact", carol, "--json")) // carol's events
	const onlinePos, hiddenPos = 1, 3

	// At the invisible event: others saw offline (as of that event, a visible
	// change from online), at that change's feed position; the contact itself
	// invisible.
	if r := decodeReply(t, p("status", carol, "--at-seq", fmt.Sprint(hidden.Seq), "--json")); r.Status != events.Offline || r.Seq != hiddenPos {
		t.Errorf("status --at-seq %d = %+v, want offline at feed position %d", hidden.Seq, r, hiddenPos)
	}
	if r := decodeReply(t, p("self", carol, "--at-seq", fmt.Sprint(hidden.Seq), "--json")); r.Status != events.Invisible || r.Name != "Carol" {
		t.Errorf("self --at-seq %d = %+v, want invisible", hidden.Seq, r)
	}
	// By time: at the first event's time, online; after the last, offline with
	// the seq of the last visible change (invisible -> offline is hidden).
	if out := p("status", carol, "--at", lines[0].At); !strings.HasPrefix(out, "Carol <sip:carol@contoso.com>: online (0x0002, seq "+fmt.Sprint(onlinePos)+")") {
		t.Errorf("status --at %s = %q, want online at feed position %d (log seq %d)", lines[0].At, out, onlinePos, online.Seq)
	}
	if r := decodeReply(t, p("status", carol, "--at", "now", "--json")); r.Status != events.Offline || r.Seq != hiddenPos {
		t.Errorf("status --at now = %+v, want offline at feed position %d (not log seq %d or %d)", r, hiddenPos, hidden.Seq, offline.Seq)
	}
	if r := decodeReply(t, p("status", carol, "--at", "2000-01-01", "--json")); r.Status != events.Unknown || r.Seq != 0 {
		t.Errorf("status --at 2000-01-01 = %+v, want unknown", r)
	}

	// The report over the whole history adds up to its window.
	since, until := lines[0].At, time.Now().UTC().Format(time.RFC3339Nano)
	var r audit.Report
	if err := json.Unmarshal([]byte(p("report", carol, "--since", since, "--until", until, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	var total time.Duration
	for _, st := range r.Statuses {
		total += st.Duration
	}
	if total != r.Until.Sub(r.Since) || r.Changes != 3 || r.End != events.Offline || r.OnlineAtEnd {
		t.Errorf("report: %+v; want times adding up to the window, 3 changes, offline at the end", r)
	}
	if len(r.Causes) != 1 || r.Causes[0] != (audit.CauseChanges{Cause: events.CauseUser, Changes: 3}) || r.Held != 0 || len(r.Endpoints) != 0 {
		t.Errorf("report: causes %+v, %d held back, endpoints %+v; want the user's 3, none held back, no endpoint", r.Causes, r.Held, r.Endpoints)
	}
	text := p("report", carol, "--since", since)
	for _, want := range []string{"Carol <sip:carol@contoso.com> from ", ": 3 changes", "  offline ", "  invisible ", "last seen online: " + lines[1].At,
		"\n  changes by cause: user 3\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("report printed\n%s\nwant %q in it", text, want)
		}
	}
	if strings.Contains(text, "endpoint") {
		t.Errorf("report printed\n%s\nwant no endpoint: carol has none", text)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"status", carol, "--at", "soon"}, `--at "soon" is not a time`},
		{[]string{"status", carol, "--at", ""}, `--at "" is not a time`},
		{[]string{"replay", "--since", ""}, `--since "" is not a time`},
		{[]string{"replay", "--until", ""}, `--until "" is not a time`},
		{[]string{"report", carol, "--since", ""}, `--since "" is not a time`},
		{[]string{"watch", "--since", ""}, `--since "" is not a time`},
		{[]string{"status", carol, "--at", "now", "--at-seq", "3"}, "give one of them"},
		{[]string{"status", carol, "--at-seq", "0"}, "--at-seq 0: want a log sequence, 1 or more"},
		{[]string{"self", carol, "--at-seq", "99999"}, "seq 99999 is past the end of the log, at seq "},
		{[]string{"status", carol, "--at", "2099-01-01"}, "2099-01-01T00:00:00Z is in the future (it is "},
		{[]string{"report", carol, "--since", "2099-01-01", "--until", "2099-01-02"}, "since 2099-01-01T00:00:00Z is in the future (it is "},
		{[]string{"report", carol, "--since", "2099-01-01", "--until", "2099-01-02"}, "want a time up to now"},
		{[]string{"replay", "--from-seq", "5", "--to-seq", "3"}, "from seq 5 is after to seq 3"},
		{[]string{"self", carol, "--at-seq", "3", "--min-seq", "2"}, "--min-seq does not go with --at"},
		{[]string{"report", carol, "--since", "now", "--until", "-1h"}, "is not before --until"},
		{[]string{"status", "--digest", carol}, "no CONTACT with --digest"},
	} {
		r := presence(t, append(bad.args, "--server", s.url)...)
		if r.code != 2 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("presence %s: %s; want exit 2 and %q", strings.Join(bad.args, " "), r, bad.want)
		}
		noSentinelText(t, r)
	}
	// What the log cannot answer is still audit.ErrBadQuery to errors.Is.
	for _, args := range [][]string{
		{"status", carol, "--at", "2099-01-01"},
		{"report", carol, "--since", "2099-01-01", "--until", "2099-01-02"},
		{"self", carol, "--at-seq", "99999"},
		{"replay", "--from-seq", "5", "--to-seq", "3"},
	} {
		if r := presence(t, append(args, "--server", s.url)...); !errors.Is(r.err, audit.ErrBadQuery) {
			t.Errorf("presence %s: error %v, want audit.ErrBadQuery to errors.Is", strings.Join(args, " "), r.err)
		}
	}
}

// noSentinelText checks that what a failed run printed holds no package's
// sentinel text ("audit: bad query: ..."): those are for callers' errors.Is,
// the user reads what was refused and what is accepted.
func noSentinelText(t *testing.T, r cliResult) {
	t.Helper()
	for _, sentinel := range []error{audit.ErrBadQuery, client.ErrForbidden, client.ErrBadRequest, client.ErrUnavailable} {
		if strings.Contains(r.stderr, sentinel.Error()) {
			t.Errorf("stderr %q holds the sentinel text %q", r.stderr, sentinel)
		}
	}
}

var digestRE = regexp.MustCompile(`projection digest: seq \d+, \d+ contacts?, sha256:[0-9a-f]{64}`)

func TestVerifyRebuildAndDigestCommands(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	var last, c1Last uint64
	for i, st := range []string{"online", "away", "invisible", "offline", "busy", "online"} {
		last = decodeSet(t, p("set", fmt.Sprintf("c%d", i%3), st, "--json")).Seq
		if i%3 == 1 {
			c1Last = last
		}
	}
	p("self", "c2", "--min-seq", fmt.Sprint(last)) // the projection has applied every set
	digest := digestRE.FindString(p("status", "--digest"))
	if digest == "" || !strings.Contains(digest, fmt.Sprintf("seq %d, 3 contacts", last)) {
		t.Fatalf("status --digest printed %q, want the digest at seq %d of 3 contacts", digest, last)
	}
	out := p("verify")
	if !strings.Contains(out, "\nok: ") || !strings.Contains(out, digest) ||
		!strings.Contains(out, fmt.Sprintf("checked the log up to seq %d: %d events", last, last)) {
		t.Errorf("verify printed\n%s\nwant ok, %q and the log up to seq %d", out, digest, last)
	}
	if out := p("rebuild"); !strings.Contains(out, fmt.Sprintf("rebuilt: switched at seq %d\n", last)) || !strings.Contains(out, digest) {
		t.Errorf("rebuild printed\n%s\nwant the switch at seq %d and %q", out, last, digest)
	}

	// A feed entry appended behind the engine's back: verify names it and exits 1.
	nc, err := nats.Connect(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	feed, err := js.Stream(ctx, "PRESENCE_CHANGES")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := feed.GetLastMsgForSubject(ctx, events.ChangeSubject("c1"))
	if err != nil {
		t.Fatal(err)
	}
	// A copy, its log reference with it: the engine's verify opens it and
	// finds it names c1's change, whose entry the feed holds already.
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: msg.Subject, Data: msg.Data,
		Header: nats.Header{events.LogRefHeader: []string{msg.Header.Get(events.LogRefHeader)}}}); err != nil {
		t.Fatal(err)
	}
	r := presence(t, "verify", "--server", s.url)
	want := fmt.Sprintf(`contact "c1", seq %d: feed: entry for no visible change`, c1Last)
	if r.code != 1 || !strings.Contains(r.stdout, "1 difference:\n  "+want) || !strings.Contains(r.stderr, "verify found 1 difference\n") {
		t.Errorf("verify with a repeated feed entry: %s; want exit 1 and %q", r, want)
	}
	var report audit.VerifyReport
	r = presence(t, "verify", "--json", "--server", s.url)
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || r.code != 1 || report.Count != 1 || report.Differences[0].Contact != "c1" {
		t.Errorf("verify --json with a repeated feed entry: %s (%v)", r, err)
	}
}

// A replay into a pipe closed early (| head -1) stops at once and exits 0.
func TestReplayIntoClosedPipe(t *testing.T) {
	bin := presenceBinary(t)
	s := startServer(t)
	nc, err := nats.Connect(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// Far more than a pipe holds: replay must stop on the closed pipe, not
	// print them all.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := events.Event{Contact: "flapper", Status: events.Online, At: time.Now().UTC(), Cause: events.CauseUser}
	for i := range 20000 {
		e.Previous, e.Status = e.Status, []events.Status{events.Online, events.Away}[i%2]
		if _, err := js.PublishAsync(events.EventSubject(e.Contact), e.Encode()); err != nil {
			t.Fatal(err)
		}
		if i%2000 == 1999 { // under the 4000 the library lets wait
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishing timed out")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing timed out")
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", `set -o pipefail; "$0" replay --server "$1" | head -1`, bin, s.url)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 1 || !strings.HasPrefix(string(out), "1  ") {
		t.Fatalf("replay | head -1: %v, output %q; want exit 0 and one line", err, out)
	}
}

func TestServeWithAuth(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(authFile, []byte(`{"users":[
		{"name":"alice","password":"alice-pw","role":"user","contact":"sip:alice@contoso.com"},
		{"name":"ops","password":"ops-pw","role":"operator"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, []string{"--auth", authFile}, nats.UserInfo("ops", "ops-pw"), nats.CustomInboxPrefix("_INBOX_ops"))
	as := func(user, pw string, args ...string) cliResult {
		return presence(t, append(args, "--server", s.url, "--user", user, "--password", pw, "--timeout", "1s")...)
	}
	if r := as("alice", "alice-pw", "set", "sip:alice@contoso.com", "online"); r.code != 0 {
		t.Errorf("alice sets her own status: %s", r)
	}
	if r := as("alice", "alice-pw", "set", "sip:bob@contoso.com", "online"); r.code != 1 || !errors.Is(r.err, client.ErrForbidden) ||
		!strings.Contains(r.stderr, "the server refused a request to presence.set.sip:bob@contoso%2Ecom") {
		t.Errorf("alice sets bob's status: %s; want exit 1, refused, naming the subject", r)
	} else {
		noSentinelText(t, r)
	}
	for _, args := range [][]string{{"replay"}, {"status", "sip:alice@contoso.com", "--at", "now"}, {"report", "sip:alice@contoso.com"}} {
		r := as("alice", "alice-pw", args...)
		oneLineError(t, r, 1, "the server refused to show this user the log PRESENCE", "the log is for auditors")
		if !errors.Is(r.err, client.ErrForbidden) {
			t.Errorf("alice: presence %s: error %v, want client.ErrForbidden to errors.Is", strings.Join(args, " "), r.err)
		}
		noSentinelText(t, r)
	}
	if r := as("alice", "alice-pw", "verify"); r.code != 1 || !errors.Is(r.err, client.ErrForbidden) ||
		!strings.Contains(r.stderr, "the server refused this user the request presence.admin.verify") {
		t.Errorf("alice verifies: %s; want exit 1, refused, naming the subject", r)
	} else {
		noSentinelText(t, r)
	}
	if r := presence(t, "status", "sip:alice@contoso.com", "--server", s.url); r.code != 1 || !strings.Contains(r.stderr, "cannot connect") {
		t.Errorf("status without credentials: %s; want exit 1, cannot connect", r)
	}
	if r := as("ops", "ops-pw", "replay"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("the operator replays the log: %s", r)
	}
	if r := as("ops", "ops-pw", "verify"); r.code != 0 || !strings.Contains(r.stdout, "ok: ") {
		t.Errorf("the operator verifies: %s", r)
	}
	if r := presence(t, "serve", "--auth", authFile, "--nats", s.url); r.code != 2 || !strings.Contains(r.stderr, "--auth configures the embedded server") {
		t.Errorf("serve --auth --nats: %s; want a usage error", r)
	}
}

// TestReportEndpoints: report names each endpoint of the window with its
// kind and counts, and the changes by cause, in text and in JSON.
func TestReportEndpoints(t *testing.T) {
	// A flap window of an hour: the phone's sign-in is held back however
	// slow the machine.
	s := startServerWith(t, []string{"--flap-window", "1h"})
	p := s.cmd(t)
	const erin = "sip:erin@contoso.com"
	p("signin", erin, "desk-1", "--kind", "desktop")                   // unknown -> online, shown
	p("signin", erin, "phone", "--kind", "mobile", "--status", "busy") // online -> busy, held back
	p("signout", erin, "phone")                                        // busy -> online: back to what was shown, nothing held
	p("set", erin, "away")                                             // the user's preferred status: shown

	var r audit.Report
	if err := json.Unmarshal([]byte(p("report", erin, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	wantCauses := []audit.CauseChanges{{Cause: events.CauseEndpoint, Changes: 3}, {Cause: events.CauseUser, Changes: 1}}
	wantEndpoints := []audit.EndpointReport{
		{ID: "desk-1", Kind: events.KindDesktop, SignIns: 1, Changes: 1, SignedInAtEnd: true},
		{ID: "phone", Kind: events.KindMobile, SignIns: 1, SignOuts: 1, Changes: 2},
	}
	if r.Changes != 4 || !slices.Equal(r.Causes, wantCauses) || r.Held != 1 || !slices.Equal(r.Endpoints, wantEndpoints) {
		t.Errorf("report --json: %d changes, causes %+v, %d held back, endpoints %+v; want 4, %+v, 1, %+v",
			r.Changes, r.Causes, r.Held, r.Endpoints, wantCauses, wantEndpoints)
	}
	text := p("report", erin)
	for _, want := range []string{
		"): 4 changes\n",
		"\n  changes by cause: endpoint 3, user 1; 1 held back by the flap window\n",
		"\n  endpoint \"desk-1\" (desktop): 1 sign-in, 0 sign-outs, 0 expiries, 1 change; signed in at the end\n",
		"\n  endpoint \"phone\" (mobile): 1 sign-in, 1 sign-out, 0 expiries, 2 changes; not signed in at the end\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report printed\n%s\nwant %q in it", text, want)
		}
	}
}
