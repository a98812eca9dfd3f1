package engine

import (
	"testing"

	"github.com/presence-engine/presence/events"
)

func TestSmoke(t *testing.T) {
	r := startEngine(t, "", Options{})
	c := r.client(t)
	ctx := ctxT(t)
	res, err := c.Set(ctx, SetRequest{Contact: "sip:alice@contoso.com", Status: events.Away, Name: "Alice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	st, err := c.Status(ctx, "sip:alice@contoso.com", res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
}
