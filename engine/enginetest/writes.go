package enginetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// Mixed is the statuses WriteRandom draws from: visible ones, and invisible
// and offline, whose changes between them are hidden.
var Mixed = []events.Status{events.Online, events.Away, events.Busy, events.Invisible, events.Offline,
	events.OnThePhone, events.BeRightBack}

// Setter sets statuses: an engine's Writer, a client.Client, a LogWriter.
type Setter interface {
	Set(context.Context, client.SetRequest) (client.SetResult, error)
}

// WriteRandom sets n statuses drawn from Mixed over contacts c0 to
// c<contacts-1> through w.
func WriteRandom(t testing.TB, w Setter, rng *rand.Rand, contacts, n int) {
	t.Helper()
	for range n {
		_, err := w.Set(context.Background(), client.SetRequest{Contact: fmt.Sprintf("c%d", rng.IntN(contacts)),
			Status: Mixed[rng.IntN(len(Mixed))]})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// SetMany sets n statuses over contacts c0 to c5 (cycling through online,
// away, invisible, offline and busy from offset on), waits until the
// projection and the feed have them, and returns the last log sequence. An
// engine whose log has one partition only: it sets through e.Writer().
func SetMany(t testing.TB, e *Running, n, offset int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		s := []events.Status{events.Online, events.Away, events.Invisible, events.Offline, events.Busy}[(i+offset)%5]
		res, err := e.Writer().Set(natstest.Context(t), client.SetRequest{Contact: fmt.Sprintf("c%d", i%6), Status: s})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, res.Seq)
	}
	if err := e.Projection().WaitApplied(natstest.Context(t), last); err != nil {
		t.Fatal(err)
	}
	e.WaitFeed(t)
	return last
}

// Users are a user of each role for an engine that authenticates
// (engine.Options.Auth); each one's password is its name and "-pw".
var Users = &engine.AuthConfig{Users: []engine.AuthUser{
	{Name: "alice", Password: "alice-pw", Role: engine.RoleUser, Contact: "sip:alice@contoso.com"},
	{Name: "crm", Password: "crm-pw", Role: engine.RoleSubscriber},
	{Name: "audit", Password: "audit-pw", Role: engine.RoleAuditor},
	{Name: "ops", Password: "ops-pw", Role: engine.RoleOperator},
}}

// ConnectAs connects to url as one of Users, with the inbox prefix its
// permissions call for; the connection is closed when the test ends.
func ConnectAs(t testing.TB, url, user string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.UserInfo(user, user+"-pw"), nats.CustomInboxPrefix(client.InboxPrefix(user))}, opts...)
	return ConnectURL(t, url, opts...)
}

// LogWriter appends events straight to the log, each contact's previous status
// the one it appended last for it (unknown at first): for tests that write a
// log no engine owns (stopped, cut off, a log made anew). A log of one
// partition only: it appends to PRESENCE itself.
type LogWriter struct {
	JS   jetstream.JetStream
	Now  func() time.Time // the clock of event times; zero means time.Now
	last map[string]events.Status
}

// Set appends the change, unless the contact already has the status as far as
// w knows.
func (w *LogWriter) Set(ctx context.Context, req client.SetRequest) (client.SetResult, error) {
	if w.last == nil {
		w.last = map[string]events.Status{}
	}
	prev, ok := w.last[req.Contact]
	if !ok {
		prev = events.Unknown
	}
	if prev == req.Status {
		return client.SetResult{Contact: req.Contact, Status: prev, Previous: prev}, nil
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	e := events.Event{Contact: req.Contact, Name: req.Name, Status: req.Status, Previous: prev, At: now().UTC(), Cause: req.Cause, RequestID: req.RequestID}
	ack, err := w.JS.PublishMsg(ctx, &nats.Msg{Subject: events.EventSubject(req.Contact), Data: e.Encode()})
	if err != nil {
		return client.SetResult{}, err
	}
	w.last[req.Contact] = req.Status
	return client.SetResult{Contact: req.Contact, Status: req.Status, Previous: prev, Seq: ack.Sequence, Changed: true}, nil
}
