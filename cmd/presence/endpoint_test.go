package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// seqOf returns the N of the "(seq N)" that out holds.
func seqOf(t *testing.T, out string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`\(seq (\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output %q holds no (seq N)", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// TestEndpointVerbs: signin, heartbeat, prefer, settings and signout, as a
// user types them, each printing the contact's status after it.
func TestEndpointVerbs(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	const alice = "sip:alice@contoso.com"

	out := p("signin", alice, "desk-1", "--kind", "desktop", "--lease", "2m")
	if want := fmt.Sprintf("%s: unknown -> online (seq %d); desk-1's lease ends ", alice, seqOf(t, out)); !strings.HasPrefix(out, want) {
		t.Errorf("signin printed %q, want it to begin %q", out, want)
	}
	out = p("signin", alice, "phone", "--kind", "mobile", "--status", "busy")
	if want := fmt.Sprintf("%s: online -> busy (seq %d)", alice, seqOf(t, out)); !strings.HasPrefix(out, want) {
		t.Errorf("signin of the phone, busy chosen, printed %q, want it to begin %q", out, want)
	}
	out = p("heartbeat", alice, "desk-1")
	if want := fmt.Sprintf("%s: busy (seq %d); desk-1's lease ends ", alice, seqOf(t, out)); !strings.HasPrefix(out, want) {
		t.Errorf("heartbeat printed %q, want it to begin %q", out, want)
	}
	out = p("prefer", alice, "do-not-disturb", "--for", "1h")
	if want := fmt.Sprintf("%s: busy -> do-not-disturb (seq %d)\n", alice, seqOf(t, out)); out != want {
		t.Errorf("prefer printed %q, want %q", out, want)
	}
	out = p("prefer", alice, "none")
	if want := fmt.Sprintf("%s: do-not-disturb -> busy (seq %d)\n", alice, seqOf(t, out)); out != want {
		t.Errorf("prefer none printed %q, want %q", out, want)
	}
	out = p("settings", alice, "--transmit-idle=false")
	if want := fmt.Sprintf("%s: busy (seq %d)\n", alice, seqOf(t, out)); out != want {
		t.Errorf("settings printed %q, want %q (a change of settings, not of status)", out, want)
	}
	p("signout", alice, "phone")
	out = p("signout", alice, "desk-1")
	if want := fmt.Sprintf("%s: online -> offline (seq %d)\n", alice, seqOf(t, out)); out != want {
		t.Errorf("the last signout printed %q, want %q", out, want)
	}
	r := presence(t, "heartbeat", alice, "desk-1", "--server", s.url)
	if r.code == 0 || !strings.Contains(r.stderr, "not signed in") {
		t.Errorf("heartbeat of an endpoint signed out: %s; want an error saying so", r)
	}
	r = presence(t, "signin", alice, "desk-1", "--kind", "toaster", "--server", s.url)
	if r.code != 2 || !strings.Contains(r.stderr, `"toaster"`) {
		t.Errorf("signin --kind toaster: %s; want a usage error naming it", r)
	}
}
