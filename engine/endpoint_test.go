package engine_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// clock is a test's clock: it moves only when the test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// looked waits until the owner has looked for leases that ended (and
// statuses that time changed) twice more, the second time at the clock as it
// is now, and until its projection has applied whatever it appended.
func looked(t testing.TB, r *enginetest.Running) {
	t.Helper()
	w := r.Writer()
	from := w.ExpiryChecks()
	natstest.WaitFor(t, "the owner to look for leases that ended", func() bool { return w.ExpiryChecks() >= from+2 })
	ctx := natstest.Context(t)
	log, err := r.JetStream(t).Stream(ctx, events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := log.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Projection().WaitApplied(ctx, info.State.LastSeq); err != nil {
		t.Fatal(err)
	}
}

// selfStatus returns the contact's own status, as the projection has it now.
func selfStatus(t testing.TB, c *client.Client, contact string) events.Status {
	t.Helper()
	st, err := c.Self(natstest.Context(t), contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	return st.Status
}

// becomes waits until the contact's own status is want.
func becomes(t testing.TB, c *client.Client, contact string, want events.Status) {
	t.Helper()
	natstest.WaitFor(t, contact+" to be "+want.String(), func() bool { return selfStatus(t, c, contact) == want })
}

// endpointEvents returns the log's events of contact that record its
// endpoints.
func endpointEvents(t testing.TB, r *enginetest.Running, contact string) []events.Event {
	t.Helper()
	var out []events.Event
	for _, le := range enginetest.ReadLog(t, r.JetStream(t)) {
		if le.Event.Contact == contact && le.Event.Op != events.OpSet {
			out = append(out, le.Event)
		}
	}
	return out
}

// TestEndpointsDecideTheStatus: a contact's endpoints sign in, heartbeat and
// sign out; each sign-in and sign-out is an event, with the status decided
// from the endpoints (a status the user chose on one beats another's being
// merely there); a heartbeat appends nothing and moves the lease on; the last
// endpoint signing out leaves the contact offline; a heartbeat of an endpoint
// not signed in is a conflict.
func TestEndpointsDecideTheStatus(t *testing.T) {
	clk := newClock()
	r := enginetest.Start(t, "", engine.Options{Now: clk.Now})
	c, ctx := r.Client(t), natstest.Context(t)
	const alice = "sip:alice@contoso.com"
	step := func(what string, got client.EndpointResult, err error, status, previous events.Status, changed bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.Status != status || got.Previous != previous || got.Changed != changed {
			t.Fatalf("%s: %+v; want %s -> %s, changed %v", what, got, previous, status, changed)
		}
	}
	res, err := c.SignIn(ctx, client.EndpointRequest{Contact: alice, Endpoint: "desk", Kind: events.KindDesktop, Lease: time.Minute})
	step("desk signs in", res, err, events.Online, events.Unknown, true)
	if want := clk.Now().Add(time.Minute); !res.Expires.Equal(want) {
		t.Errorf("desk's lease ends %s, want %s", res.Expires, want)
	}
	res, err = c.SignIn(ctx, client.EndpointRequest{Contact: alice, Endpoint: "phone", Kind: events.KindMobile, Status: events.Busy})
	step("phone signs in, busy chosen on it", res, err, events.Busy, events.Online, true)
	clk.Add(30 * time.Second)
	res, err = c.Heartbeat(ctx, alice, "desk")
	step("desk heartbeats", res, err, events.Busy, events.Busy, false)
	if want := clk.Now().Add(time.Minute); !res.Expires.Equal(want) {
		t.Errorf("after a heartbeat desk's lease ends %s, want %s", res.Expires, want)
	}
	res, err = c.SignOut(ctx, alice, "phone")
	step("phone signs out", res, err, events.Online, events.Busy, true)
	res, err = c.SignOut(ctx, alice, "desk")
	step("desk signs out", res, err, events.Offline, events.Online, true)
	if _, err := c.Heartbeat(ctx, alice, "desk"); !errors.Is(err, client.ErrConflict) {
		t.Errorf("a heartbeat of desk signed out: %v, want a conflict", err)
	}
	if st, err := c.Self(ctx, alice, res.Seq); err != nil || st.Status != events.Offline {
		t.Errorf("self after every endpoint signed out: %+v, %v; want offline", st, err)
	}

	var ops []events.Op
	for _, e := range endpointEvents(t, r, alice) {
		ops = append(ops, e.Op)
	}
	if want := []events.Op{events.OpSignIn, events.OpSignIn, events.OpSignOut, events.OpSignOut}; !equalOps(ops, want) {
		t.Errorf("the log records %v, want %v (a heartbeat is no event)", ops, want)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, r.JetStream(t)))
}

func equalOps(a, b []events.Op) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestALeaseThatEndsSignsTheEndpointOutOnce: with two engines running, an
// endpoint that stops heartbeating is signed out once its lease ends, by one
// event (op expire, cause expiry), and the contact goes offline; not before.
func TestALeaseThatEndsSignsTheEndpointOutOnce(t *testing.T) {
	s := natstest.Start(t)
	clk := newClock()
	opts := engine.Options{NATSURL: s.ClientURL(), Now: clk.Now}
	a := enginetest.Start(t, "", opts)
	b := enginetest.Start(t, "", opts)
	own, _ := owner(t, a, b)
	c, ctx := client.New(natstest.Connect(t, s)), natstest.Context(t)
	const bob = "bob"
	if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: bob, Endpoint: "web-1", Kind: events.KindWeb, Lease: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	clk.Add(8 * time.Second)
	if _, err := c.Heartbeat(ctx, bob, "web-1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(9 * time.Second) // 17s in: past the lease as signed in, within the heartbeat's
	looked(t, own)
	if st, err := c.Self(ctx, bob, 0); err != nil || st.Status != events.Online {
		t.Fatalf("within the heartbeat's lease: %+v, %v; want online still", st, err)
	}
	clk.Add(2 * time.Second)           // 19s in: past it
	becomes(t, c, bob, events.Offline) // the lease ended
	looked(t, own)
	evs := endpointEvents(t, own, bob)
	if len(evs) != 2 || evs[1].Op != events.OpExpire || evs[1].Cause != events.CauseExpiry || evs[1].Endpoint != "web-1" ||
		evs[1].Status != events.Offline {
		t.Fatalf("the log records %+v; want the sign-in, then one expiry of web-1 leaving bob offline", evs)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, own.JetStream(t)))
}

// TestALeaseOutlivesARestartByOneLeaseOfGrace: heartbeats are not in the log,
// so an owner started again gives each endpoint one lease from its start;
// the endpoint is signed out once that ends, if it does not heartbeat.
func TestALeaseOutlivesARestartByOneLeaseOfGrace(t *testing.T) {
	dir, clk := t.TempDir(), newClock()
	r := enginetest.Start(t, dir, engine.Options{Now: clk.Now})
	ctx := natstest.Context(t)
	const carol = "carol"
	if _, err := r.Client(t).SignIn(ctx, client.EndpointRequest{Contact: carol, Endpoint: "desk", Kind: events.KindDesktop,
		Lease: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	clk.Add(8 * time.Second)
	r.Stop(t)
	r = enginetest.Start(t, dir, engine.Options{Now: clk.Now}) // 8s in: grace until 18s
	c := r.Client(t)
	clk.Add(4 * time.Second) // 12s in: past the lease as logged, within the grace
	looked(t, r)
	if st, err := c.Self(ctx, carol, 0); err != nil || st.Status != events.Online {
		t.Fatalf("within the grace: %+v, %v; want online still", st, err)
	}
	clk.Add(7 * time.Second)             // 19s in
	becomes(t, c, carol, events.Offline) // the lease ended
	evs := endpointEvents(t, r, carol)
	if len(evs) != 2 || evs[1].Op != events.OpExpire {
		t.Fatalf("the log records %+v; want the sign-in and one expiry", evs)
	}
}

// TestEndpointsKeepInvisibleSecret: a contact that chooses invisible on an
// endpoint shows subscribers exactly what it would had it chosen offline,
// through sign-ins of other endpoints with statuses of their own, sign-outs
// and a lease ending (DESIGN.md §4 with endpoints).
func TestEndpointsKeepInvisibleSecret(t *testing.T) {
	const dave = "dave"
	run := func(hidden events.Status) []string {
		clk := newClock()
		r := enginetest.Start(t, "", engine.Options{Now: clk.Now})
		c, ctx := r.Client(t), natstest.Context(t)
		var seen []string
		look := func(step string) {
			t.Helper()
			r.WaitFeed(t)
			log := enginetest.ReadLog(t, r.JetStream(t))
			if err := r.Projection().WaitApplied(ctx, log[len(log)-1].Seq); err != nil {
				t.Fatal(err)
			}
			st, err := c.Status(ctx, dave, 0)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, fmt.Sprintf("%s: status %s seq %d", step, st.Status, st.Seq))
		}
		signIn := func(endpoint string, kind events.EndpointKind, status events.Status) {
			t.Helper()
			if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: dave, Endpoint: endpoint, Kind: kind, Status: status,
				Lease: 10 * time.Second}); err != nil {
				t.Fatal(err)
			}
		}
		signIn("desk", events.KindDesktop, hidden)
		look("desk chose it")
		signIn("phone", events.KindMobile, events.Busy)
		look("phone chose busy")
		if _, err := c.SignOut(ctx, dave, "phone"); err != nil {
			t.Fatal(err)
		}
		look("phone signed out")
		signIn("desk", events.KindDesktop, events.Unknown)
		look("desk chose nothing")
		signIn("desk", events.KindDesktop, hidden)
		look("desk chose it again")
		clk.Add(11 * time.Second)
		natstest.WaitFor(t, "desk's lease to end", func() bool { return len(endpointEvents(t, r, dave)) == 6 })
		look("desk's lease ended")
		for _, f := range enginetest.ReadFeed(t, r.JetStream(t)) {
			seen = append(seen, fmt.Sprintf("feed %d: %s was %s", f.FeedSeq, f.Change.Contact, f.Change.Previous))
		}
		r.Stop(t)
		return seen
	}
	invisible, offline := run(events.Invisible), run(events.Offline)
	if !reflect.DeepEqual(invisible, offline) {
		t.Errorf("subscribers told invisible from offline:\ninvisible: %q\n  offline: %q", invisible, offline)
	}
}

