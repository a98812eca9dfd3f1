package engine

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/presence-engine/presence/events"
)

// copyDir copies the tree at from to to.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setMany sets n statuses over a few contacts and returns the last sequence.
func setMany(t *testing.T, e *running, n, offset int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		s := []events.Status{events.Online, events.Away, events.Invisible, events.Offline, events.Busy}[(i+offset)%5]
		res, err := e.Writer().Set(ctxT(t), SetRequest{Contact: fmt.Sprintf("c%d", i%6), Status: s})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, res.Seq)
	}
	if err := e.Projection().WaitApplied(ctxT(t), last); err != nil {
		t.Fatal(err)
	}
	e.waitFeed(t)
	return last
}

// A log that went back (its store restored from an older copy) or was
// recreated empty, under a projection that had gone further: the engine notices,
// rebuilds the projection from the log as it now is, and the projection, the
// chains and the feed agree with it; writes go on from there.
func TestLogWentBackOrWasRecreated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restore func(t *testing.T, jetstreamDir, older string)
	}{
		{"back", func(t *testing.T, jsDir, older string) {
			if err := os.RemoveAll(jsDir); err != nil {
				t.Fatal(err)
			}
			copyDir(t, older, jsDir)
		}},
		{"recreated", func(t *testing.T, jsDir, _ string) {
			if err := os.RemoveAll(jsDir); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := startEngine(t, dir, Options{})
			setMany(t, e, 60, 0)
			e.stop(t)
			older := filepath.Join(t.TempDir(), "jetstream")
			copyDir(t, filepath.Join(dir, "jetstream"), older)

			e = startEngine(t, dir, Options{})
			ahead := setMany(t, e, 90, 2)
			e.stop(t)
			tc.restore(t, filepath.Join(dir, "jetstream"), older)

			e = startEngine(t, dir, Options{})
			if e.Metrics().Rebuilds == 0 {
				t.Errorf("the projection was at seq %d, the log is behind it now, and no rebuild happened", ahead)
			}
			r, err := e.Verify(ctxT(t), nil)
			if err != nil || !r.OK() {
				t.Fatalf("verify after the log %s: %+v, %v", tc.name, r, err)
			}
			last := setMany(t, e, 30, 4)
			js := e.jetStream(t)
			log := readLog(t, js)
			checkChains(t, log)
			if r, err := e.Verify(ctxT(t), nil); err != nil || !r.OK() || r.Seq != last {
				t.Errorf("verify after more writes: %+v, %v", r, err)
			}
		})
	}
}
