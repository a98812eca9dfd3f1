package engine_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

var privacyEndpointOps = flag.Int("privacy.endpoint-ops", 0,
	"random endpoint ops in TestPrivacyWithEndpoints; zero means 100 (for a longer run: -privacy.endpoint-ops=2000)")

// TestPrivacyWithEndpoints extends TestPrivacyInvisibleLooksOffline to what
// endpoints do: an invisible user signing in on other endpoints, going idle
// and away, its leases ending, reconnecting in a loop within the flap window,
// preferring invisible, all decided by the owner as time passes. A script
// that covers each of these, then random ops (sign-ins, reports with
// inactivity, heartbeats, sign-outs, preferred statuses, direct sets,
// settings, and the clock moving on by seconds to half an hour), run twice on
// fresh engines with a test clock: once as generated, once with every
// invisible (chosen on an endpoint, preferred or set) replaced by offline.
// Subscribers must see exactly the same in both: every feed entry (times
// included: the clocks run alike) and its feed position, what a subscriber's
// handler is given and reads through the service, the status of the contact
// after each op and the statuses of all of them. The contact's own view
// (self) must differ, so that the comparison is known to see a difference.
func TestPrivacyWithEndpoints(t *testing.T) {
	n := 100
	if *privacyEndpointOps > 0 {
		n = *privacyEndpointOps
	}
	contacts := []string{"ann", "sip:bo@contoso.com", "cy", "dee"}
	ops := append(privacyScript("ann", "cy", "dee"), randomEndpointOps(rand.New(rand.NewPCG(2007, 0x20)), contacts, n)...)

	var invisible, offline *privacyWorld
	t.Run("worlds", func(t *testing.T) {
		t.Run("as-chosen", func(t *testing.T) {
			t.Parallel()
			invisible = runEndpointWorld(t, contacts, ops, false)
		})
		t.Run("invisible-as-offline", func(t *testing.T) {
			t.Parallel()
			offline = runEndpointWorld(t, contacts, ops, true)
		})
	})
	if invisible == nil || offline == nil {
		t.Fatal("a run did not finish")
	}
	a, b := rawTranscript(invisible), rawTranscript(offline)
	for _, w := range []*privacyWorld{invisible, offline} {
		for _, v := range w.violations[:min(len(w.violations), 8)] {
			t.Errorf("%s: %s", w.name, v)
		}
	}
	for _, kind := range []string{"feed", "subscriber", "status", "statuses"} {
		if len(a[kind]) == 0 {
			t.Errorf("%s: nothing observed", kind)
		}
		if diffs := transcriptDiff(a[kind], b[kind]); len(diffs) > 0 {
			t.Errorf("%s: a subscriber can tell an invisible contact from an offline one (%d of %d/%d observations differ):\n%s",
				kind, len(diffs), len(a[kind]), len(b[kind]), strings.Join(diffs[:min(len(diffs), 8)], "\n"))
		}
	}
	if diffs := transcriptDiff(a["self"], b["self"]); len(diffs) == 0 {
		t.Error("self reads the same in both runs; it must show invisible to the contact itself")
	}
	for _, line := range slices.Concat(a["feed"], a["subscriber"], a["status"], a["statuses"]) {
		if strings.Contains(line, "invisible") {
			t.Errorf("a subscriber is shown invisible: %s", line)
			break
		}
	}
	t.Logf("%d ops; %d feed entries, %d observations a run", len(ops), len(a["feed"]), countObservations(a)-len(a["self"]))
}

// endpointOp is one step of TestPrivacyWithEndpoints: an endpoint's request,
// a preferred status, a direct set, settings, or the clock moving on.
type endpointOp struct {
	kind     string // client.OpSignIn, OpHeartbeat, OpReport, OpSignOut, OpPrefer, OpSettings, "set", "advance"
	contact  string
	endpoint string
	status   events.Status // chosen, preferred or set; Invisible is Offline in the other run
	inactive time.Duration // a report's
	lease    time.Duration // a sign-in's
	until    time.Duration // a preferred status's, from the op's time; zero: until cleared
	idle     bool          // settings: transmit idle
	advance  time.Duration
}

func (op endpointOp) String() string {
	return fmt.Sprintf("%s %s %s status %s inactive %s lease %s until %s idle %v advance %s",
		op.kind, op.contact, op.endpoint, op.status, op.inactive, op.lease, op.until, op.idle, op.advance)
}

// kindOf is the kind of an endpoint, by its ID.
func kindOf(endpoint string) events.EndpointKind {
	switch endpoint {
	case "phone":
		return events.KindPhone
	case "web":
		return events.KindWeb
	case "cal":
		return events.KindCalendar
	}
	return events.KindDesktop
}

