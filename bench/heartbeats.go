package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/sync/errgroup"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

const (
	// rawHeartbeatSubject is where the heartbeats' raw responder answers,
	// on core NATS: a subject per contact, as the service's.
	rawHeartbeatSubject = "bench.heartbeat."
	// rawRequestTimeout bounds each raw request, as the client's default
	// timeout bounds each of its requests.
	rawRequestTimeout = 5 * time.Second
	// heartbeatLease is the lease the endpoints sign in with: none ends
	// during the run.
	heartbeatLease = time.Hour
	// heartbeatEndpoint is the ID of each contact's one endpoint.
	heartbeatEndpoint = "desk"
)

// endpointContact is the contact of the i-th endpoint: contacts of their own,
// apart from those the writers set.
func endpointContact(i int) string { return fmt.Sprintf("sip:endpoint%06d@contoso.com", i) }

// heartbeats signs in Endpoints endpoints, one a contact, with a lease of an
// hour, then measures Heartbeats heartbeats over them through the service
// beside as many core NATS requests to a responder that answers at once with
// the engine's reply, each side with HeartbeatsInFlight requests outstanding
// on one connection, as BenchmarkHeartbeats in engine does. With the engine in
// this process it measures the engine's heap per live endpoint: the heap
// after a collection, before the sign-ins and once the projection has
// applied them. A child process's heap is not measurable from here.
func (r *runner) heartbeats(ctx context.Context) error {
	cfg, res := r.cfg, r.res
	if r.rep != nil {
		// The in-process rows' replica would fold the sign-ins too, and
		// its memory count as the engine's.
		r.rep.close()
		r.rep = nil
	}
	contacts := make([]string, cfg.Endpoints)
	for i := range contacts {
		contacts[i] = endpointContact(i)
	}
	nc, err := nats.Connect(r.eng.url, nats.Name("bench endpoints"))
	if err != nil {
		return err
	}
	defer nc.Close()
	c := client.New(nc)

	r.step("heartbeats: signing in %d endpoints, one a contact, lease %v, %d in flight", cfg.Endpoints, heartbeatLease, cfg.HeartbeatsInFlight)
	inProcess := r.eng.e != nil
	var before uint64
	if inProcess {
		before = heapAfterGC()
	}
	var (
		mu      sync.Mutex
		lastSeq uint64 // of the sign-ins' events
	)
	start := time.Now()
	err = inFlight(ctx, cfg.Endpoints, cfg.HeartbeatsInFlight, func(i int) error {
		got, err := c.SignIn(ctx, client.EndpointRequest{Contact: contacts[i], Endpoint: heartbeatEndpoint, Kind: events.KindDesktop,
			Lease: heartbeatLease})
		if err != nil {
			return fmt.Errorf("sign in %s: %w", contacts[i], err)
		}
		mu.Lock()
		lastSeq = max(lastSeq, got.Seq)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	signIns := float64(cfg.Endpoints) / time.Since(start).Seconds()
	if err := r.applied(ctx, lastSeq); err != nil {
		return err
	}
	r.step("heartbeats: %s sign-ins/s", rateStr(signIns))
	if inProcess {
		res.HeapPerEndpoint = (float64(heapAfterGC()) - float64(before)) / float64(cfg.Endpoints)
		r.step("heartbeats: engine heap per live endpoint %s", heapText(res.HeapPerEndpoint))
	}

	// The raw responder answers with a reply of the engine's, to a request
	// of the client's.
	body := client.EncodeEndpointRequest(client.EndpointRequest{Op: client.OpHeartbeat, Endpoint: heartbeatEndpoint})
	engineReply, err := nc.Request(events.HeartbeatPrefix+events.Token(contacts[0]), body, rawRequestTimeout)
	if err != nil {
		return fmt.Errorf("heartbeat of %s: %w", contacts[0], err)
	}
	if code := engineReply.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Errorf("heartbeat of %s: error %s: %s", contacts[0], code, engineReply.Header.Get(micro.ErrorHeader))
	}
	reply := append([]byte(nil), engineReply.Data...)
	rnc, err := nats.Connect(r.eng.url, nats.Name("bench heartbeat responder"))
	if err != nil {
		return err
	}
	defer rnc.Close()
	if _, err := rnc.Subscribe(rawHeartbeatSubject+"*", func(m *nats.Msg) { _ = m.Respond(reply) }); err != nil {
		return err
	}
	if err := rnc.Flush(); err != nil {
		return err
	}
	subjects := make([]string, len(contacts))
	for i, contact := range contacts {
		subjects[i] = rawHeartbeatSubject + events.Token(contact)
	}
	n := cfg.Heartbeats
	r.step("baseline: %d core NATS requests to a responder that answers at once, %d in flight", n, cfg.HeartbeatsInFlight)
	start = time.Now()
	err = inFlight(ctx, n, cfg.HeartbeatsInFlight, func(i int) error {
		subject := subjects[i%len(subjects)]
		if _, err := nc.Request(subject, body, rawRequestTimeout); err != nil {
			return fmt.Errorf("request %s: %w", subject, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	raw := float64(n) / time.Since(start).Seconds()

	r.step("engine: %d heartbeats through the service over %d live endpoints, %d in flight", n, cfg.Endpoints, cfg.HeartbeatsInFlight)
	start = time.Now()
	err = inFlight(ctx, n, cfg.HeartbeatsInFlight, func(i int) error {
		contact := contacts[i%len(contacts)]
		if _, err := c.Heartbeat(ctx, contact, heartbeatEndpoint); err != nil {
			return fmt.Errorf("heartbeat of %s: %w", contact, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.Heartbeats = compare(float64(n)/time.Since(start).Seconds(), raw)
	return nil
}

// applied returns once the engine's projection has applied the log up to seq.
func (r *runner) applied(ctx context.Context, seq uint64) error {
	return r.waitMetric(ctx, "the projection has applied the log", seq, func(m engine.Metrics) uint64 { return m.Projection.Applied })
}

// inFlight calls do(i) for each i below n, with k calls outstanding at once,
// and returns the first error, after which it starts no more.
func inFlight(ctx context.Context, n, k int, do func(i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(k)
	for i := 0; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error { return do(i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// heapAfterGC is this process's live heap, in bytes, after two collections:
// what sync.Pools hold survives the first.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapText is a heap per endpoint in bytes, "-" when not measured.
func heapText(b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f B", b)
}