// TestIdleAndAwayFromInactivity: an endpoint reports when its user's input
// stopped; as time passes the owner makes the contact idle past 5 minutes and
// away past 20 (events of its own, cause engine), and online again when the
// endpoint reports activity; a status the user chose on another endpoint
// stays through the inactivity.
func TestIdleAndAwayFromInactivity(t *testing.T) {
	clk := newClock()
	r := enginetest.Start(t, "", engine.Options{Now: clk.Now})
	c, ctx := r.Client(t), natstest.Context(t)
	const erin = "erin"
	if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: erin, Endpoint: "desk", Kind: events.KindDesktop, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Report(ctx, client.EndpointRequest{Contact: erin, Endpoint: "desk", InactiveFor: time.Minute})
	if err != nil || res.Status != events.Online {
		t.Fatalf("report inactive for a minute: %+v, %v; want online still", res, err)
	}
	clk.Add(3 * time.Minute) // 4 minutes without input
	looked(t, r)
	if got := selfStatus(t, c, erin); got != events.Online {
		t.Fatalf("4 minutes without input: %s, want online", got)
	}
	clk.Add(2 * time.Minute) // 6
	becomes(t, c, erin, events.Idle)
	clk.Add(15 * time.Minute) // 21
	becomes(t, c, erin, events.Away)
	if res, err := c.Report(ctx, client.EndpointRequest{Contact: erin, Endpoint: "desk"}); err != nil || res.Status != events.Online {
		t.Fatalf("report active again: %+v, %v; want online", res, err)
	}
	if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: erin, Endpoint: "phone", Kind: events.KindMobile, Status: events.Busy, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Report(ctx, client.EndpointRequest{Contact: erin, Endpoint: "desk", InactiveFor: time.Minute}); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Minute)
	looked(t, r)
	if got := selfStatus(t, c, erin); got != events.Busy {
		t.Fatalf("busy chosen on the phone, the desk inactive for 31 minutes: %s, want busy", got)
	}

	var changes []string
	for _, le := range enginetest.ReadLog(t, r.JetStream(t)) {
		if le.Event.Op == events.OpSet {
			changes = append(changes, fmt.Sprintf("%s -> %s (%s)", le.Event.Previous, le.Event.Status, le.Event.Cause))
		}
	}
	if want := []string{"online -> idle (engine)", "idle -> away (engine)"}; !reflect.DeepEqual(changes, want) {
		t.Errorf("the owner's own changes: %q, want %q", changes, want)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, r.JetStream(t)))
}

