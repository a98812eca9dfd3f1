package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

var seqRE = regexp.MustCompile(`\(seq (\d+)\)\n$`)

// seqIn returns the sequence at the end of a line of human output: "(seq N)".
func seqIn(t *testing.T, line string) uint64 {
	t.Helper()
	m := seqRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("output %q does not end with (seq N)", line)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// decodeJSON decodes one line of JSON output into v, after checking that it is
// one object with exactly the given keys.
func decodeJSON(t *testing.T, out string, v any, keys ...string) {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("output %q: want one line of JSON", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("output %q is not a JSON object: %v", out, err)
	}
	got := slices.Sorted(maps.Keys(m))
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("output %q has keys %v, want %v", out, got, keys)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
}

var setKeys = []string{"contact", "status", "code", "previous", "seq", "changed"}
var replyKeys = []string{"contact", "name", "status", "code", "seq"}

func decodeSet(t *testing.T, out string) client.SetResult {
	t.Helper()
	var r client.SetResult
	decodeJSON(t, out, &r, setKeys...)
	var code struct{ Code int }
	json.Unmarshal([]byte(out), &code)
	if code.Code != r.Status.Code() {
		t.Errorf("output %q: code %d, want %d (the code of %s)", out, code.Code, r.Status.Code(), r.Status)
	}
	return r
}

func decodeReply(t *testing.T, out string) client.Reply {
	t.Helper()
	var r client.Reply
	decodeJSON(t, out, &r, replyKeys...)
	var code struct{ Code int }
	json.Unmarshal([]byte(out), &code)
	if code.Code != r.Status.Code() {
		t.Errorf("output %q: code %d, want %d (the code of %s)", out, code.Code, r.Status.Code(), r.Status)
	}
	return r
}

// cmd returns a function that runs a client command against s and returns
// its output, failing the test unless it exits 0.
func (s *testServer) cmd(t *testing.T) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		return mustPresence(t, append(args, "--server", s.url)...)
	}
}

func TestSet(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	const alice = "sip:alice@contoso.com"

	out := p("set", alice, "online", "--name", "Alice")
	first := seqIn(t, out)
	if want := fmt.Sprintf("%s: unknown -> online (seq %d)\n", alice, first); out != want {
		t.Errorf("first set printed %q, want %q", out, want)
	}

	out = p("set", alice, "ONLINE")
	if want := fmt.Sprintf("%s: already online, nothing changed (seq %d)\n", alice, first); out != want {
		t.Errorf("set to the same status printed %q, want %q", out, want)
	}

	res := decodeSet(t, p("set", alice, "MISTATUS_AWAY", "--json"))
	if want := (client.SetResult{Contact: alice, Status: events.Away, Previous: events.Online, Seq: res.Seq, Changed: true}); res != want || res.Seq <= first {
		t.Errorf("set away --json = %+v, want %+v with a seq after %d", res, want, first)
	}
	away := res.Seq

	res = decodeSet(t, p("set", alice, "34", "--json")) // 0x22, away again
	if want := (client.SetResult{Contact: alice, Status: events.Away, Previous: events.Away, Seq: away}); res != want {
		t.Errorf("set 34 --json (no change) = %+v, want %+v", res, want)
	}

	out = p("set", alice, "0x0A")
	if want := fmt.Sprintf("%s: away -> busy (seq %d)\n", alice, seqIn(t, out)); out != want || seqIn(t, out) <= away {
		t.Errorf("set 0x0A printed %q, want %q with a seq after %d", out, want, away)
	}

	out = p("set", alice, "idle", "--cause", "endpoint")
	if !strings.HasPrefix(out, alice+": busy -> idle (seq ") {
		t.Errorf("set idle --cause endpoint printed %q, want busy -> idle", out)
	}

	self := decodeReply(t, p("self", alice, "--json", "--min-seq", strconv.FormatUint(seqIn(t, out), 10)))
	if want := (client.Reply{Contact: alice, Name: "Alice", Status: events.Idle, Seq: seqIn(t, out)}); self != want {
		t.Errorf("self after the sets = %+v, want %+v (the name given first is kept)", self, want)
	}
}

