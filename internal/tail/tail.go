// Package tail reads a JetStream stream in order, as the fold, the feed and the
// subscribers do: an ordered consumer whose records are handed over on a
// channel, that fails rather than read on when the stream is deleted, created
// again or restored from an older copy under it.
package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/internal/retry"
)

// ErrConsumerLost: the consumer of a Tail was deleted under it, as happens when
// its stream is deleted (and perhaps recreated), or the library made it again
// (after a reconnection, say) on a stream created again meanwhile, which it
// would go on reading from the same sequence as if it were the one before. The
// reader must look at the stream again before going on.
var ErrConsumerLost = errors.New("tail: the stream's consumer was lost (was the stream deleted or recreated?)")

// Config configures a Tail.
type Config struct {
	// From is the first stream sequence delivered. Zero means the first.
	From uint64
	// Since, when set (and From is not), starts at the first message the stream
	// stored at or after it.
	Since time.Time
	// Subjects filters the stream. Zero means all of it.
	Subjects []string
	// Buffer is how many records wait in C. Zero means 4096.
	Buffer int
	// PullMaxMessages is how many messages the consumer keeps in flight. Zero
	// means 5000, which reads ~30% faster than the library's 500.
	PullMaxMessages int
	// Logger receives consumer errors, at Debug. Zero means slog.Default().
	Logger *slog.Logger
	// Conn, when set, is the connection the stream is read over: a Tail looks
	// at the stream again as soon as it reconnects, as it does every Watch.
	Conn *nats.Conn
	// Watch is how often a Tail looks at its stream to see that it was not
	// created again, or went back to before what the Tail delivered, under
	// it. A new consumer the library made shows it too, but only once it
	// delivers, and one on a stream created again shorter than where the Tail
	// reads delivers nothing for a while. Zero means 2s; negative, never.
	Watch time.Duration
}

// Tail reads a stream in order with an ordered consumer (no acks, recreated by
// the library after a fault, never skipping or repeating a message) and hands the
// records over on a channel. A slow reader holds up only its own Tail. Its
// methods are safe for concurrent use.
type Tail struct {
	// C delivers the records in stream order.
	C <-chan Record

	cc        jetstream.ConsumeContext
	done      chan struct{}
	failed    chan struct{} // closed when the consumer was lost
	failErr   error
	failOnce  sync.Once
	last      atomic.Uint64          // the stream's last sequence as of the last delivery
	delivered atomic.Uint64          // the sequence of the last record delivered
	callback  sync.Mutex             // held by the consumer's callback, for one record
	lastData  []byte                 // the data of the record delivered last; under callback
	pending   uint64                 // messages to deliver when the consumer was created
	consumer  atomic.Pointer[string] // the name of the consumer read
	stream    jetstream.Stream
	conn      *nats.Conn // Config.Conn
	created   time.Time  // when the stream read was created
	// live lasts until Stop: the Tail's own looks at the stream use it,
	// whatever becomes of the context it was started with.
	live     context.Context
	stopLive context.CancelFunc
	watching sync.WaitGroup
	stopped  sync.Once
}

// ConsumerGone reports whether err, as nats.go hands it to a consumer's error
// handler, says the consumer or its stream is gone: the library makes the
// consumer again by itself, but a stream deleted, and perhaps created again,
// under it is another stream.
func ConsumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound)
}

// Record is one message of a stream as a Tail hands it over: its stream
// sequence, its data and its headers (nil if none).
type Record struct {
	Seq    uint64
	Data   []byte
	Header nats.Header
}

