package engine_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
)

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
			natstest.CopyDir(t, older, jsDir)
		}},
		{"recreated", func(t *testing.T, jsDir, _ string) {
			if err := os.RemoveAll(jsDir); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := enginetest.Start(t, dir, engine.Options{})
			enginetest.SetMany(t, e, 60, 0)
			e.Stop(t)
			older := filepath.Join(t.TempDir(), "jetstream")
			natstest.CopyDir(t, filepath.Join(dir, "jetstream"), older)

			e = enginetest.Start(t, dir, engine.Options{})
			ahead := enginetest.SetMany(t, e, 90, 2)
			e.Stop(t)
			tc.restore(t, filepath.Join(dir, "jetstream"), older)

			e = enginetest.Start(t, dir, engine.Options{})
			if e.Metrics().Rebuilds == 0 {
				t.Errorf("the projection was at seq %d, the log is behind it now, and no rebuild happened", ahead)
			}
			r, err := e.Verify(natstest.Context(t), nil)
			if err != nil || !r.OK() {
				t.Fatalf("verify after the log %s: %+v, %v", tc.name, r, err)
			}
			last := enginetest.SetMany(t, e, 30, 4)
			js := e.JetStream(t)
			log := enginetest.ReadLog(t, js)
			enginetest.CheckChains(t, log)
			if r, err := e.Verify(natstest.Context(t), nil); err != nil || !r.OK() || r.Seq != last {
				t.Errorf("verify after more writes: %+v, %v", r, err)
			}
		})
	}
}
