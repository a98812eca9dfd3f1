package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

// contactID names contact i.
func contactID(i int) string { return fmt.Sprintf("sip:user%06d@contoso.com", i) }

// mix is the statuses writers set, with their weights: mostly online, away,
// busy and idle, some invisible and offline.
var mix = []struct {
	status events.Status
	cause  events.Cause
	weight int
}{
	{events.Online, events.CauseUser, 30},
	{events.Away, events.CauseUser, 22},
	{events.Busy, events.CauseUser, 18},
	{events.Idle, events.CauseEndpoint, 15},
	{events.Invisible, events.CauseUser, 7},
	{events.Offline, events.CauseUser, 8},
}

func pick(rng *rand.Rand) (events.Status, events.Cause) {
	n := rng.IntN(100)
	for _, m := range mix {
		if n < m.weight {
			return m.status, m.cause
		}
		n -= m.weight
	}
	return events.Online, events.CauseUser
}

// ackTimes keeps when each set of a run was acknowledged, by log sequence.
type ackTimes struct {
	base  uint64
	times []atomic.Int64
}

func newAckTimes(base uint64, n int) *ackTimes {
	return &ackTimes{base: base, times: make([]atomic.Int64, n)}
}

func (a *ackTimes) put(seq uint64, t time.Time) {
	if seq >= a.base && seq-a.base < uint64(len(a.times)) {
		a.times[seq-a.base].Store(t.UnixNano())
	}
}

func (a *ackTimes) get(seq uint64) int64 {
	if seq >= a.base && seq-a.base < uint64(len(a.times)) {
		return a.times[seq-a.base].Load()
	}
	return 0
}

// writeResult is what writers did.
type writeResult struct {
	sets     int
	appended int
	visible  []uint64 // log sequences of the visible changes appended
	lastSeq  uint64
	elapsed  time.Duration
}

// write has the writers make n sets through the service, over writers
// connections with inFlight sets outstanding each, at most limit sets per
// second (0: as fast as they go). Each acknowledgement's time goes into acks.
func write(ctx context.Context, url string, cfg Config, n int, limit float64, acks *ackTimes, seed uint64) (writeResult, error) {
	return writeContacts(ctx, url, cfg, n, limit, acks, seed, false, serviceSetter)
}

// setter makes what one writer connection sets statuses with.
type setter func(nc *nats.Conn) (func(context.Context, engine.SetRequest) (engine.SetResult, error), error)

// serviceSetter sets through the service (engine.Client): request and reply.
func serviceSetter(nc *nats.Conn) (func(context.Context, engine.SetRequest) (engine.SetResult, error), error) {
	return engine.NewClient(nc).Set, nil
}

// writerSetter sets with an engine.Writer in the writers' process, appending
// straight to the log (with the log's per-contact optimistic concurrency, as
// the engine's own writer does), as a backend that embeds the writer does.
func writerSetter(nc *nats.Conn) (func(context.Context, engine.SetRequest) (engine.SetResult, error), error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	w, err := engine.NewWriter(engine.WriterConfig{JetStream: js, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return w.Set, nil
}

// writeContacts is write, setting with what set makes for each writer
// connection; with sequential, set i goes to contact i mod cfg.Contacts instead
// of a random one, so that every contact is touched.
func writeContacts(ctx context.Context, url string, cfg Config, n int, limit float64, acks *ackTimes, seed uint64, sequential bool,
	setWith setter) (writeResult, error) {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		res     writeResult
		wg      sync.WaitGroup
		failed  atomic.Pointer[error]
		limiter *rate.Limiter
	)
	if limit > 0 {
		limiter = rate.NewLimiter(rate.Limit(limit), max(1, int(limit/100)))
	}
	conns := make([]*nats.Conn, cfg.Writers)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	for i := range conns {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench writer %d", i)))
		if err != nil {
			return res, err
		}
		conns[i] = nc
	}
	sets := make([]func(context.Context, engine.SetRequest) (engine.SetResult, error), cfg.Writers)
	for w, nc := range conns {
		var err error
		if sets[w], err = setWith(nc); err != nil {
			return res, err
		}
	}
	start := time.Now()
	for w := range cfg.Writers {
		set := sets[w]
		for g := range cfg.InFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(w*cfg.InFlight+g)))
				var visible []uint64
				appended, sets := 0, 0
				var lastSeq uint64
				defer func() {
					mu.Lock()
					res.sets += sets
					res.appended += appended
					res.visible = append(res.visible, visible...)
					res.lastSeq = max(res.lastSeq, lastSeq)
					mu.Unlock()
				}()
				for i := next.Add(1); i <= int64(n) && ctx.Err() == nil && failed.Load() == nil; i = next.Add(1) {
					if limiter != nil {
						if err := limiter.Wait(ctx); err != nil {
							return
						}
					}
					contact := rng.IntN(cfg.Contacts)
					if sequential {
						contact = int(i-1) % cfg.Contacts
					}
					status, cause := pick(rng)
					r, err := set(ctx, engine.SetRequest{Contact: contactID(contact), Status: status, Cause: cause,
						Name: fmt.Sprintf("User %d", contact)})
					if err != nil {
						err = fmt.Errorf("set: %w", err)
						failed.CompareAndSwap(nil, &err)
						return
					}
					sets++
					if r.Changed {
						acks.put(r.Seq, time.Now())
						appended++
						lastSeq = max(lastSeq, r.Seq)
						if events.VisibleChange(r.Previous, r.Status) {
							visible = append(visible, r.Seq)
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if err := failed.Load(); err != nil {
		return res, *err
	}
	return res, ctx.Err()
}
