package main

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/presence-engine/presence/engine"
)

// statsCommand is the operations page's command that shows the engine's figures.
var statsCommand = regexp.MustCompile("(?m)^nats micro info presence --endpoint (\\w+)\\n```\\n\\n```text\\n")

// TestOperationsPageServiceStats: the operations page's operations section names the command
// that shows how far the projection and the feed trail the log, and the output
// it shows is what that command prints from a real engine: natscli prints each
// endpoint's "data" of $SRV.STATS under "Endpoint Specific Statistics",
// indented by 4 (and its stats table, without --json, does not print it). The
// figures' values vary; their names, nesting and order are compared.
func TestOperationsPageServiceStats(t *testing.T) {
	page, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(page)
	m := statsCommand.FindStringSubmatchIndex(text)
	if m == nil {
		t.Fatalf("docs/operations.md shows no output of `nats micro info presence --endpoint NAME` (a ```sh block with the command, then a ```text block)")
	}
	endpoint := text[m[2]:m[3]]
	block, _, ok := strings.Cut(text[m[1]:], "\n```\n")
	if !ok {
		t.Fatalf("docs/operations.md: the output of the stats command has no end")
	}
	_, shown, ok := strings.Cut(block, "  Endpoint Specific Statistics:\n\n")
	if !ok {
		t.Fatalf("docs/operations.md: the output of the stats command has no \"Endpoint Specific Statistics\":\n%s", block)
	}
	// The figures end with the first closing brace at their own indent.
	if i := strings.Index(shown+"\n", "\n    }\n"); i >= 0 {
		shown = shown[:i+len("\n    }")]
	}
	if !strings.Contains(shown, `"fold_lag"`) || !strings.Contains(shown, `"lag"`) {
		t.Errorf("docs/operations.md: the stats shown hold no fold_lag or feed lag:\n%s", shown)
	}

	s := startServer(t)
	nc, err := nats.Connect(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject, err := micro.ControlSubject(micro.StatsVerb, engine.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(subject, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("stats of the %s service: %v", engine.ServiceName, err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatalf("stats of the %s service: %v in %s", engine.ServiceName, err, msg.Data)
	}
	var data json.RawMessage
	for _, e := range stats.Endpoints {
		if e.Name == endpoint {
			data = e.Data
		}
	}
	if data == nil {
		t.Fatalf("docs/operations.md shows the stats of endpoint %q, which the service has not or which has no data: %s", endpoint, msg.Data)
	}
	// As natscli v0.5.0 prints it (service_command.go, infoAction).
	var printed bytes.Buffer
	if err := json.Indent(&printed, data, "    ", "    "); err != nil {
		t.Fatal(err)
	}
	values := regexp.MustCompile(`: (\d+|true|false)`)
	want := values.ReplaceAllString("    "+printed.String(), ": V")
	got := values.ReplaceAllString(shown, ": V")
	if got != want {
		t.Errorf("docs/operations.md shows the figures as\n%q\nbut `nats micro info presence --endpoint %s` prints them as\n%q", got, endpoint, want)
	}
}
