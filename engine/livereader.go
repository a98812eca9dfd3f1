package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// CurrentPrefix is where the engine announces, on core NATS, the visible status
// of a contact each time the projection applies a visible change of it:
// presence.current.<token>, a status reply. Nothing hidden is ever announced:
// the announcement is the contact's status as everyone else sees it.
const CurrentPrefix = "presence.current."

// announcer publishes the projection's visible changes on CurrentPrefix.
type announcer struct {
	nc  *nats.Conn
	buf []byte
}

// announce is the follower's OnVisible: it runs on the follower's goroutine
// only, so one buffer serves (Publish copies it).
func (a *announcer) announce(v projections.View) {
	a.buf = appendReply(a.buf[:0], Reply{Contact: v.Contact, Name: v.Name, Status: v.Status, Seq: v.Seq})
	_ = a.nc.Publish(CurrentPrefix+events.Token(v.Contact), a.buf)
}

// LiveReaderConfig configures a LiveReader.
type LiveReaderConfig struct {
	// Conn receives the engine's announcements. Required.
	Conn *nats.Conn
	// Fallback answers what the announcements cannot: changes from before the
	// reader started, or whose announcement was lost or is late. Typically a
	// Client. Required.
	Fallback BatchReader
	// Wait is how long a read waits for the announcement of its change before
	// asking Fallback. Zero means 50ms.
	Wait time.Duration
	// Size is about how many contacts' statuses are kept. Zero means 65,536.
	Size int
}

// LiveReader reads the current status of contacts from the engine's
// announcements on core NATS (CurrentPrefix), as they come, instead of asking
// the service for each: a subscriber's read is then local. A read for a change
// waits (up to Wait) for an announcement at least as new as the change; one it
// cannot have (the change is older than the reader, or its announcement was
// lost) goes to Fallback with the change's min_seq. Either way a read is never
// older than its change. It implements BatchReader, and is safe for concurrent
// use; Close it when done. It keeps the newest status of each contact by its
// log sequence, so once the log went back (a subscription ended with
// ErrFeedWentBack), subscribe again with a new LiveReader: this one would
// answer from the old history until the new one passes its sequences.
type LiveReader struct {
	cfg LiveReaderConfig
	sub *nats.Subscription

	mu        sync.Mutex
	cur, old  map[string]Reply // two generations, for a bounded size
	firstSeen uint64           // sequence of the first announcement: what is older came before
	updated   chan struct{}    // closed and replaced on each announcement
}

// NewLiveReader subscribes to the announcements.
func NewLiveReader(cfg LiveReaderConfig) (*LiveReader, error) {
	if cfg.Conn == nil || cfg.Fallback == nil {
		return nil, errors.New("engine: a live reader needs a Conn and a Fallback")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 50 * time.Millisecond
	}
	if cfg.Size <= 0 {
		cfg.Size = 65536
	}
	l := &LiveReader{cfg: cfg, cur: map[string]Reply{}, updated: make(chan struct{})}
	sub, err := cfg.Conn.Subscribe(CurrentPrefix+">", l.receive)
	if err != nil {
		return nil, err
	}
	// Bounded client-side buffering: past it NATS drops, and reads fall back.
	_ = sub.SetPendingLimits(1<<16, 64<<20)
	l.sub = sub
	return l, cfg.Conn.Flush()
}

func (l *LiveReader) receive(m *nats.Msg) {
	var r Reply
	if err := r.UnmarshalJSON(m.Data); err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstSeen == 0 {
		l.firstSeen = r.Seq
	}
	if have, ok := l.lookup(r.Contact); ok && have.Seq >= r.Seq {
		return // several engines announce: keep the newest
	}
	if len(l.cur) >= l.cfg.Size/2 {
		l.old, l.cur = l.cur, make(map[string]Reply, l.cfg.Size/2)
	}
	l.cur[r.Contact] = r
	close(l.updated)
	l.updated = make(chan struct{})
}