// privacyScript covers what the property must hold through, for contact c:
// invisible on one endpoint while others sign in, go idle and away, expire;
// a preferred invisible through a reconnect loop; a direct set of invisible.
// And for contact d, a hidden change (offline to invisible, set directly)
// just before an endpoint signs in: the flap window must not count it. And for
// contact e, a hidden set while a change is held back, which must not show
// it; and a set of invisible on a contact whose endpoint chose offline, which
// must be a preference as a set of offline is.
func privacyScript(c, d, e string) []endpointOp {
	adv := func(d time.Duration) endpointOp { return endpointOp{kind: "advance", advance: d} }
	return []endpointOp{
		{kind: client.OpSignIn, contact: c, endpoint: "desk", status: events.Invisible, lease: time.Hour},
		adv(3 * time.Second),
		{kind: client.OpSignIn, contact: c, endpoint: "web", lease: 2 * time.Minute}, // another endpoint, no status
		{kind: client.OpReport, contact: c, endpoint: "desk", status: events.Invisible, inactive: time.Minute},
		adv(6 * time.Minute), // idle, had it not been invisible; web's lease ends
		adv(21 * time.Minute),
		{kind: client.OpHeartbeat, contact: c, endpoint: "desk"},
		{kind: client.OpSignIn, contact: c, endpoint: "phone", status: events.Busy, lease: time.Minute},
		adv(90 * time.Second), // phone's lease ends
		{kind: client.OpSignOut, contact: c, endpoint: "desk"},
		adv(3 * time.Second),
		{kind: client.OpSignIn, contact: c, endpoint: "desk", lease: time.Hour}, // visible now
		adv(3 * time.Second),
		{kind: client.OpPrefer, contact: c, status: events.Invisible},
		{kind: client.OpSignOut, contact: c, endpoint: "desk"}, // a reconnect loop, invisible
		{kind: client.OpSignIn, contact: c, endpoint: "desk", lease: time.Hour},
		{kind: client.OpSignOut, contact: c, endpoint: "desk"},
		{kind: client.OpSignIn, contact: c, endpoint: "desk", lease: time.Hour},
		adv(3 * time.Second),
		{kind: client.OpPrefer, contact: c}, // cleared: visible again
		{kind: client.OpSignOut, contact: c, endpoint: "desk"},
		{kind: client.OpSignIn, contact: c, endpoint: "desk", status: events.Invisible, lease: time.Hour}, // held, then invisible
		adv(3 * time.Second),
		{kind: "set", contact: c, status: events.Online},
		{kind: "set", contact: c, status: events.Invisible},
		{kind: client.OpSettings, contact: c, idle: false},
		adv(time.Second),
		{kind: "set", contact: d, status: events.Offline},
		adv(3 * time.Second),
		{kind: "set", contact: d, status: events.Invisible},
		{kind: client.OpSignIn, contact: d, endpoint: "desk", lease: time.Hour},
		adv(3 * time.Second),
		{kind: client.OpSignIn, contact: e, endpoint: "desk", lease: time.Hour},
		{kind: client.OpSignOut, contact: e, endpoint: "desk"}, // held back
		{kind: "set", contact: e, status: events.Invisible},    // hidden: shows nothing
		adv(3 * time.Second),
		{kind: client.OpSignIn, contact: e, endpoint: "web", status: events.Offline, lease: time.Hour},
		adv(3 * time.Second),
		{kind: "set", contact: e, status: events.Invisible},  // a preference, as offline is
		{kind: client.OpReport, contact: e, endpoint: "web"}, // web chooses nothing now
		adv(3 * time.Second),
	}
}

// randomEndpointOps returns n ops on contacts, heavy on invisible and offline.
func randomEndpointOps(rng *rand.Rand, contacts []string, n int) []endpointOp {
	endpoints := []string{"desk", "phone", "web", "cal"}
	statuses := []events.Status{events.Invisible, events.Invisible, events.Invisible, events.Offline, events.Unknown, events.Unknown,
		events.Online, events.Busy, events.DoNotDisturb, events.Away, events.BeRightBack}
	advances := []time.Duration{time.Second, 3 * time.Second, 3 * time.Second, 90 * time.Second, 6 * time.Minute, 21 * time.Minute}
	leases := []time.Duration{time.Minute, 5 * time.Minute, time.Hour}
	ops := make([]endpointOp, 0, n)
	for range n {
		op := endpointOp{contact: contacts[rng.IntN(len(contacts))], endpoint: endpoints[rng.IntN(len(endpoints))],
			status: statuses[rng.IntN(len(statuses))]}
		switch p := rng.IntN(100); {
		case p < 20:
			op = endpointOp{kind: "advance", advance: advances[rng.IntN(len(advances))]}
		case p < 45:
			op.kind, op.lease = client.OpSignIn, leases[rng.IntN(len(leases))]
		case p < 60:
			op.kind = client.OpReport
			op.inactive = []time.Duration{0, 0, time.Minute, 10 * time.Minute}[rng.IntN(4)]
		case p < 70:
			op.kind = client.OpHeartbeat
		case p < 82:
			op.kind = client.OpSignOut
		case p < 90:
			op.kind = client.OpPrefer
			if rng.IntN(2) == 0 {
				op.until = 10 * time.Minute
			}
		case p < 96:
			op.kind = "set"
			if op.status == events.Unknown {
				op.status = events.Online
			}
		default:
			op.kind, op.idle = client.OpSettings, rng.IntN(2) == 0
		}
		ops = append(ops, op)
	}
	return ops
}

