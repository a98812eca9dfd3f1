package engine_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// TestAVerifyOnAServerOfYourOwn: on a server with the accounts presence auth
// prints, where the engine's user may answer a request once only
// (allow_responses) and the auditor's requests come through an import from
// its own account, an auditor's verify reports its progress (on
// events.ProgressPrefix and the key the request names, which the auditor may
// read) and then its answer. Had the progress gone to the reply subject, the
// first message would have spent the one answer allowed, and the verify
// would hang; had it gone to a subject named after the reply subject, it
// would have gone to one the server made up for the import.
func TestAVerifyOnAServerOfYourOwn(t *testing.T) {
	was := engine.SetProgressEvery(time.Millisecond)
	t.Cleanup(func() { engine.SetProgressEvery(was) })
	eng := engine.AuthUser{Name: "eng", Password: "eng-pw"}
	aud := engine.AuthUser{Name: "audit", Password: "audit-pw", Role: engine.RoleAuditor}
	conf, err := engine.ConfigJSON(map[string]any{"accounts": map[string]engine.AccountConfig{
		engine.EngineAccount: engine.EngineAccountConfig(eng.Name, eng.Password, engine.EnginePermissions()),
		aud.Name:             aud.Account(engine.EngineAccount),
	}}, "")
	if err != nil {
		t.Fatal(err)
	}
	s := natstest.StartWith(t, natstest.Options{Config: string(conf)})
	r := enginetest.Start(t, "", engine.Options{NATSURL: s.ClientURL(), NATSOptions: []nats.Option{nats.UserInfo(eng.Name, eng.Password)}})
	ctx := natstest.Context(t)
	for i := range 300 {
		if _, err := r.Writer().Set(ctx, client.SetRequest{Contact: fmt.Sprintf("c%d", i), Status: events.Online}); err != nil {
			t.Fatal(err)
		}
	}
	admin := engine.NewAdminClient(client.New(enginetest.ConnectAs(t, s.ClientURL(), aud.Name)))
	var progressed atomic.Int64
	report, err := admin.Verify(ctx, func(projections.Progress) { progressed.Add(1) })
	if err != nil || !report.OK() {
		t.Fatalf("the auditor's verify: %+v, %v", report, err)
	}
	if progressed.Load() == 0 {
		t.Fatal("the verify reported no progress: it ran too fast to show the answer comes after progress; make it longer")
	}
	t.Logf("%d progress messages before the answer", progressed.Load())
}
