package bench

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// baselines measures the raw figures, on a scratch stream of the engine's
// server: async publish with and without expected seq, an ordered read, the
// floor of an append, and for each M fan-out to M core subscribers and, up to
// the remote limit, to M ordered consumers, without and with reads.
func (r *runner) baselines(ctx context.Context) error {
	cfg, b := r.cfg, &r.res.Baselines
	n, size := cfg.BaselineMessages, r.res.EventSize
	var err error
	r.step("baseline: JetStream async publish of %d messages of %d bytes", n, size)
	if err := resetRawStream(ctx, r.js, r.replicas); err != nil {
		return err
	}
	if b.PublishAsync, err = publishAsync(ctx, r.nc, n, size, cfg.Contacts, expectNothing); err != nil {
		return err
	}
	r.step("baseline: the same, one writer expecting the stream's last sequence")
	if err := resetRawStream(ctx, r.js, r.replicas); err != nil {
		return err
	}
	if b.PublishAsyncExpectLast, err = publishAsync(ctx, r.nc, n, size, cfg.Contacts, expectLast); err != nil {
		return err
	}
	r.step("baseline: the same with expected-last-subject-sequence")
	if err := resetRawStream(ctx, r.js, r.replicas); err != nil {
		return err
	}
	if b.PublishAsyncExpect, err = publishAsync(ctx, r.nc, n, size, cfg.Contacts, expectSubject); err != nil {
		return err
	}
	r.step("baseline: one ordered consumer reading %d messages", n)
	if b.OrderedRead, err = orderedRead(ctx, r.js, rawStream, n); err != nil {
		return err
	}
	r.step("baseline: the floor of an append: %d messages published with expected seq, read back, four in five derived to a second stream", n)
	if b.AppendFloor, err = appendFloor(ctx, r.nc, r.eng.url, r.replicas, n, size, cfg.Contacts, expectSubject); err != nil {
		return err
	}
	r.step("baseline: the floor of an owner's append: the same, one writer expecting the stream's last sequence")
	if b.OwnerAppendFloor, err = appendFloor(ctx, r.nc, r.eng.url, r.replicas, n, size, cfg.Contacts, expectLast); err != nil {
		return err
	}
	b.FanoutOrdered, b.FanoutReadFloor, b.FanoutCore = map[int]float64{}, map[int]float64{}, map[int]float64{}
	b.FanoutReadFloorCPU = map[int]CPU{}
	for _, m := range cfg.Subscribers {
		per := min(n, max(2*n/m, 1000))
		if m <= cfg.MaxRemote {
			// As many as the writers make sets in a fan-out run, whose
			// visible ones (~80%) each catching-up subscriber reads: about
			// the same work, ramp-up and all.
			per := min(n, cfg.Changes)
			r.step("baseline: %d ordered consumers reading %d messages each", m, per)
			if b.FanoutOrdered[m], err = fanoutOrdered(ctx, r.eng.url, m, per); err != nil {
				return err
			}
			r.step("baseline: the floor of a remote fan-out with reads: %d ordered consumers reading %d messages each, and their statuses in batches", m, per)
			var clock cpuClock
			if b.FanoutReadFloor[m], err = fanoutReadFloor(ctx, r.eng.url, m, per, cfg.Contacts, func() { clock = r.eng.cpuNow() }); err != nil {
				return err
			}
			b.FanoutReadFloorCPU[m] = r.eng.perDelivery(clock, int64(m*per))
		}
		r.step("baseline: core NATS to %d subscribers, %d messages", m, per)
		if b.FanoutCore[m], err = fanoutCore(ctx, r.eng.url, m, per, size); err != nil {
			return err
		}
	}
	return r.js.DeleteStream(ctx, rawStream)
}

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

// rawIndex is the index i of a scratch-stream subject, rawSubject+i.
func rawIndex(subject string) int {
	i, _ := strconv.Atoi(subject[len(rawSubject):])
	return i
}
