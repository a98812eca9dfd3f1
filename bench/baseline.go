package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/presence-engine/presence/projections"
)

// The raw baselines run on the engine's server, on streams of their own.
const (
	rawStream  = "BENCH_RAW"
	rawSubject = "bench.raw."
	// rawFeedStream is the second stream of the append floor, as the feed is
	// the engine's second.
	rawFeedStream  = "BENCH_RAW_FEED"
	rawFeedSubject = "bench.rawfeed."
	// maxPending bounds the async publishes in flight, as a semaphore released
	// by the acks: the library's own limit stalls rather than waits.
	maxPending = 4096
)

// rawStreamConfig is a scratch stream: file storage, like the log.
func rawStreamConfig(name, subject string, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: name, Subjects: []string{subject + ">"}, Storage: jetstream.FileStorage,
		Replicas: replicas, MaxMsgs: -1, MaxBytes: -1}
}

// resetRawStream deletes and creates the scratch stream.
func resetRawStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	return resetStream(ctx, js, rawStreamConfig(rawStream, rawSubject, replicas))
}

// resetStream deletes and creates a scratch stream.
func resetStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	if err := js.DeleteStream(ctx, cfg.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := js.CreateStream(ctx, cfg)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		// A just-deleted stream can take a moment to go (10049).
		time.Sleep(50 * time.Millisecond)
	}
}

// publishAsync publishes n messages of size bytes over subjects distinct
// subjects as fast as acks come back, with at most maxPending in flight, and
// returns messages per second. With expect, each carries the expected last
// sequence of its subject, as the engine's appends do; only one per subject is
// then in flight.
func publishAsync(ctx context.Context, nc *nats.Conn, n, size, subjects int, expect bool) (float64, error) {
	start, err := publishAll(ctx, nc, n, size, subjects, expect, nil)
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// paced, given to publishAll, spaces its publishes and times their acks, as
// the writers of the engine's latency run are spaced and timed.
type paced struct {
	limiter *rate.Limiter
	acks    *ackTimes
}

// publishAll is publishAsync, returning when the last ack came back and the
// time of the first publish; with pace, spaced and timed by it.
func publishAll(ctx context.Context, nc *nats.Conn, n, size, subjects int, expect bool, pace *paced) (time.Time, error) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'x'
	}
	sem := make(chan struct{}, maxPending)
	var (
		mu       sync.Mutex
		last     = make([]uint64, subjects) // last sequence of each subject
		inFlight = make([]bool, subjects)
		freed    = sync.NewCond(&mu)
		failed   atomic.Pointer[error]
		acked    sync.WaitGroup
	)
	subjectOf := func(m *nats.Msg) int {
		i, _ := strconv.Atoi(m.Subject[len(rawSubject):])
		return i
	}
	settle := func(m *nats.Msg, seq uint64) {
		if expect {
			i := subjectOf(m)
			mu.Lock()
			if seq > 0 {
				last[i] = seq
			}
			inFlight[i] = false
			freed.Broadcast()
			mu.Unlock()
		}
		<-sem
		acked.Done()
	}
	// The handlers run on the library's reply goroutine: they must not block.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*maxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
			if pace != nil {
				pace.acks.put(ack.Sequence, time.Now())
			}
			settle(m, ack.Sequence)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			err = fmt.Errorf("raw publish: %w", err)
			failed.CompareAndSwap(nil, &err)
			settle(m, 0)
		}))
	if err != nil {
		return time.Time{}, err
	}
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		if err := failed.Load(); err != nil {
			return time.Time{}, *err
		}
		if pace != nil {
			if err := pace.limiter.Wait(ctx); err != nil {
				return time.Time{}, err
			}
		}
		subj := i % subjects
		var opts []jetstream.PublishOpt
		if expect {
			mu.Lock()
			for inFlight[subj] {
				freed.Wait()
			}
			inFlight[subj] = true
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(last[subj]))
			mu.Unlock()
		}
		sem <- struct{}{}
		acked.Add(1)
		if _, err := js.PublishAsync(rawSubject+strconv.Itoa(subj), payload, opts...); err != nil {
			return time.Time{}, err
		}
	}
	acked.Wait()
	if err := failed.Load(); err != nil {
		return time.Time{}, *err
	}
	return start, nil
}

