package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// TestDecodeEndpointRequest: what an endpoint's request may hold, and a
// clear 400 naming the value for what it may not.
func TestDecodeEndpointRequest(t *testing.T) {
	got, err := client.DecodeEndpointRequest("a", client.OpSignIn, []byte(`{"endpoint":"desk-1","kind":"desktop","status":"busy"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (client.EndpointRequest{Contact: "a", Op: client.OpSignIn, Endpoint: "desk-1", Kind: events.KindDesktop,
		Lease: client.DefaultLease, Status: events.Busy}); got != want {
		t.Errorf("sign-in = %+v, want %+v (the default lease)", got, want)
	}
	round, err := client.DecodeEndpointRequest("a", client.OpSignIn, client.EncodeEndpointRequest(got))
	if err != nil || round != got {
		t.Errorf("encoded and decoded again: %+v, %v; want %+v", round, err, got)
	}
	tests := []struct {
		name, op, body, want string
	}{
		{"no endpoint", client.OpHeartbeat, `{}`, `endpoint`},
		{"an endpoint ID with a space", client.OpSignOut, `{"endpoint":"my desk"}`, `"my desk"`},
		{"a kind no endpoint is", client.OpSignIn, `{"endpoint":"d","kind":"toaster"}`, `"toaster"`},
		{"a lease too short", client.OpSignIn, `{"endpoint":"d","kind":"web","lease_s":1}`, `lease_s 1: accepted: 5 to 14400`},
		{"a status no user chooses", client.OpSignIn, `{"endpoint":"d","kind":"web","status":"unknown"}`, `unknown`},
		{"a heartbeat with a sign-in's fields", client.OpHeartbeat, `{"endpoint":"d","kind":"web"}`, `a heartbeat names the endpoint only`},
		{"an unknown field", client.OpSignOut, `{"endpoint":"d","why":"bye"}`, `"why"`},
		{"a report's fields on a sign-in", client.OpSignIn, `{"endpoint":"d","kind":"web","inactive_for_s":60}`, `are a report's`},
		{"a preference until no time", client.OpPrefer, `{"status":"busy","until":"tomorrow"}`, `until "tomorrow"`},
		{"a preference of an endpoint", client.OpPrefer, `{"status":"busy","endpoint":"d"}`, `a prefer is`},
		{"settings without transmit_idle", client.OpSettings, `{"idle_after_s":300}`, `transmit_idle required`},
		{"away before idle", client.OpSettings, `{"transmit_idle":true,"idle_after_s":600,"away_after_s":300}`, `away no sooner`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.DecodeEndpointRequest("a", tt.op, []byte(tt.body))
			if !errors.Is(err, client.ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %s: %v, want a bad request naming %s", tt.op, tt.body, err, tt.want)
			}
		})
	}
}
