package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientLeavesTheServerOut: what a backend imports to use presence holds
// no part of the server side: no nats-server, Pebble or Prometheus package is
// among the client's dependencies.
func TestClientLeavesTheServerOut(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to list the client's dependencies: %v", err)
	}
	out, err := exec.Command(gotool, "list", "-deps", "github.com/presence-engine/presence/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		for _, server := range []string{"nats-io/nats-server", "cockroachdb/pebble", "prometheus/"} {
			if strings.Contains(dep, server) {
				t.Errorf("the client depends on %s", dep)
			}
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
}