// runEndpointWorld runs ops on a fresh engine with a test clock (invisible as
// offline when asOffline) and returns what subscribers observed, and self.
func runEndpointWorld(t *testing.T, contacts []string, ops []endpointOp, asOffline bool) *privacyWorld {
	clk := newClock()
	r := enginetest.Start(t, "", engine.Options{Now: clk.Now, ContactRate: -1})
	w := &privacyWorld{name: t.Name(), obs: map[string][]any{}, moved: make(chan struct{})}
	nc := r.Connect(t)
	svc := client.New(r.Connect(t))
	startPrivacySubscriber(t, w, "subscriber", client.SubscriberConfig{Conn: r.Connect(t), Reader: svc})
	all := append(slices.Clone(contacts), privacyNeverSeen)
	js := r.JetStream(t)
	log, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	in := func(s events.Status) events.Status {
		if asOffline && s == events.Invisible {
			return events.Offline
		}
		return s
	}
	for i, op := range ops {
		ctx := natstest.Context(t) // one an op: a long run (-privacy.endpoint-ops) outlasts any one
		var err error
		switch op.kind {
		case "advance":
			clk.Add(op.advance)
			looked(t, r)
		case "set":
			_, err = svc.Set(ctx, client.SetRequest{Contact: op.contact, Status: in(op.status)})
		case client.OpHeartbeat:
			_, err = svc.Heartbeat(ctx, op.contact, op.endpoint)
		case client.OpSignOut:
			_, err = svc.SignOut(ctx, op.contact, op.endpoint)
		case client.OpPrefer:
			var until time.Time
			if op.until > 0 {
				until = clk.Now().Add(op.until)
			}
			_, err = svc.Prefer(ctx, op.contact, in(op.status), until)
		case client.OpSettings:
			s := events.DefaultSettings
			s.TransmitIdle = op.idle
			_, err = svc.SetSettings(ctx, op.contact, s)
		case client.OpReport:
			_, err = svc.Report(ctx, client.EndpointRequest{Contact: op.contact, Endpoint: op.endpoint,
				Status: in(op.status), InactiveFor: op.inactive})
		default:
			_, err = svc.SignIn(ctx, client.EndpointRequest{Contact: op.contact, Endpoint: op.endpoint,
				Kind: kindOf(op.endpoint), Lease: op.lease, Status: in(op.status)})
		}
		if err != nil && !errors.Is(err, client.ErrConflict) { // not signed in: alike in both runs
			t.Fatalf("op %d (%s): %v", i, op, err)
		}
		// Every change the op made, shown or held, applied and in the feed,
		// and the subscriber handed every entry.
		info, err := log.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Projection().WaitApplied(ctx, info.State.LastSeq); err != nil {
			t.Fatal(err)
		}
		r.WaitFeed(t)
		when := fmt.Sprintf("after op %d (%s)", i, op)
		w.waitCount(t, "subscriber", int(r.Projection().AppliedFeed()), when)
		if op.contact != "" {
			w.add("status", answer(t, nc, events.StatusPrefix+events.Token(op.contact), ""))
			self, err := svc.Self(ctx, op.contact, 0)
			if err != nil {
				t.Fatal(err)
			}
			w.add("self", self.Status.String())
		}
		w.add("statuses", answer(t, nc, events.StatusesSubject, string(client.EncodeStatusesRequest(all, 0))))
	}
	for _, f := range enginetest.ReadFeed(t, r.JetStream(t)) {
		w.add("feed", map[string]any{"seq": f.FeedSeq, "entry": f.Change})
	}
	return w
}

// rawTranscript is what w observed, each observation as JSON: nothing is
// normalised, the two runs' clocks running alike.
func rawTranscript(w *privacyWorld) map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for kind, list := range w.obs {
		for _, v := range list {
			b, _ := json.Marshal(v)
			out[kind] = append(out[kind], string(b))
		}
	}
	return out
}