func TestSetRequestID(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	const bob = "sip:bob@contoso.com"

	firstOut := p("set", bob, "online", "--request-id", "7f3a", "--json")
	first := decodeSet(t, firstOut)
	later := decodeSet(t, p("set", bob, "away", "--json"))

	again := p("set", bob, "online", "--request-id", "7f3a", "--json")
	if again != firstOut {
		t.Errorf("retried request answered %q, want the first answer %q", again, firstOut)
	}
	human := p("set", bob, "online", "--request-id", "7f3a")
	if want := fmt.Sprintf("%s: unknown -> online (seq %d)\n", bob, first.Seq); human != want {
		t.Errorf("retried request printed %q, want %q", human, want)
	}

	self := decodeReply(t, p("self", bob, "--json", "--min-seq", strconv.FormatUint(later.Seq, 10)))
	if self.Status != events.Away || self.Seq != later.Seq {
		t.Errorf("self after the retries = %+v, want away at seq %d: a retry must append nothing", self, later.Seq)
	}
}

func TestSetExpectSeq(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	const carol = "sip:carol@contoso.com"

	r := presence(t, "set", carol, "online", "--expect-seq", "5", "--server", s.url)
	if r.code != 1 || !strings.Contains(r.stderr, "expect_seq 5 does not match") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("set --expect-seq 5 on a never-seen contact: %s; want exit 1 and one line saying expect_seq 5 does not match", r)
	}
	res := decodeSet(t, p("set", carol, "online", "--expect-seq", "0", "--json"))
	res2 := decodeSet(t, p("set", carol, "away", "--expect-seq", strconv.FormatUint(res.Seq, 10), "--json"))
	if !res2.Changed || res2.Previous != events.Online {
		t.Errorf("set away --expect-seq %d = %+v, want a change from online", res.Seq, res2)
	}
}

func TestStatusAndSelf(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	const (
		carol = "sip:carol@contoso.com"
		dave  = "sip:dave@contoso.com"
		erin  = "sip:erin@contoso.com"
	)

	t.Run("never seen", func(t *testing.T) {
		for _, cmd := range []string{"status", "self"} {
			if out, want := p(cmd, erin), erin+": unknown (0x0000, seq 0)\n"; out != want {
				t.Errorf("%s of a never-seen contact printed %q, want %q", cmd, out, want)
			}
			r := decodeReply(t, p(cmd, erin, "--json"))
			if want := (client.Reply{Contact: erin, Status: events.Unknown}); r != want {
				t.Errorf("%s --json of a never-seen contact = %+v, want %+v", cmd, r, want)
			}
		}
	})

	t.Run("invisible", func(t *testing.T) {
		online := decodeSet(t, p("set", carol, "online", "--name", "Carol", "--json"))
		p("self", carol, "--min-seq", strconv.FormatUint(online.Seq, 10)) // applied
		// status's seq is a feed position: its own, not the set's log seq.
		onlinePos := decodeReply(t, p("status", carol, "--json")).Seq
		offline := decodeSet(t, p("set", carol, "offline", "--json"))
		invisible := decodeSet(t, p("set", carol, "invisible", "--json"))
		if !online.Changed || !offline.Changed || !invisible.Changed {
			t.Fatalf("sets online, offline, invisible: %+v %+v %+v; want three changes", online, offline, invisible)
		}
		minSeq := strconv.FormatUint(invisible.Seq, 10)
		p("self", carol, "--min-seq", minSeq) // applied
		offlinePos := strconv.FormatUint(onlinePos+1, 10)

		status := p("status", carol, "--min-seq", offlinePos)
		if want := fmt.Sprintf("Carol <%s>: offline (0x0001, seq %d)\n", carol, onlinePos+1); status != want {
			t.Errorf("status of an invisible contact printed %q, want %q (offline, at the feed position of the last visible change)", status, want)
		}
		statusJSON := p("status", carol, "--min-seq", offlinePos, "--json")
		if r := decodeReply(t, statusJSON); r != (client.Reply{Contact: carol, Name: "Carol", Status: events.Offline, Seq: onlinePos + 1}) {
			t.Errorf("status --json of an invisible contact = %+v, want offline at seq %d", r, onlinePos+1)
		}
		// The hidden change is no feed position: the next one is not reached.
		if r := presence(t, "status", carol, "--min-seq", strconv.FormatUint(onlinePos+2, 10), "--server", s.url); r.code == 0 ||
			!strings.Contains(r.stderr, "not reached") {
			t.Errorf("status --min-seq one past the last visible change, after a hidden one: %s; want it not reached", r)
		}
		for _, out := range []string{status, statusJSON} {
			if strings.Contains(out, "invisible") || strings.Contains(out, "0x0006") || strings.Contains(out, `"code":6`) {
				t.Errorf("status output %q reveals invisible", out)
			}
		}

		self := p("self", carol, "--min-seq", minSeq)
		if want := fmt.Sprintf("Carol <%s>: invisible (0x0006, seq %d)\n", carol, invisible.Seq); self != want {
			t.Errorf("self of an invisible contact printed %q, want %q", self, want)
		}
		if r := decodeReply(t, p("self", carol, "--min-seq", minSeq, "--json")); r != (client.Reply{Contact: carol, Name: "Carol", Status: events.Invisible, Seq: invisible.Seq}) {
			t.Errorf("self --json of an invisible contact = %+v, want invisible at seq %d", r, invisible.Seq)
		}
	})

	t.Run("unknown to invisible reads as unknown to offline", func(t *testing.T) {
		res := decodeSet(t, p("set", dave, "invisible", "--json"))
		minSeq := strconv.FormatUint(res.Seq, 10)
		if r := decodeReply(t, p("self", dave, "--min-seq", minSeq, "--json")); r != (client.Reply{Contact: dave, Status: events.Invisible, Seq: res.Seq}) {
			t.Errorf("self of a contact that went invisible first = %+v, want invisible at seq %d", r, res.Seq)
		}
		// dave's is the last visible change: its feed position is the feed's end.
		r := decodeReply(t, p("status", dave, "--json"))
		if r.Contact != dave || r.Status != events.Offline || r.Seq == 0 {
			t.Errorf("status of a contact that went invisible first = %+v, want offline at a feed position", r)
		}
		if again := decodeReply(t, p("status", dave, "--min-seq", strconv.FormatUint(r.Seq, 10), "--json")); again != r {
			t.Errorf("status --min-seq %d = %+v, want %+v", r.Seq, again, r)
		}
	})
}