// appendFloor is the floor of an engine append: the least the design has the
// server do for each event, done with plain NATS calls and none of the engine's
// own work. The messages are published as publishAsync does with expect (the
// log's appends); one ordered consumer, on a connection of its own, reads them
// back as they land (the log must be read to fold and to derive the feed); for
// four messages in five (the visible changes) it publishes an entry of the same
// size to a second stream with that stream's expected last sequence (the feed,
// exactly once). It returns messages per second, from the first publish until
// the second stream holds every entry. The engine does more per event than
// this: the request and reply of the service, a second reader of the log (the
// fold's and the feed's are apart), the announcement and the repeat.
func appendFloor(ctx context.Context, nc *nats.Conn, url string, replicas, n, size, subjects int) (float64, error) {
	start, err := floorPipeline(ctx, nc, url, replicas, n, size, subjects, nil, nil)
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// floorPipeline is the append floor's work, returning when the second stream
// holds every entry, and the time of the first publish. With pace, the
// publishes are spaced and their acks timed; with repeat, each entry, once
// stored, is handed to it (its log sequence and payload) on the reader's
// connection, as the engine repeats each feed entry on core NATS.
func floorPipeline(ctx context.Context, nc *nats.Conn, url string, replicas, n, size, subjects int,
	pace *paced, repeat func(fc *nats.Conn, logSeq string, payload []byte)) (time.Time, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return time.Time{}, err
	}
	if err := resetRawStream(ctx, js, replicas); err != nil {
		return time.Time{}, err
	}
	if err := resetStream(ctx, js, rawStreamConfig(rawFeedStream, rawFeedSubject, replicas)); err != nil {
		return time.Time{}, err
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), rawFeedStream)
	entries := int64(n - n/5) // the messages whose sequence is not a multiple of five
	var (
		stored    atomic.Int64
		read      atomic.Int64
		all       = make(chan struct{})
		failed    = make(chan error, 1)
		quit      = make(chan struct{}) // ends a handler waiting for room
		sem       = make(chan struct{}, maxPending)
		payload   = make([]byte, size)
		published uint64 // entries published, by the handler only
	)
	defer close(quit)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	stop, err := consumeRaw(ctx, url, func(fc *nats.Conn) (jetstream.MessageHandler, error) {
		fjs, err := jetstream.New(fc, jetstream.WithPublishAsyncMaxPending(2*maxPending),
			jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
				if repeat != nil {
					repeat(fc, m.Subject[len(rawFeedSubject):], m.Data)
				}
				<-sem
				if stored.Add(1) == entries {
					close(all)
				}
			}),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
				<-sem
				fail(fmt.Errorf("raw feed publish: %w", err))
			}))
		if err != nil {
			return nil, err
		}
		return func(msg jetstream.Msg) {
			read.Add(1)
			md, err := msg.Metadata()
			if err != nil {
				fail(err)
				return
			}
			if md.Sequence.Stream%5 == 0 {
				return
			}
			select {
			case sem <- struct{}{}:
			case <-quit:
				return
			}
			subject := rawFeedSubject + strconv.FormatUint(md.Sequence.Stream, 10)
			if _, err := fjs.PublishAsync(subject, payload, jetstream.WithExpectLastSequence(published)); err != nil {
				<-sem
				fail(err)
				return
			}
			published++
		}, nil
	})
	if err != nil {
		return time.Time{}, err
	}
	defer stop()
	start, err := publishAll(ctx, nc, n, size, subjects, true, pace)
	if err != nil {
		return time.Time{}, err
	}
	select {
	case <-all:
	case err = <-failed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("append floor: %d of %d read, %d of %d entries stored: %w", read.Load(), n, stored.Load(), entries, err)
	}
	return start, nil
}

// floorLiveSubject is where the floor of the latency run repeats its entries,
// the log sequence appended.
const floorLiveSubject = "bench.floor.live."

