package engine_test

import (
	"fmt"
	"log/slog"
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

// damage overwrites 64 bytes a third of the way into every file of the
// projection's store whose name matches pattern, or all of it with whole.
func damage(t *testing.T, dir, pattern string, whole bool) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "projection", pattern))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		from, to := len(data)/3, min(len(data)/3+64, len(data))
		if whole {
			from, to = 0, len(data)
		}
		for i := from; i < to; i++ {
			data[i] ^= 0xa5
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return len(files)
}

func TestDamagedProjectionIsRebuilt(t *testing.T) {
	for _, tc := range []struct {
		name, files string
		whole       bool
	}{
		{"tables", "*.sst", false},       // found by the scan at start, or by a read
		{"manifest", "MANIFEST-*", true}, // found when the store is opened
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := enginetest.Start(t, dir, engine.Options{})
			c := e.Client(t)
			want := map[string]client.Reply{}
			var last uint64
			for i := range 400 {
				contact := fmt.Sprintf("sip:user%d@contoso.com", i%80)
				s := []events.Status{events.Online, events.Away, events.Busy, events.Invisible, events.Offline}[(i+i/80)%5]
				res, err := c.Set(natstest.Context(t), client.SetRequest{Contact: contact, Status: s, Name: "User"})
				if err != nil {
					t.Fatal(err)
				}
				if res.Changed {
					want[contact] = client.Reply{Contact: contact, Name: "User", Status: s, Seq: res.Seq}
					last = res.Seq
				}
			}
			if err := e.Projection().WaitApplied(natstest.Context(t), last); err != nil {
				t.Fatal(err)
			}
			e.Stop(t)
			if n := damage(t, dir, tc.files, tc.whole); n == 0 {
				t.Fatalf("the projection has no %s file to damage", tc.files)
			}

			logs := &natstest.LockedBuffer{}
			e = enginetest.Start(t, dir, engine.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			c = e.Client(t)
			// Every answer is right or an error, never wrong; once repaired,
			// every answer is right.
			natstest.WaitFor(t, "the damaged projection to be repaired", func() bool {
				repaired := e.Metrics().Damaged > 0
				for contact, w := range want {
					got, err := c.Self(natstest.Context(t), contact, last)
					if err != nil {
						repaired = false
						continue
					}
					if got != w {
						t.Fatalf("self of %s = %+v, want %+v: a damaged store answered wrong", contact, got, w)
					}
				}
				return repaired && !e.Repairing()
			})
			if !strings.Contains(logs.String(), `"level":"ERROR","msg":"projection: the store is damaged`) {
				t.Errorf("no error was logged about the damage; logs:\n%s", logs)
			}
			r, err := e.Verify(natstest.Context(t), nil)
			if err != nil || !r.OK() {
				t.Errorf("verify after the repair: %+v, %v", r, err)
			}
		})
	}
}