// oneLineError checks what a failed run printed: nothing on stdout, and on
// stderr one line "presence: ..." holding each of want.
func oneLineError(t *testing.T, r cliResult, wantCode int, want ...string) {
	t.Helper()
	if r.code != wantCode {
		t.Errorf("exit code %d, want %d (%s)", r.code, wantCode, r)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "presence: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr %q, want one line starting \"presence: \"", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not say %q", r.stderr, w)
		}
	}
}

// TestBadInput: a value on the command line that is not accepted is a usage
// mistake, exit 2, whether the CLI or the service notices it, and the message
// names the value and says why.
func TestBadInput(t *testing.T) {
	s := startServer(t)
	const c = "sip:frank@contoso.com"
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown status", []string{"set", c, "bogus"}, []string{`"bogus"`, "accepted: offline, online"}},
		{"local-only status by value", []string{"set", c, "0x200"}, []string{"local-connecting-to-server (0x0200)", "local-only"}},
		{"local-only status by decimal value", []string{"set", c, "512"}, []string{"local-connecting-to-server (0x0200)", "local-only"}},
		{"local-only status by constant", []string{"set", c, "MISTATUS_LOCAL_CONNECTING_TO_SERVER"}, []string{"local-connecting-to-server (0x0200)", "local-only"}},
		{"local-only status by name", []string{"set", c, "local-finding-server"}, []string{"local-finding-server (0x0100)", "local-only"}},
		{"unknown is not settable", []string{"set", c, "unknown"}, []string{"unknown (0x0000)", "never-seen"}},
		{"idle is not a user's choice", []string{"set", c, "idle"}, []string{"idle (0x0012)", `"endpoint"`}},
		{"unknown cause", []string{"set", c, "away", "--cause", "boss"}, []string{`"boss"`, `"user"`}},
		{"the engine's own cause", []string{"set", c, "away", "--cause", "engine"}, []string{`"engine"`, "the engine's own", `accepted: "user", "endpoint"`}},
		{"invalid contact for set", []string{"set", "bad contact", "away"}, []string{`"bad contact"`, "space"}},
		{"invalid contact for status", []string{"status", "bad contact"}, []string{`"bad contact"`, "space"}},
		{"invalid contact for self", []string{"self", "bad contact"}, []string{`"bad contact"`, "space"}},
		{"invalid contact for watch", []string{"watch", "bad contact"}, []string{`"bad contact"`, "space"}},
		{"invalid durable name", []string{"watch", "--durable", "a.b"}, []string{`"a.b"`}},
		{"durable name too long", []string{"watch", "--durable", strings.Repeat("d", 256)}, []string{"(256 bytes): at most 255 bytes"}},
		{"durable name too long, in two-byte characters", []string{"watch", "--durable", "d" + strings.Repeat("é", 130)}, []string{`"d` + strings.Repeat("é", 31) + `"...`, "(261 bytes): at most 255 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := presence(t, append(tt.args, "--server", s.url)...)
			oneLineError(t, r, 2, tt.want...)
		})
	}
	t.Run("nothing was appended", func(t *testing.T) {
		if out, want := s.cmd(t)("self", c), c+": unknown (0x0000, seq 0)\n"; out != want {
			t.Errorf("self after refused sets printed %q, want %q", out, want)
		}
	})
}

