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

	"github.com/presence-engine/presence/client"
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

// appendRate is the events the writers appended per second.
func (w writeResult) appendRate() float64 {
	return float64(w.appended) / w.elapsed.Seconds()
}

// write has the writers make n sets through the service, or as many as they
// make in cfg.Duration if set, over writers connections with inFlight sets
// outstanding each, at most limit sets per second (0: as fast as they go).
// Each acknowledgement's time goes into acks.
func write(ctx context.Context, url string, cfg Config, n int, limit float64, acks *ackTimes, seed uint64) (writeResult, error) {
	return writeContacts(ctx, url, cfg, writeSpec{n: n, limit: limit, acks: acks, seed: seed, duration: cfg.Duration})
}

// setFunc sets a status, through the service or with a writer.
type setFunc func(context.Context, client.SetRequest) (client.SetResult, error)

// writeSpec says what writeContacts does.
type writeSpec struct {
	n     int     // sets
	limit float64 // sets a second at most; 0: as fast as they go
	// duration, when set, stops the writers after that long, with n sets made
	// or not.
	duration time.Duration
	acks     *ackTimes
	seed     uint64
	// sequential has set i go to contact i mod cfg.Contacts instead of a
	// random one, so that every contact is touched.
	sequential bool
	// sets, if not nil, is what each of the writers sets with; nil sets
	// through the service, over a connection each.
	sets []setFunc
	// id names contact i; nil means contactID.
	id func(int) string
	// partition gives writer w only the contacts i with i mod cfg.Writers ==
	// w, and n/cfg.Writers of the sets, so that no two writers set the same
	// contact.
	partition bool
}

// directWriters makes an engine.Writer per writer, each on its own connection,
// appending straight to the log (with the log's per-contact optimistic
// concurrency, as the engine's own writer does), as a backend that embeds the
// writer does; close closes their connections.
func directWriters(url string, cfg Config) (writers []*engine.Writer, close func(), err error) {
	var conns []*nats.Conn
	close = func() { closeAll(conns) }
	for i := range cfg.Writers {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench direct writer %d", i)))
		if err != nil {
			close()
			return nil, nil, err
		}
		conns = append(conns, nc)
		js, err := jetstream.New(nc)
		if err != nil {
			close()
			return nil, nil, err
		}
		// No bound per contact: the engine under test has none either.
		w, err := engine.NewWriter(engine.WriterConfig{JetStream: js, Logger: slog.New(slog.DiscardHandler), ContactRate: -1})
		if err != nil {
			close()
			return nil, nil, err
		}
		writers = append(writers, w)
	}
	return writers, close, nil
}

// writeContacts has the writers make the sets spec says.
func writeContacts(ctx context.Context, url string, cfg Config, spec writeSpec) (writeResult, error) {
	var (
		next    atomic.Int64
		nexts   = make([]atomic.Int64, cfg.Writers) // with partition, each writer's
		mu      sync.Mutex
		res     writeResult
		wg      sync.WaitGroup
		failed  atomic.Pointer[error]
		limiter *rate.Limiter
	)
	n, acks, seed, id := spec.n, spec.acks, spec.seed, spec.id
	if id == nil {
		id = contactID
	}
	if spec.limit > 0 {
		limiter = rate.NewLimiter(rate.Limit(spec.limit), max(1, int(spec.limit/100)))
	}
	sets := spec.sets
	if sets == nil {
		conns := make([]*nats.Conn, cfg.Writers)
		defer closeAll(conns)
		for i := range conns {
			nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench writer %d", i)))
			if err != nil {
				return res, err
			}
			conns[i] = nc
			sets = append(sets, client.New(nc).Set)
		}
	}
	if len(sets) != cfg.Writers {
		return res, fmt.Errorf("%d writers' sets for %d writers", len(sets), cfg.Writers)
	}
	start := time.Now()
	var until time.Time
	if spec.duration > 0 {
		until = start.Add(spec.duration)
	}
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
				// With partition, each writer has its own share of the sets
				// and the contacts: its k-th set, in order, goes to its
				// k-th contact (sequential) or a random one of its own.
				counter, quota, share := &next, int64(n), cfg.Contacts
				if spec.partition {
					counter, quota, share = &nexts[w], int64(n/cfg.Writers), max(cfg.Contacts/cfg.Writers, 1)
				}
				for i := counter.Add(1); i <= quota && ctx.Err() == nil && failed.Load() == nil; i = counter.Add(1) {
					if !until.IsZero() && !time.Now().Before(until) {
						return
					}
					if limiter != nil {
						if err := limiter.Wait(ctx); err != nil {
							return
						}
					}
					contact := rng.IntN(share)
					if spec.sequential {
						contact = int(i-1) % share
					}
					if spec.partition {
						contact = contact*cfg.Writers + w
					}
					status, cause := pick(rng)
					r, err := set(ctx, client.SetRequest{Contact: id(contact), Status: status, Cause: cause,
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
