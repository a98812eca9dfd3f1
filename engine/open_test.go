package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestDataDirectoryHeldByOneEngine: a second engine on a directory in use is
// refused before it starts a server on the first one's store, with an error
// that says so; the first goes on unharmed, and once it is closed the
// directory opens again.
func TestDataDirectoryHeldByOneEngine(t *testing.T) {
	dir := t.TempDir()
	r := enginetest.Start(t, dir, engine.Options{})
	ctx := natstest.Context(t)
	if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: "alice", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	// The same directory, as given and through a symbolic link: the lock
	// never conflicts within one process, so only its name tells them apart.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, link} {
		second, err := engine.Open(d, engine.Options{Listen: "127.0.0.1:0", Logger: natstest.Logger(t)})
		if err == nil {
			second.Close()
			t.Fatalf("a second engine opened a data directory in use, given as %s", d)
		}
		if msg := err.Error(); !strings.Contains(msg, "in use by another engine") || !strings.Contains(msg, d) {
			t.Errorf("second Open of %s: %q, want it to name %s as in use by another engine", d, msg, d)
		}
	}
	set, err := r.Writer().Set(ctx, client.SetRequest{Contact: "alice", Status: events.Away})
	if err != nil {
		t.Fatalf("the first engine after the second was refused: %v", err)
	}
	r.Stop(t)

	again := enginetest.Start(t, dir, engine.Options{})
	got, err := again.Reader().Status(ctx, "alice", set.Seq)
	if err != nil || got.Status != events.Away {
		t.Errorf("alice reads %+v, %v after the directory was opened again; want away", got, err)
	}
}

// TestDataDirectoryWhoseLockCannotBeMade: a lock file that cannot be made (a
// directory in its place) is said to be that, not blamed on another engine.
func TestDataDirectoryWhoseLockCannotBeMade(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, engine.LockFile), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(dir, engine.Options{Listen: "127.0.0.1:0", Logger: natstest.Logger(t)})
	if err == nil {
		e.Close()
		t.Fatal("an engine opened a data directory whose lock file is a directory")
	}
	if msg := err.Error(); strings.Contains(msg, "another engine") || !strings.Contains(msg, "cannot make its lock file") {
		t.Errorf("Open: %q, want it to say the lock file cannot be made, not that another engine holds it", msg)
	}
}