// TestUsage: wrong arguments and flags exit 2 with one line, before anything is
// opened or connected (the --server given leads nowhere).
func TestUsage(t *testing.T) {
	nowhere := fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t))
	dir := t.TempDir()
	serve := func(args ...string) []string {
		return append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, args...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"set without arguments", []string{"set"}, "set takes CONTACT and STATUS (got 0 arguments)"},
		{"set with one argument", []string{"set", "a"}, "set takes CONTACT and STATUS (got 1 argument)"},
		{"set with three arguments", []string{"set", "a", "away", "b"}, "set takes CONTACT and STATUS (got 3 arguments)"},
		{"status without arguments", []string{"status"}, "status takes one CONTACT (got 0 arguments)"},
		{"status with two arguments", []string{"status", "a", "b"}, "status takes one CONTACT (got 2 arguments)"},
		{"self without arguments", []string{"self"}, "self takes one CONTACT (got 0 arguments)"},
		{"self with two arguments", []string{"self", "a", "b"}, "self takes one CONTACT (got 2 arguments)"},
		{"serve with an argument", serve("extra"), "serve takes no arguments (got 1 argument)"},
		{"unknown flag", []string{"set", "a", "away", "--bogus"}, "--bogus"},
		{"bad flag value", []string{"status", "a", "--timeout", "soon"}, `"soon"`},
		{"unknown command", []string{"bogus"}, `"bogus"`},
		{"negative --min-seq", []string{"status", "a", "--min-seq", "-1"}, "--min-seq -1"},
		{"negative --expect-seq", []string{"set", "a", "away", "--expect-seq", "-1"}, "--expect-seq -1"},
		{"two starts for watch", []string{"watch", "--all", "--since", "1h"}, "give one"},
		{"--from-seq 0", []string{"watch", "--from-seq", "0"}, "--from-seq 0"},
		{"bad --since", []string{"watch", "--since", "yesterday"}, `"yesterday"`},
		{"negative --timeout", []string{"status", "a", "--timeout", "-1s"}, "--timeout -1s: want a duration above 0"},
		{"no --timeout", []string{"watch", "--timeout", "0s"}, "--timeout 0s: want a duration above 0"},
		{"bad --log-format", serve("--log-format", "xml"), `"xml"`},
		{"bad --log-level", serve("--log-level", "loud"), `"loud"`},
		{"bad --sync", serve("--sync", "never"), `"never"`},
		{"--sync with --nats", serve("--nats", nowhere, "--sync", "always"), "--sync"},
		{"negative --replicas", serve("--replicas", "-1"), "--replicas -1"},
		{"short --owner-ttl", serve("--owner-ttl", "500ms"), "--owner-ttl 500ms: want 1s or more"},
		{"too many --partitions", serve("--partitions", "65"), "--partitions 65: want 1 to 64"},
		{"negative --partitions of bench", []string{"bench", "--partitions", "-2"}, "--partitions -2: want 1 to 64"},
		{"bad --memory-limit", serve("--memory-limit", "lots"), `"lots"`},
		{"fractional --memory-limit", serve("--memory-limit", "1.5GiB"), `"1.5GiB"`},
		{"negative --duration", []string{"bench", "--duration", "-1s"}, "--duration -1s: want a positive duration"},
		{"zero --duration", []string{"bench", "--duration", "0s"}, "--duration 0s: want a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if args[0] != "serve" && args[0] != "bogus" && args[0] != "bench" {
				args = append(args, "--server", nowhere)
			}
			oneLineError(t, presence(t, args...), 2, tt.want)
		})
	}
}