// latencyFloor is the floor of the latency run: the append floor's work at
// limit publishes a second (n of them), each entry repeated on core NATS once
// stored, to m subscribers on connections of their own, each timing every
// entry from the publish's ack as the latency run times a change from the
// writer's ack. The engine's path has more: the service, the fold's reader,
// the announcement, and the status the repeat carries.
func latencyFloor(ctx context.Context, nc *nats.Conn, url string, replicas, m, n, size, subjects int, limit float64) (Latency, error) {
	acks := newAckTimes(1, n+1) // the scratch stream starts again at 1
	o := newObserver(m, window{base: 1, size: n + 1}, acks)
	want := int64(m * (n - n/5))
	var got atomic.Int64
	all := make(chan struct{})
	for i := range m {
		sc, err := nats.Connect(url)
		if err != nil {
			return Latency{}, err
		}
		defer sc.Close()
		sub, err := sc.Subscribe(floorLiveSubject+">", func(msg *nats.Msg) {
			now := time.Now().UnixNano()
			seq, err := strconv.ParseUint(msg.Subject[len(floorLiveSubject):], 10, 64)
			if err != nil {
				return
			}
			o.time(i, seq, now)
			if got.Add(1) == want {
				close(all)
			}
		})
		if err != nil {
			return Latency{}, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := sc.Flush(); err != nil {
			return Latency{}, err
		}
	}
	pace := &paced{limiter: rate.NewLimiter(rate.Limit(limit), max(1, int(limit/100))), acks: acks}
	_, err := floorPipeline(ctx, nc, url, replicas, n, size, subjects, pace, func(fc *nats.Conn, logSeq string, payload []byte) {
		_ = fc.Publish(floorLiveSubject+logSeq, payload)
	})
	if err != nil {
		return Latency{}, err
	}
	select {
	case <-all:
	case <-ctx.Done():
		return Latency{}, ctx.Err()
	case <-time.After(10 * time.Second):
		return Latency{}, fmt.Errorf("floor of the latency run: %d of %d deliveries", got.Load(), want)
	}
	return o.latency(), nil
}

// foldFloor is the floor of the fold: the first n messages of a stream read
// with an ordered consumer, as orderedRead does, and each written to a fresh
// Pebble store in dir under its subject, in batches of up to 4096 committed
// without sync, each with the sequence of its last message (the checkpoint the
// design has the projection write with its states), as the fold commits, the
// writing beside the reading. None of the fold's own work (decoding, the state)
// is in it. It returns messages per second.
func foldFloor(ctx context.Context, js jetstream.JetStream, stream string, n int, dir string, logger *slog.Logger) (float64, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: projections.PebbleLogger(logger)})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	// Not a projections.Tail: its records carry no subject, the key of the
	// write that stands for the fold's.
	type kv struct {
		key, value []byte
		seq        uint64
	}
	c := make(chan kv, 16384)
	quit := make(chan struct{})
	defer close(quit)
	cc, start, err := consumeOrdered(ctx, js, stream, func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return // counted as missing: the wait below ends with ctx
		}
		select {
		case c <- kv{[]byte(msg.Subject()), msg.Data(), md.Sequence.Stream}:
		case <-quit:
		}
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	checkpoint := []byte("checkpoint")
	var seq [8]byte
	for written := 0; written < n; {
		b := db.NewBatch()
		var last uint64
		for k := 0; k < 4096 && written < n; k++ {
			var m kv
			if k == 0 {
				select {
				case m = <-c:
				case <-ctx.Done():
					b.Close()
					return 0, fmt.Errorf("fold floor of %s: %d of %d messages: %w", stream, written, n, ctx.Err())
				}
			} else {
				var ok bool
				select {
				case m, ok = <-c:
				default:
				}
				if !ok {
					break
				}
			}
			if err := b.Set(m.key, m.value, nil); err != nil {
				b.Close()
				return 0, err
			}
			last = m.seq
			written++
		}
		binary.BigEndian.PutUint64(seq[:], last)
		if err := b.Set(checkpoint, seq[:], nil); err != nil {
			b.Close()
			return 0, err
		}
		err := b.Commit(pebble.NoSync)
		b.Close()
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// consumeRaw reads the scratch stream with an ordered consumer on a connection
// of its own, handing its messages to the handler made for that connection.
func consumeRaw(ctx context.Context, url string, handler func(*nats.Conn) (jetstream.MessageHandler, error)) (stop func(), err error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	cc, err := func() (jetstream.ConsumeContext, error) {
		h, err := handler(nc)
		if err != nil {
			return nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		cc, _, err := consumeOrdered(ctx, js, rawStream, h)
		return cc, err
	}()
	if err != nil {
		nc.Close()
		return nil, err
	}
	return func() { cc.Stop(); nc.Close() }, nil
}

// consumeOrdered reads a stream with one ordered consumer, with the engine's
// settings (PullMaxMessages 5000), handing its messages to h. It returns when
// the reading began, once the consumer existed: the time a rate counts from.
func consumeOrdered(ctx context.Context, js jetstream.JetStream, stream string, h jetstream.MessageHandler) (jetstream.ConsumeContext, time.Time, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, time.Time{}, err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, time.Time{}, err
	}
	start := time.Now()
	cc, err := cons.Consume(h, jetstream.PullMaxMessages(5000))
	return cc, start, err
}

// orderedRead reads the first n messages of a stream with one ordered consumer
// (the engine's settings: PullMaxMessages 5000) and returns messages per second.
func orderedRead(ctx context.Context, js jetstream.JetStream, stream string, n int) (float64, error) {
	done := make(chan struct{})
	var got atomic.Int64
	cc, start, err := consumeOrdered(ctx, js, stream, func(jetstream.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("ordered read of %s: %d of %d messages: %w", stream, got.Load(), n, ctx.Err())
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fanoutOrdered has m ordered consumers, each on its own connection, read the
// first n messages of the scratch stream at once, and returns deliveries per
// second over all of them.
func fanoutOrdered(ctx context.Context, url string, m, n int) (float64, error) {
	return fanoutConsumers(ctx, url, m, n, nil, nil)
}

// The floor of a remote fan-out with reads asks for statuses on this subject,
// readBatch contacts a request, with up to readsAhead requests in flight per
// subscriber: as an client.Subscriber catching up does.
const (
	floorReadSubject = "bench.floor.statuses"
	readBatch        = 256
	readsAhead       = 3
)

// fanoutReadFloor is the floor of a remote fan-out with reads: the least the
// design has the server carry for M subscribers catching up, each reading the
// current status of every change it is handed, with plain NATS calls and none
// of the engine's code. It is fanoutOrdered with, for each consumer, one
// request per batch of up to readBatch messages naming their contacts (the
// next batches' requests travelling while one is awaited), answered by a
// responder on a connection of its own with a reply the size of the engine's
// statuses reply (each status taken from a map: no store). A delivery counts
// once the reply of its batch is in. started, if not nil, is called as the
// timing starts.
func fanoutReadFloor(ctx context.Context, url string, m, n, contacts int, started func()) (float64, error) {
	ids := make([]string, contacts)
	for i := range ids {
		ids[i] = contactID(i)
	}
	stop, err := serveFloorReads(url, ids)
	if err != nil {
		return 0, err
	}
	defer stop()
	return fanoutConsumers(ctx, url, m, n, func(ctx context.Context, nc *nats.Conn, count func(int), fail func(error)) func(jetstream.Msg) {
		return floorReads(ctx, nc, ids, n, count, fail)
	}, started)
}

// serveFloorReads answers the floor's status requests (contact IDs, one a
// line) with a statuses reply shaped as the engine's, on a connection of its
// own and as many subscriptions of one queue group as there are CPUs.
func serveFloorReads(url string, ids []string) (stop func(), err error) {
	statuses := make(map[string][]byte, len(ids))
	for i, id := range ids {
		statuses[id] = fmt.Appendf(nil, `{"contact":%q,"name":"User %d","status":"online","code":2,"seq":%d}`, id, i, 1_000_000+i)
	}
	unknown := []byte(`{"contact":"","name":"","status":"unknown","code":0,"seq":0}`)
	nc, err := nats.Connect(url, nats.Name("bench floor of reads"))
	if err != nil {
		return nil, err
	}
	answer := func(msg *nats.Msg) {
		out := append(make([]byte, 0, len(msg.Data)*4), `{"statuses":[`...)
		for i, id := range bytes.Split(msg.Data, []byte{'\n'}) {
			if i > 0 {
				out = append(out, ',')
			}
			st, ok := statuses[string(id)]
			if !ok {
				st = unknown
			}
			out = append(out, st...)
		}
		_ = msg.Respond(append(out, "]}"...))
	}
	for range runtime.GOMAXPROCS(0) {
		sub, err := nc.QueueSubscribe(floorReadSubject, "floor", answer)
		if err != nil {
			nc.Close()
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, -1)
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	return nc.Close, nil
}

// floorReads is one floor subscriber's reads: it batches the contacts of the
// messages taken (up to readBatch, what is waiting), sends a request per batch
// with up to readsAhead in flight, and counts the batch's deliveries when its
// reply is in.
func floorReads(ctx context.Context, nc *nats.Conn, ids []string, n int, count func(int), fail func(error)) func(jetstream.Msg) {
	in := make(chan string, readBatch)
	go func() {
		slots := make(chan struct{}, readsAhead)
		var body []byte
		contactOf := func(subject string) string {
			i, _ := strconv.Atoi(subject[len(rawSubject):])
			return ids[i%len(ids)]
		}
		for taken := 0; taken < n; {
			var subject string
			select {
			case subject = <-in:
			case <-ctx.Done():
				return
			}
			body = append(body[:0], contactOf(subject)...)
			k := 1
		batch:
			for k < readBatch && taken+k < n {
				select {
				case subject = <-in:
					body = append(append(body, '\n'), contactOf(subject)...)
					k++
				default:
					break batch
				}
			}
			taken += k
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func(req []byte, k int) {
				defer func() { <-slots }()
				reply, err := nc.Request(floorReadSubject, req, 10*time.Second)
				if err != nil {
					fail(fmt.Errorf("floor of reads: %w", err))
					return
				}
				if len(reply.Data) < len(req) {
					fail(fmt.Errorf("floor of reads: a reply of %d bytes to a request of %d", len(reply.Data), len(req)))
					return
				}
				count(k)
			}(bytes.Clone(body), k)
		}
	}()
	return func(msg jetstream.Msg) {
		select {
		case in <- msg.Subject():
		case <-ctx.Done():
		}
	}
}

// fanoutConsumers has m ordered consumers, each on its own connection, read
// the first n messages of the scratch stream at once, and returns deliveries
// per second over all of them. A delivery counts as it arrives, or, with
// reads, once reads counts it (or fails). started, if not nil, is called as
// the timing starts.
func fanoutConsumers(ctx context.Context, url string, m, n int,
	reads func(ctx context.Context, nc *nats.Conn, count func(int), fail func(error)) func(jetstream.Msg), started func()) (float64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conns := make([]*nats.Conn, m)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	cons := make([]jetstream.Consumer, m)
	for i := range m {
		nc, err := nats.Connect(url)
		if err != nil {
			return 0, err
		}
		conns[i] = nc
		js, err := jetstream.New(nc)
		if err != nil {
			return 0, err
		}
		s, err := js.Stream(ctx, rawStream)
		if err != nil {
			return 0, err
		}
		if cons[i], err = s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{}); err != nil {
			return 0, err
		}
	}
	var wg sync.WaitGroup
	var total atomic.Int64
	// Timed as the engine's subscribers catching up are: from when every
	// consumer exists (and may have pulled its first messages), with the
	// handlers held until then.
	gate := make(chan struct{})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	defer open() // a failed start must not leave handlers held
	ccs := make([]jetstream.ConsumeContext, 0, m)
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	for i := range m {
		wg.Add(1)
		var counted atomic.Int64
		count := func(k int) {
			total.Add(int64(k))
			if counted.Add(int64(k)) == int64(n) {
				wg.Done()
			}
		}
		take := func(jetstream.Msg) { count(1) }
		if reads != nil {
			take = reads(ctx, conns[i], count, cancel)
		}
		var got atomic.Int64
		cc, err := cons[i].Consume(func(msg jetstream.Msg) {
			<-gate
			// The stream may hold more than n: what comes after does not count.
			if got.Add(1) <= int64(n) {
				take(msg)
			}
		}, jetstream.PullMaxMessages(256))
		if err != nil {
			return 0, err
		}
		ccs = append(ccs, cc)
	}
	if started != nil {
		started()
	}
	start := time.Now()
	open()
	if err := waitGroup(ctx, &wg); err != nil {
		return 0, fmt.Errorf("fan-out to %d ordered consumers: %d of %d deliveries: %w", m, total.Load(), m*n, context.Cause(ctx))
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}

// fanoutCore has one publisher send n messages of size bytes on a core subject
// to m subscribers, each on its own connection, and returns deliveries per
// second over all of them. Core NATS drops for slow consumers: what arrives is
// what counts, and the run ends when nothing more arrives.
func fanoutCore(ctx context.Context, url string, m, n, size int) (float64, error) {
	const subject = "bench.core"
	conns := make([]*nats.Conn, 0, m+1)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	var total atomic.Int64
	for range m {
		nc, err := nats.Connect(url)
		if err != nil {
			return 0, err
		}
		conns = append(conns, nc)
		sub, err := nc.Subscribe(subject, func(*nats.Msg) { total.Add(1) })
		if err != nil {
			return 0, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.Flush(); err != nil {
			return 0, err
		}
	}
	pub, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	conns = append(conns, pub)
	payload := make([]byte, size)
	start := time.Now()
	for i := range n {
		if err := pub.Publish(subject, payload); err != nil {
			return 0, err
		}
		if i%1000 == 999 {
			// A round trip now and then keeps the publisher from racing
			// ahead of the server.
			if err := pub.Flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := pub.Flush(); err != nil {
		return 0, err
	}
	want := int64(m * n)
	lastChange, seen := time.Now(), int64(-1)
	for total.Load() < want && ctx.Err() == nil {
		if got := total.Load(); got != seen {
			seen, lastChange = got, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break // dropped: count what came
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	if total.Load() < want {
		elapsed -= time.Since(lastChange)
	}
	return float64(total.Load()) / elapsed.Seconds(), nil
}

// waitGroup waits for wg or ctx.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