// withDefaults returns c with its zero fields at their defaults.
func (c Config) withDefaults() Config {
	if c.Buffer <= 0 {
		c.Buffer = 4096
	}
	if c.PullMaxMessages <= 0 {
		c.PullMaxMessages = 5000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Watch == 0 {
		c.Watch = 2 * time.Second
	}
	return c
}

// Start starts reading stream; ctx bounds only the start. Stop ends it.
func Start(ctx context.Context, stream jetstream.Stream, cfg Config) (*Tail, error) {
	cfg = cfg.withDefaults()
	ocfg := jetstream.OrderedConsumerConfig{FilterSubjects: cfg.Subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if cfg.From > 1 {
		ocfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		ocfg.OptStartSeq = cfg.From
	} else if !cfg.Since.IsZero() {
		ocfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		ocfg.OptStartTime = &cfg.Since
	}
	cons, err := stream.OrderedConsumer(ctx, ocfg)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	c := make(chan Record, cfg.Buffer)
	t := &Tail{C: c, done: make(chan struct{}), failed: make(chan struct{}), stream: stream, conn: cfg.Conn}
	t.live, t.stopLive = context.WithCancel(context.WithoutCancel(ctx))
	if info := stream.CachedInfo(); info != nil {
		t.last.Store(info.State.LastSeq)
		t.created = info.Created
	}
	if info := cons.CachedInfo(); info != nil {
		t.sameConsumer(info.Name)
	}
	t.cc, err = cons.Consume(func(msg jetstream.Msg) {
		// One record at a time, whichever consumer it comes from: nats.go
		// calls a consumer made again on a goroutine of its own, without
		// waiting for the old one's callback, which may still be looking
		// at the stream with a record that comes first.
		t.callback.Lock()
		defer t.callback.Unlock()
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		select {
		case <-t.failed:
			return // whatever comes after a loss may be from another stream
		default:
		}
		if !t.sameConsumer(md.Consumer) {
			// Made again: by then the stream may have been created
			// again (the client was cut off from a server that lost its
			// store, and another engine made the streams again), and the
			// new consumer reads it on from the same sequence all the same.
			// Or restored from an older copy, which keeps its creation time
			// and may have grown past the Tail since: then it holds another
			// record where the Tail delivered its last one. Nothing is
			// delivered until that is known.
			if !t.checkUntilKnown(fmt.Sprintf("consumer %s made again as %s", *t.consumer.Load(), md.Consumer), true) {
				return
			}
			t.consumer.Store(&md.Consumer)
		}
		t.last.Store(md.Sequence.Stream + md.NumPending)
		data := msg.Data()
		t.lastData = data
		t.delivered.Store(md.Sequence.Stream)
		select {
		case c <- Record{Seq: md.Sequence.Stream, Data: data, Header: msg.Headers()}:
		case <-t.done:
		case <-t.failed:
		}
	}, jetstream.PullMaxMessages(cfg.PullMaxMessages), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The library recreates a lost consumer by itself, from the sequence
		// after the last one delivered, but a stream deleted and recreated
		// under it is another log: stop, and let the reader look again.
		if ConsumerGone(err) {
			t.lost(err)
			return
		}
		cfg.Logger.Debug("consumer error", "stream", stream.CachedInfo().Config.Name, "err", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	if info := cons.CachedInfo(); info != nil {
		t.pending = info.NumPending
		t.sameConsumer(info.Name) // known before any delivery, for Stop
	}
	if cfg.Watch > 0 {
		t.watching.Add(1)
		go func() {
			defer t.watching.Done()
			t.watch(cfg.Watch, cfg.Conn)
		}()
	}
	return t, nil
}

// ErrStreamChanged: the stream read is not the one the Tail began with: it was
// created again, or ends before the last record delivered, or holds another
// record there. A Tail that fails for it has ErrConsumerLost and it in its
// Err.
var ErrStreamChanged = errors.New("tail: the stream changed under the consumer")

// check looks at the stream again: an error wrapping ErrStreamChanged if it
// was created again, or ends before the last record delivered (restored from
// an older copy, or created again shorter), or, with compare, holds another
// record at its sequence (restored from an older copy and grown since);
// another error if it cannot tell. Only the consumer's callback compares,
// holding callback.
func (t *Tail) check(compare bool) error {
	ctx, cancel := context.WithTimeout(t.live, 5*time.Second)
	defer cancel()
	info, err := t.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("look at the stream again: %w", err)
	}
	if !info.Created.Equal(t.created) {
		return fmt.Errorf("%w: it was created again (at %s, not %s)", ErrStreamChanged,
			info.Created.Format(time.RFC3339Nano), t.created.Format(time.RFC3339Nano))
	}
	delivered := t.delivered.Load()
	var last []byte
	if compare {
		last = t.lastData
	}
	if delivered == 0 || (info.State.LastSeq >= delivered && last == nil) {
		return nil
	}
	// Info may come from a replica that is behind (during an election, or
	// a new one joining); the record delivered last is read from the
	// stream's leader, which has it unless the stream went back.
	msg, err := t.stream.GetMsg(ctx, delivered)
	refused := err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && GetRefused(t.conn, info.Config.Name)
	switch {
	case (errors.Is(err, jetstream.ErrMsgNotFound) || refused) && info.State.LastSeq < delivered:
		// Refused the get, the stream's word is all there is.
		return fmt.Errorf("%w: it ends at seq %d, before seq %d, delivered", ErrStreamChanged, info.State.LastSeq, delivered)
	case errors.Is(err, jetstream.ErrMsgNotFound), refused:
		// Removed since, by the stream's limits or a delete; or a reader
		// that may not get messages of the stream: nothing to compare.
		return nil
	case err != nil:
		return fmt.Errorf("look at the stream again: %w", err)
	case last != nil && !bytes.Equal(msg.Data, last):
		return fmt.Errorf("%w: it holds another record at seq %d than the one delivered", ErrStreamChanged, delivered)
	}
	return nil
}

// checkUntilKnown checks the stream until it can tell, failing the Tail if it
// changed (compare as for check). It reports whether the Tail goes on: not if it
// changed, nor once the Tail was stopped.
func (t *Tail) checkUntilKnown(why string, compare bool) bool {
	pause := retry.Backoff{First: 50 * time.Millisecond, Max: time.Second}
	for {
		err := t.check(compare)
		if err == nil {
			return true
		}
		if errors.Is(err, ErrStreamChanged) {
			t.lost(fmt.Errorf("%s: %w", why, err))
			return false
		}
		if !pause.Wait(t.live) {
			return false
		}
	}
}

// watch looks at the stream every interval, and at once when conn (if any)
// reconnected, until the Tail stops or fails. After a reconnection, a look
// that cannot tell is made again soon, sooner than interval, until one can.
func (t *Tail) watch(interval time.Duration, conn *nats.Conn) {
	const poll = 50 * time.Millisecond // for a reconnection
	var reconnects uint64
	if conn != nil {
		reconnects = conn.Stats().Reconnects
	}
	next := time.Now().Add(interval) // when to look
	var again *retry.Backoff         // after a reconnection, until a look can tell
	tick := time.NewTicker(min(poll, interval))
	defer tick.Stop()
	for {
		select {
		case <-t.live.Done():
			return
		case <-t.failed:
			return
		case <-tick.C:
		}
		why := "looked again"
		if conn != nil && conn.Stats().Reconnects != reconnects && conn.IsConnected() {
			reconnects, why, next = conn.Stats().Reconnects, "reconnected", time.Now()
			again = &retry.Backoff{First: 2 * poll, Max: interval}
		}
		if time.Now().Before(next) {
			continue
		}
		err := t.check(false)
		switch {
		case errors.Is(err, ErrStreamChanged):
			t.lost(fmt.Errorf("%s: %w", why, err))
			return
		case err == nil:
			again, next = nil, time.Now().Add(interval)
		case again != nil:
			next = time.Now().Add(again.Next())
		default:
			next = time.Now().Add(interval)
		}
	}
}

// sameConsumer reports whether name is the consumer the Tail reads, the first
// name it is given being that one.
func (t *Tail) sameConsumer(name string) bool {
	if t.consumer.CompareAndSwap(nil, &name) {
		return true
	}
	return *t.consumer.Load() == name
}

// Pending returns how many messages the Tail had to deliver when it started: a
// reader that wants the stream as it stood then stops after that many.
func (t *Tail) Pending() uint64 { return t.pending }

// lost records the loss of the consumer, once.
func (t *Tail) lost(err error) {
	t.failOnce.Do(func() {
		t.failErr = fmt.Errorf("%w: %w", ErrConsumerLost, err)
		close(t.failed)
	})
}

// Failed returns a channel closed when the consumer was lost (Err says how);
// other faults the consumer rides out by itself. Nothing is delivered on C
// after it is closed.
func (t *Tail) Failed() <-chan struct{} { return t.failed }

// Err returns why the Tail failed, once Failed is closed; nil before.
func (t *Tail) Err() error {
	select {
	case <-t.failed:
		return t.failErr
	default:
		return nil
	}
}

// Last returns the stream's last sequence as of the last record delivered.
func (t *Tail) Last() uint64 { return t.last.Load() }

// Stop ends the consumer, and deletes it from the server. It is safe to call
// more than once.
func (t *Tail) Stop() {
	t.stopped.Do(func() {
		close(t.done)
		t.stopLive()
		t.cc.Stop()
		t.watching.Wait()
		if name := t.consumer.Load(); name != nil {
			Drop(t.stream, *name, t.conn)
		}
	})
}

// GetRefused reports whether the server last refused conn a get of a message
// of stream: a permissions violation on its get subjects, which the server
// answers with no reply (the get waits out its timeout) and reports apart.
// Such a user may never get one; other failures may pass.
func GetRefused(conn *nats.Conn, stream string) bool {
	if conn == nil {
		return false
	}
	err := conn.LastError()
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return false
	}
	msg := err.Error()
	for _, subject := range []string{"$JS.API.DIRECT.GET." + stream, "$JS.API.STREAM.MSG.GET." + stream} {
		if strings.Contains(msg, subject+`"`) || strings.Contains(msg, subject+".") {
			return true
		}
	}
	return false
}

// Drop deletes the consumer name of stream, once its reader has
// stopped, within a second, and not at all while conn (when given) is cut off:
// the library leaves an ordered consumer on the server until its inactive
// threshold (5 minutes) has passed, where operators listing consumers see it.
// Failing is harmless: the server drops it after that threshold.
func Drop(stream jetstream.Stream, name string, conn *nats.Conn) {
	if conn != nil && !conn.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = stream.DeleteConsumer(ctx, name)
}

// Next waits for the next record and then takes what else is already waiting, up
// to max records in all, appending them to batch[:0]. Once the Tail has failed it
// returns Err (and the records must not be used), or ctx's error when ctx ends.
func (t *Tail) Next(ctx context.Context, batch []Record, max int) ([]Record, error) {
	batch = batch[:0]
	if err := t.Err(); err != nil {
		return batch, err
	}
	select {
	case <-ctx.Done():
		return batch, ctx.Err()
	case <-t.failed:
		return batch, t.failErr
	case r := <-t.C:
		batch = append(batch, r)
	}
	for len(batch) < max {
		select {
		case r := <-t.C:
			batch = append(batch, r)
		default:
			return batch, t.Err()
		}
	}
	return batch, t.Err()
}