// TestFlagErrorSaysHelp: a mistake in a flag, on any command, says what to run
// for the command's flags.
func TestFlagErrorSaysHelp(t *testing.T) {
	nowhere := fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag of set", []string{"set", "--nmae", "x", "--server", nowhere}, "unknown flag: --nmae (see 'presence set --help')"},
		{"unknown flag of the root", []string{"--nmae"}, "unknown flag: --nmae (see 'presence --help')"},
		{"unknown shorthand of replay", []string{"replay", "-x", "--server", nowhere}, "unknown shorthand flag: 'x' in -x (see 'presence replay --help')"},
		{"bad value of status", []string{"status", "a", "--timeout", "soon", "--server", nowhere}, `"soon" for "--timeout" flag`},
		{"bad value of status, the help", []string{"status", "a", "--timeout", "soon", "--server", nowhere}, "(see 'presence status --help')"},
		{"no value for watch", []string{"watch", "--since"}, "flag needs an argument: --since (see 'presence watch --help')"},
		{"unknown flag of serve", []string{"serve", "--bogus"}, "unknown flag: --bogus (see 'presence serve --help')"},
		{"unknown flag of auth", []string{"auth", "--bogus"}, "(see 'presence auth --help')"},
		{"a user named as the engine's account", []string{"auth", "ENG", "subscriber", "--account", "ENG"}, `NAME "ENG" is the engine's account's`},
		{"a bad account name", []string{"auth", "eng", "engine", "--account", "a b"}, `--account: account "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oneLineError(t, presence(t, tt.args...), 2, tt.want)
		})
	}
}

// TestNoServer: a client command with nothing at --server says so on one line,
// pointing at `presence serve`, and exits 1.
func TestNoServer(t *testing.T) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t))
	for _, args := range [][]string{
		{"set", "sip:alice@contoso.com", "away"},
		{"status", "sip:alice@contoso.com"},
		{"self", "sip:alice@contoso.com"},
		{"watch"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := presence(t, append(args, "--server", url, "--timeout", "2s")...)
			oneLineError(t, r, 1, "cannot connect to "+url, "`presence serve`")
		})
	}
}

// TestNoEngine: a NATS server without the engine behind it is an error on one
// line that says nothing answers, exit 1.
func TestNoEngine(t *testing.T) {
	srv := natstest.Start(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "sip:alice@contoso.com", "away"}, "no presence service answers"},
		{[]string{"status", "sip:alice@contoso.com"}, "no presence service answers"},
		{[]string{"self", "sip:alice@contoso.com"}, "no presence service answers"},
		{[]string{"watch"}, events.FeedStream},
	} {
		t.Run(tt.args[0], func(t *testing.T) {
			r := presence(t, append(tt.args, "--server", srv.ClientURL(), "--timeout", "2s")...)
			oneLineError(t, r, 1, tt.want)
		})
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"root", []string{"--help"}, []string{"Usage:", "presence [command]", "serve", "set", "status", "self", "watch"}},
		{"root -h", []string{"-h"}, []string{"Usage:", "presence [command]"}},
		{"help set", []string{"help", "set"}, []string{"Usage:\n  presence set CONTACT STATUS"}},
		{"serve", []string{"serve", "--help"}, []string{"Usage:\n  presence serve", "--data", "--listen", "--nats", "--sync", "SIGTERM"}},
		{"set", []string{"set", "--help"}, []string{"Usage:\n  presence set CONTACT STATUS", "--request-id", "--cause", "--expect-seq", "be-right-back", "MISTATUS_BUSY"}},
		{"status", []string{"status", "--help"}, []string{"Usage:\n  presence status CONTACT", "--min-seq", "--server", "--json"}},
		{"self", []string{"self", "--help"}, []string{"Usage:\n  presence self CONTACT", "invisible", "--min-seq"}},
		{"watch", []string{"watch", "--help"}, []string{"Usage:\n  presence watch [CONTACT ...]", "--durable", "--since", "--from-seq", "--all"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := presence(t, tt.args...)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("presence %s: %s; want exit 0 and nothing on stderr", strings.Join(tt.args, " "), r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("presence %s printed\n%s\nwhich does not hold %q", strings.Join(tt.args, " "), r.stdout, w)
				}
			}
		})
	}
	t.Run("set lists only settable statuses", func(t *testing.T) {
		out := presence(t, "set", "--help").stdout
		for _, st := range []string{"local-finding-server", "unknown,"} {
			if strings.Contains(out, st) {
				t.Errorf("set --help lists %q, which cannot be set", st)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		if r := presence(t, "--version"); r.code != 0 || !strings.Contains(r.stdout, engine.Version) {
			t.Errorf("presence --version: %s; want the version %s", r, engine.Version)
		}
	})
}

func TestParseSize(t *testing.T) {
	for text, want := range map[string]int64{
		"4096": 4096, "512MiB": 512 << 20, "512MB": 512 << 20, "512m": 512 << 20, "2GiB": 2 << 30,
		" 3 GiB ": 3 << 30, "1TiB": 1 << 40, "64KiB": 64 << 10, "100B": 100,
	} {
		if got, err := parseSize(text); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
	for _, text := range []string{"", "0", "-1GiB", "GiB", "1.5GiB", "lots", "9999999TiB"} {
		if got, err := parseSize(text); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", text, got)
		}
	}
}
