package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8/decor"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

func TestCount(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"none", count(0, "contact", "contacts"), "0 contacts"},
		{"one", count(1, "contact", "contacts"), "1 contact"},
		{"two", count(2, "contact", "contacts"), "2 contacts"},
		{"uint64", count(uint64(1), "change", "changes"), "1 change"},
		{"irregular one", count(uint64(1), "feed entry", "feed entries"), "1 feed entry"},
		{"irregular many", count(uint64(3), "feed entry", "feed entries"), "3 feed entries"},
		{"progress of one", progressCount(decor.Statistics{Current: 0, Total: 1}), "0 / 1 event"},
		{"progress of many", progressCount(decor.Statistics{Current: 1, Total: 2}), "1 / 2 events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestCountsInOutput: the counts the commands print agree with their number:
// one contact, one event, one change, not "1 contacts".
func TestCountsInOutput(t *testing.T) {
	s := startServer(t)
	p := s.cmd(t)
	seq := decodeSet(t, p("set", "carol", "online", "--json")).Seq
	p("self", "carol", "--min-seq", fmt.Sprint(seq)) // the projection has applied it
	tests := []struct {
		name string
		out  string
		want string
	}{
		{"status --digest", p("status", "--digest"), fmt.Sprintf("projection digest: seq %d, 1 contact, sha256:", seq)},
		{"verify", p("verify"), fmt.Sprintf("checked the log up to seq %d: 1 event (0 not events), 1 contact, 1 feed entry for 1 visible change\n", seq)},
		{"verify's digest", p("verify"), fmt.Sprintf("projection digest: seq %d, 1 contact, sha256:", seq)},
		{"rebuild", p("rebuild"), fmt.Sprintf("projection digest: seq %d, 1 contact, sha256:", seq)},
		{"report", p("report", "carol"), "): 1 change\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(tt.out, tt.want) {
				t.Errorf("printed\n%s\nwant %q in it", tt.out, tt.want)
			}
		})
	}
	t.Run("wrong number of arguments", func(t *testing.T) {
		oneLineError(t, presence(t, "status", "a", "b", "--server", s.url), 2, "(got 2 arguments)")
		oneLineError(t, presence(t, "set", "a", "--server", s.url), 2, "(got 1 argument)")
	})
}

// TestPrintReplyLastActive: a status line says when the contact was last
// active, when the reply has it, and nothing of it otherwise.
func TestPrintReplyLastActive(t *testing.T) {
	r := client.Reply{Contact: "sip:kai@contoso.com", Name: "Kai", Status: events.Idle, Seq: 4}
	var b strings.Builder
	if err := printReply(&b, r, false); err != nil || strings.Contains(b.String(), "last active") {
		t.Fatalf("without last active: %q, %v", b.String(), err)
	}
	b.Reset()
	r.LastActive = time.Date(2026, 12, 7, 11, 57, 0, 0, time.UTC)
	if err := printReply(&b, r, false); err != nil || !strings.HasSuffix(b.String(), "seq 4, last active 2026-12-07T11:57:00Z)\n") {
		t.Fatalf("with last active: %q, %v", b.String(), err)
	}
}
