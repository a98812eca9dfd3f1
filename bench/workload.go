package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/presence-engine/presence/client"
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

// ackTimes keeps when each change of a run was acknowledged, by the position
// its subscribers are handed it at. Made by newAckTimes, that is the sequence
// acknowledged (the floors, whose subscribers are handed raw sequences). Made
// by newFeedAckTimes, put takes log sequences, as the writers are told them,
// and get feed positions, as subscribers are handed them, which count visible
// changes only: during a run the writers alone append, so once every log
// sequence of the window up to a visible change is acknowledged, the feed
// position of that change is known (the window's visible changes before it,
// after the feed's base). A change whose position is not known yet reads 0.
type ackTimes struct {
	base  uint64 // the first sequence put
	times []atomic.Int64

	// With feed positions:
	feed     bool
	feedBase uint64 // the feed position of the window's first visible change
	mu       sync.Mutex
	kinds    []uint8 // by log sequence - base: 0 not acknowledged yet, 1 visible, 2 not
	settled  int     // log sequences known from base on, in a row
	visible  int     // visible changes among them
	byFeed   []atomic.Int64
}

func newAckTimes(base uint64, n int) *ackTimes {
	return &ackTimes{base: base, times: make([]atomic.Int64, n)}
}

// newFeedAckTimes keeps the acknowledgements of n log sequences from logBase,
// by the feed positions from feedBase of the visible ones.
func newFeedAckTimes(logBase, feedBase uint64, n int) *ackTimes {
	return &ackTimes{base: logBase, times: make([]atomic.Int64, n), feed: true, feedBase: feedBase,
		kinds: make([]uint8, n), byFeed: make([]atomic.Int64, n)}
}

// put records that the change at sequence seq, visible or not, was
// acknowledged at t.
func (a *ackTimes) put(seq uint64, t time.Time, visible bool) {
	if seq < a.base || seq-a.base >= uint64(len(a.times)) {
		return
	}
	i := seq - a.base
	a.times[i].Store(t.UnixNano())
	if !a.feed {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kinds[i] = 2
	if visible {
		a.kinds[i] = 1
	}
	for a.settled < len(a.kinds) && a.kinds[a.settled] != 0 {
		if a.kinds[a.settled] == 1 {
			a.byFeed[a.visible].Store(a.times[a.settled].Load())
			a.visible++
		}
		a.settled++
	}
}

// get returns when the change at position pos was acknowledged, in Unix
// nanoseconds, or 0 if that is not known (yet).
func (a *ackTimes) get(pos uint64) int64 {
	times, base := a.times, a.base
	if a.feed {
		times, base = a.byFeed, a.feedBase
	}
	if pos >= base && pos-base < uint64(len(times)) {
		return times[pos-base].Load()
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
}

// writeContacts has the writers make the sets spec says, through the service,
// over a connection each.
func writeContacts(ctx context.Context, url string, cfg Config, spec writeSpec) (writeResult, error) {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		res     writeResult
		wg      sync.WaitGroup
		failed  atomic.Pointer[error]
		limiter *rate.Limiter
	)
	n, acks, seed := spec.n, spec.acks, spec.seed
	if spec.limit > 0 {
		limiter = rate.NewLimiter(rate.Limit(spec.limit), max(1, int(spec.limit/100)))
	}
	conns := make([]*nats.Conn, cfg.Writers)
	defer closeAll(conns)
	for i := range conns {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench writer %d", i)))
		if err != nil {
			return res, err
		}
		conns[i] = nc
	}
	start := time.Now()
	var until time.Time
	if spec.duration > 0 {
		until = start.Add(spec.duration)
	}
	for w := range cfg.Writers {
		set := client.New(conns[w]).Set
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
					if !until.IsZero() && !time.Now().Before(until) {
						return
					}
					if limiter != nil {
						if err := limiter.Wait(ctx); err != nil {
							return
						}
					}
					contact := rng.IntN(cfg.Contacts)
					if spec.sequential {
						contact = int(i-1) % cfg.Contacts
					}
					status, cause := pick(rng)
					r, err := set(ctx, client.SetRequest{Contact: contactID(contact), Status: status, Cause: cause,
						Name: fmt.Sprintf("User %d", contact)})
					if err != nil {
						err = fmt.Errorf("set: %w", err)
						failed.CompareAndSwap(nil, &err)
						return
					}
					sets++
					if r.Changed {
						v := events.VisibleChange(r.Previous, r.Status)
						acks.put(r.Seq, time.Now(), v)
						appended++
						lastSeq = max(lastSeq, r.Seq)
						if v {
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
