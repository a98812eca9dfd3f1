package engine

import (
	"strings"
	"testing"

	"github.com/presence-engine/presence/events"
)

// TestDataDirectoryHeldByOneEngine: a second engine on a directory in use is
// refused before it starts a server on the first one's store, with an error
// that says so; the first goes on unharmed, and once it is closed the
// directory opens again.
func TestDataDirectoryHeldByOneEngine(t *testing.T) {
	dir := t.TempDir()
	r := startEngine(t, dir, Options{})
	ctx := ctxT(t)
	if _, err := r.Writer().Set(ctx, SetRequest{Contact: "alice", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	second, err := Open(dir, Options{Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err == nil {
		second.Close()
		t.Fatal("a second engine opened a data directory in use")
	}
	if msg := err.Error(); !strings.Contains(msg, "in use by another engine") || !strings.Contains(msg, dir) {
		t.Errorf("second Open: %q, want it to name %s as in use by another engine", msg, dir)
	}
	set, err := r.Writer().Set(ctx, SetRequest{Contact: "alice", Status: events.Away})
	if err != nil {
		t.Fatalf("the first engine after the second was refused: %v", err)
	}
	r.stop(t)

	again := startEngine(t, dir, Options{})
	got, err := again.Reader().Status(ctx, "alice", set.Seq)
	if err != nil || got.Status != events.Away {
		t.Errorf("alice reads %+v, %v after the directory was opened again; want away", got, err)
	}
}