// lookup reads the kept status of a contact; l.mu is held.
func (l *LiveReader) lookup(contact string) (Reply, bool) {
	if r, ok := l.cur[contact]; ok {
		return r, true
	}
	r, ok := l.old[contact]
	return r, ok
}

// local returns a kept status at least as new as minSeq, or whether one may
// still come (its change is not older than the reader), and the channel that
// says when something new arrives.
func (l *LiveReader) local(contact string, minSeq uint64) (r Reply, ok, mayCome bool, updated <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.lookup(contact); ok && r.Seq >= minSeq {
		return r, true, false, nil
	}
	return Reply{}, false, l.firstSeen != 0 && minSeq >= l.firstSeen, l.updated
}

// Status returns the contact as everyone else sees it, at least as new as
// minSeq: from the announcements if they have it (or do within Wait), else from
// Fallback.
func (l *LiveReader) Status(ctx context.Context, contact string, minSeq uint64) (Reply, error) {
	if r, ok := l.await(ctx, contact, minSeq); ok {
		return r, nil
	}
	return l.cfg.Fallback.Status(ctx, contact, minSeq)
}

// await waits up to Wait for an announcement at least as new as minSeq.
func (l *LiveReader) await(ctx context.Context, contact string, minSeq uint64) (Reply, bool) {
	var deadline <-chan time.Time
	for {
		r, ok, mayCome, updated := l.local(contact, minSeq)
		if ok {
			return r, true
		}
		if !mayCome {
			return Reply{}, false
		}
		if deadline == nil {
			t := time.NewTimer(l.cfg.Wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-updated:
		case <-deadline:
			return Reply{}, false
		case <-ctx.Done():
			return Reply{}, false
		}
	}
}

// Statuses returns the contacts as everyone else sees them, at least as new as
// minSeq, in the order given: those the announcements have, and the rest from
// Fallback in one request.
func (l *LiveReader) Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]Reply, error) {
	wants := make([]want, len(contacts))
	for i, c := range contacts {
		wants[i] = want{contact: c, minSeq: minSeq}
	}
	return l.statusesEach(ctx, wants)
}

// want is one contact to read, at least as new as its own change.
type want struct {
	contact string
	minSeq  uint64
}

// statusesEach reads each contact at least as new as its own minSeq: from the
// announcements, waiting together at most Wait for those that may still come,
// and the rest from Fallback in one request, at the newest of their minSeqs.
func (l *LiveReader) statusesEach(ctx context.Context, wants []want) ([]Reply, error) {
	out := make([]Reply, len(wants))
	have := make([]bool, len(wants))
	var deadline <-chan time.Time
	for {
		waiting, pending := false, 0
		var updated <-chan struct{}
		for i, w := range wants {
			if have[i] {
				continue
			}
			r, ok, mayCome, upd := l.local(w.contact, w.minSeq)
			switch {
			case ok:
				out[i], have[i] = r, true
			case mayCome:
				waiting, updated = true, upd
				pending++
			default:
				pending++
			}
		}
		if pending == 0 {
			return out, nil
		}
		if !waiting {
			break
		}
		if deadline == nil {
			t := time.NewTimer(l.cfg.Wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-updated:
			continue
		case <-deadline:
		case <-ctx.Done():
		}
		break
	}
	var missing []string
	var at []int
	var minSeq uint64
	for i, w := range wants {
		if !have[i] {
			missing, at, minSeq = append(missing, w.contact), append(at, i), max(minSeq, w.minSeq)
		}
	}
	rest, err := l.cfg.Fallback.Statuses(ctx, missing, minSeq)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = rest[j]
	}
	return out, nil
}

// Close stops receiving announcements. It is safe to call more than once.
func (l *LiveReader) Close() error {
	err := l.sub.Unsubscribe()
	if errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
		return nil
	}
	return err
}