// TestAReportIsTheEndpointsOwn: a status detected (cause endpoint) comes
// from the kind of endpoint that detects it; another is refused, naming it.
func TestAReportIsTheEndpointsOwn(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	c, ctx := r.Client(t), natstest.Context(t)
	for _, ep := range []client.EndpointRequest{{Contact: "f", Endpoint: "desk", Kind: events.KindDesktop}, {Contact: "f", Endpoint: "tel", Kind: events.KindPhone}} {
		if _, err := c.SignIn(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Report(ctx, client.EndpointRequest{Contact: "f", Endpoint: "desk", Status: events.OnThePhone, Cause: events.CauseEndpoint})
	if !errors.Is(err, client.ErrBadRequest) || !strings.Contains(err.Error(), `"desk", a desktop`) {
		t.Fatalf("on-the-phone detected by a desktop: %v, want a bad request naming it", err)
	}
	res, err := c.Report(ctx, client.EndpointRequest{Contact: "f", Endpoint: "tel", Status: events.OnThePhone, Cause: events.CauseEndpoint})
	if err != nil || res.Status != events.OnThePhone {
		t.Fatalf("on-the-phone detected by a phone: %+v, %v; want on-the-phone", res, err)
	}
	if _, err := c.Report(ctx, client.EndpointRequest{Contact: "f", Endpoint: "gone"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("a report of an endpoint not signed in: %v, want a conflict", err)
	}
}

// TestPreferredStatusAndSettings: a preferred status beats what endpoints
// chose until it ends, when the owner decides again from the endpoints;
// invisible preferred holds across endpoints; cleared, the endpoints decide;
// a user who does not transmit idle stays as chosen through inactivity, and
// thresholds of their own apply at once.
func TestPreferredStatusAndSettings(t *testing.T) {
	clk := newClock()
	r := enginetest.Start(t, "", engine.Options{Now: clk.Now})
	c, ctx := r.Client(t), natstest.Context(t)
	const gus = "gus"
	is := func(what string, res client.EndpointResult, err error, want events.Status) {
		t.Helper()
		if err != nil || res.Status != want {
			t.Fatalf("%s: %+v, %v; want %s", what, res, err, want)
		}
	}
	res, err := c.SignIn(ctx, client.EndpointRequest{Contact: gus, Endpoint: "desk", Kind: events.KindDesktop, Lease: 4 * time.Hour})
	is("desk signs in", res, err, events.Online)
	res, err = c.Prefer(ctx, gus, events.Busy, clk.Now().Add(time.Hour))
	is("busy preferred for an hour", res, err, events.Busy)
	res, err = c.SignIn(ctx, client.EndpointRequest{Contact: gus, Endpoint: "phone", Kind: events.KindMobile, Status: events.DoNotDisturb, Lease: 3 * time.Hour})
	is("do-not-disturb chosen on the phone, under the preferred busy", res, err, events.Busy)
	clk.Add(61 * time.Minute)
	becomes(t, c, gus, events.DoNotDisturb) // the preferred busy ended
	res, err = c.Prefer(ctx, gus, events.Invisible, time.Time{})
	is("invisible preferred", res, err, events.Invisible)
	if st, err := c.Status(ctx, gus, 0); err != nil || st.Status == events.Invisible {
		t.Fatalf("what others read: %+v, %v; want it masked", st, err)
	}
	res, err = c.Prefer(ctx, gus, events.Unknown, time.Time{})
	is("preference cleared", res, err, events.DoNotDisturb)
	res, err = c.SignOut(ctx, gus, "phone")
	is("phone signs out", res, err, events.Online)

	res, err = c.SetSettings(ctx, gus, events.Settings{TransmitIdle: false})
	is("idle not transmitted", res, err, events.Online)
	if _, err := c.Report(ctx, client.EndpointRequest{Contact: gus, Endpoint: "desk", InactiveFor: 30 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	looked(t, r)
	if got := selfStatus(t, c, gus); got != events.Online {
		t.Fatalf("30 minutes without input, idle not transmitted: %s, want online", got)
	}
	res, err = c.SetSettings(ctx, gus, events.Settings{TransmitIdle: true, IdleAfter: 10 * time.Minute, AwayAfter: 20 * time.Minute})
	is("idle transmitted again, 30 minutes without input", res, err, events.Away)

	if _, err := c.Prefer(ctx, gus, events.Busy, clk.Now().Add(-time.Minute)); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("a preferred status until a time passed: %v, want a bad request", err)
	}
	enginetest.CheckChains(t, enginetest.ReadLog(t, r.JetStream(t)))
}

// TestALeaseOutlivesAMoveByOneLeaseOfGrace: the owner stops in the middle of
// a lease; the engine that takes the partition over gives the endpoint one
// lease from then, and signs it out once that ends, once; the log verifies
// (the feed is what it derives, every chain holds).
func TestALeaseOutlivesAMoveByOneLeaseOfGrace(t *testing.T) {
	s := natstest.Start(t)
	clk := newClock()
	opts := engine.Options{NATSURL: s.ClientURL(), Now: clk.Now}
	a := enginetest.Start(t, "", opts)
	b := enginetest.Start(t, "", opts)
	own, others := owner(t, a, b)
	c, ctx := client.New(natstest.Connect(t, s)), natstest.Context(t)
	const hal = "hal"
	if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: hal, Endpoint: "desk", Kind: events.KindDesktop, Lease: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	clk.Add(6 * time.Second)
	own.Stop(t)
	next, _ := owner(t, others...) // 6s in: grace until 16s
	clk.Add(6 * time.Second)       // 12s in: past the lease as logged
	looked(t, next)
	if st, err := c.Self(ctx, hal, 0); err != nil || st.Status != events.Online {
		t.Fatalf("after the move, within the grace: %+v, %v; want online still", st, err)
	}
	clk.Add(5 * time.Second)           // 17s in
	becomes(t, c, hal, events.Offline) // the lease ended
	looked(t, next)
	if evs := endpointEvents(t, next, hal); len(evs) != 2 || evs[1].Op != events.OpExpire {
		t.Fatalf("the log records %+v; want the sign-in and one expiry", evs)
	}
	next.WaitFeed(t)
	if r, err := next.Verify(ctx, nil); err != nil || !r.OK() {
		t.Fatalf("verify: %+v, %v", r, err)
	}
}

// TestEndpointsCountAgainstTheContactsBound: sign-ins, reports and
// preferences count against the contact's bound as its sets do (429, nothing
// appended); heartbeats do not, appending nothing.
func TestEndpointsCountAgainstTheContactsBound(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{ContactRate: 0.001, ContactBurst: 2})
	c, ctx := r.Client(t), natstest.Context(t)
	for i := range 2 {
		if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: "ivy", Endpoint: fmt.Sprintf("e%d", i), Kind: events.KindWeb}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Prefer(ctx, "ivy", events.Busy, time.Time{}); !errors.Is(err, client.ErrTooMany) {
		t.Fatalf("a third request within the burst of 2: %v, want too many", err)
	}
	for range 5 {
		if _, err := c.Heartbeat(ctx, "ivy", "e0"); err != nil {
			t.Fatalf("a heartbeat past the bound: %v, want it answered", err)
		}
	}
	if n := len(endpointEvents(t, r, "ivy")); n != 2 {
		t.Errorf("the log records %d events of ivy's endpoints, want the 2 sign-ins", n)
	}
}

// TestADirectSetOfAContactWithEndpointsHolds: with endpoints signed in, a
// direct set is the contact's preferred status: time passing (idle, away) does
// not undo it, and an invisible set so stays invisible, offline to others.
func TestADirectSetOfAContactWithEndpointsHolds(t *testing.T) {
	clk := newClock()
	r := enginetest.Start(t, "", engine.Options{Now: clk.Now})
	c, ctx := r.Client(t), natstest.Context(t)
	const jo = "jo"
	if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: jo, Endpoint: "desk", Kind: events.KindDesktop, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Report(ctx, client.EndpointRequest{Contact: jo, Endpoint: "desk", InactiveFor: time.Minute}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Set(ctx, client.SetRequest{Contact: jo, Status: events.Invisible})
	if err != nil || res.Status != events.Invisible {
		t.Fatalf("set invisible: %+v, %v", res, err)
	}
	clk.Add(30 * time.Minute) // idle and away would have come
	looked(t, r)
	if st, err := c.Self(ctx, jo, 0); err != nil || st.Status != events.Invisible {
		t.Fatalf("half an hour later: %+v, %v; want invisible still", st, err)
	}
	if st, err := c.Status(ctx, jo, 0); err != nil || st.Status != events.Offline {
		t.Fatalf("what others read: %+v, %v; want offline", st, err)
	}
	evs := endpointEvents(t, r, jo)
	if last := evs[len(evs)-1]; last.Op != events.OpPrefer || last.Preferred.Status != events.Invisible {
		t.Errorf("the set is recorded as %+v, want a preferred invisible", last)
	}
}

// TestLastActiveWhileInactive: a status reply says when the contact's user
// was last active (last_active, XEP-0319's idle since) while every endpoint is
// inactive, through idle; not once one is active again, nor when the contact
// does not transmit idle, nor while it is invisible.
func TestLastActiveWhileInactive(t *testing.T) {
	clk := newClock()
	r := enginetest.Start(t, "", engine.Options{Now: clk.Now})
	c, ctx := r.Client(t), natstest.Context(t)
	const kai = "kai"
	shown := func(wantStatus events.Status, wantLastActive time.Time) {
		t.Helper()
		looked(t, r)
		st, err := c.Status(ctx, kai, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != wantStatus || !st.LastActive.Equal(wantLastActive) {
			t.Fatalf("kai reads %s, last active %v; want %s, last active %v", st.Status, st.LastActive, wantStatus, wantLastActive)
		}
	}
	report := func(inactive time.Duration) {
		t.Helper()
		if _, err := c.Report(ctx, client.EndpointRequest{Contact: kai, Endpoint: "desk", InactiveFor: inactive}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SignIn(ctx, client.EndpointRequest{Contact: kai, Endpoint: "desk", Kind: events.KindDesktop, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	shown(events.Online, time.Time{})
	report(3 * time.Minute)
	since := clk.Now().Add(-3 * time.Minute)
	shown(events.Online, since)
	clk.Add(3 * time.Minute) // idle 5 minutes after the last input
	shown(events.Idle, since)
	report(0)
	clk.Add(3 * time.Second) // past the flap window
	shown(events.Online, time.Time{})

	if _, err := c.SetSettings(ctx, kai, events.Settings{TransmitIdle: false}); err != nil {
		t.Fatal(err)
	}
	report(time.Hour)
	shown(events.Online, time.Time{})
	if _, err := c.SetSettings(ctx, kai, events.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Second)
	shown(events.Away, clk.Now().Add(-time.Hour-3*time.Second))
	if _, err := c.Prefer(ctx, kai, events.Invisible, time.Time{}); err != nil {
		t.Fatal(err)
	}
	shown(events.Offline, time.Time{})
}
