package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/tail"
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Projection is folded into. Required.
	Projection *Projection
	// JetStream reaches the log. Required.
	JetStream jetstream.JetStream
	// Stream is the log's name. Zero means events.LogStream.
	Stream string
	// Logger receives what the follower notices. Zero means slog.Default().
	Logger *slog.Logger
	// MaxBatch is the most records folded in one Pebble batch. Zero means 4096.
	MaxBatch int
	// PullMaxMessages is how many messages the consumer keeps in flight. Zero
	// means 5000, which reads ~30% faster than the library's 500.
	PullMaxMessages int
	// RetryWait is the pause before trying again after the log could not be
	// reached. Zero means 250ms.
	RetryWait time.Duration
}

// Follower folds the log into a projection as the log grows: an ordered consumer
// from the checkpoint on, one Pebble batch per batch of messages in hand. Before
// it starts, and whenever the log disappears under it, it checks that the log
// still holds what the projection was folded from; if not (the stream was deleted,
// recreated, or is behind the checkpoint) it says so and rebuilds the projection
// from the log rather than serve state the log does not hold.
//
// Its methods are safe for concurrent use.
type Follower struct {
	cfg    FollowerConfig
	p      *Projection
	logger *slog.Logger

	readyMu sync.Mutex
	ready   chan struct{} // closed once caught up with the log as seen at the last check
	isReady atomic.Bool

	tail     atomic.Uint64 // the log's last sequence as of the last message delivered
	rebuilds atomic.Uint64
}

// withDefaults returns c with its zero fields at their defaults.
func (c FollowerConfig) withDefaults() FollowerConfig {
	if c.Stream == "" {
		c.Stream = events.LogStream
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 4096
	}
	if c.PullMaxMessages <= 0 {
		c.PullMaxMessages = 5000
	}
	if c.RetryWait <= 0 {
		c.RetryWait = 250 * time.Millisecond
	}
	return c
}

// NewFollower returns a Follower; Run starts it.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if cfg.Projection == nil || cfg.JetStream == nil {
		return nil, errors.New("projections: a follower needs a Projection and a JetStream")
	}
	cfg = cfg.withDefaults()
	return &Follower{cfg: cfg, p: cfg.Projection, logger: cfg.Logger, ready: make(chan struct{})}, nil
}

// Ready returns a channel closed once the projection has caught up with the log
// as it stood when the follower last checked it: from then on reads without a
// minimum sequence trail the log by a moment only.
func (f *Follower) Ready() <-chan struct{} {
	f.readyMu.Lock()
	defer f.readyMu.Unlock()
	return f.ready
}

// IsReady reports whether Ready's channel is closed.
func (f *Follower) IsReady() bool { return f.isReady.Load() }

func (f *Follower) setReady(ready bool) {
	f.readyMu.Lock()
	defer f.readyMu.Unlock()
	if ready == f.isReady.Load() {
		return
	}
	f.isReady.Store(ready)
	if ready {
		close(f.ready)
	} else {
		f.ready = make(chan struct{})
	}
}

// Lag returns how many messages of the log, as far as the follower has seen it,
// the projection has not yet applied: 0 when it is caught up.
func (f *Follower) Lag() uint64 {
	tail, applied := f.tail.Load(), f.p.Applied()
	if tail < applied {
		return 0
	}
	return tail - applied
}

// Rebuilds returns how many times the follower found the log did not match the
// projection and rebuilt it.
func (f *Follower) Rebuilds() uint64 { return f.rebuilds.Load() }

// errRecheck ends one consumer so that the log is checked again.
var errRecheck = errors.New("projections: log changed under the consumer")

// Run folds until ctx is done, then returns nil. It returns an error only for
// what it cannot get past: the projection failing to write.
func (f *Follower) Run(ctx context.Context) error {
	for {
		err := f.follow(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errRecheck):
			f.logger.Warn("projection: the fold's consumer of the log was lost or made again; checking the log again", "stream", f.cfg.Stream, "err", err)
		case errors.Is(err, ErrCorrupt) && f.p.opts.EventListener.Corrupt != nil:
			// The projection told whoever replaces the store: try again,
			// until it has.
		case errors.Is(err, ErrClosed), errors.Is(err, ErrCorrupt):
			return err
		case err != nil:
			var perr *applyError
			if errors.As(err, &perr) {
				return err
			}
			f.logger.Warn("projection: cannot read the log; retrying", "stream", f.cfg.Stream, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.cfg.RetryWait):
		}
	}
}

// applyError marks a failure to write the projection, which Run does not retry.
type applyError struct{ err error }

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// follow checks the log against the checkpoint, then folds from the checkpoint
// until ctx is done or the consumer fails.
func (f *Follower) follow(ctx context.Context) error {
	stream, err := f.cfg.JetStream.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return fmt.Errorf("open log %q: %w", f.cfg.Stream, err)
	}
	logLast, err := f.check(ctx, stream)
	if err != nil {
		return err
	}
	tailer, err := tail.Start(ctx, stream, tail.Config{
		From:            f.p.Applied() + 1,
		Subjects:        []string{events.EventsPrefix + ">"},
		Buffer:          4 * f.cfg.MaxBatch, // room to go on reading while a batch commits
		PullMaxMessages: f.cfg.PullMaxMessages,
		Logger:          f.logger,
		Conn:            f.cfg.JetStream.Conn(),
	})
	if err != nil {
		return err
	}
	defer tailer.Stop()
	f.tail.Store(max(logLast, tailer.Last()))

	if f.p.Applied() >= logLast {
		f.setReady(true)
	}
	var batch []Record
	for {
		batch, err = tailer.Next(ctx, batch, f.cfg.MaxBatch)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, tail.ErrConsumerLost) {
			return fmt.Errorf("%w: %v", errRecheck, err)
		}
		if err != nil {
			return err
		}
		if err := f.p.Apply(batch); err != nil {
			return &applyError{err}
		}
		f.tail.Store(tailer.Last())
		if f.p.Applied() >= logLast {
			f.setReady(true)
		}
	}
}

// check compares the log with the checkpoint and rebuilds the projection when
// they do not match. It returns the log's last sequence.
func (f *Follower) check(ctx context.Context, stream jetstream.Stream) (uint64, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read log %q: %w", f.cfg.Stream, err)
	}
	cp := f.p.Checkpoint()
	reason := ""
	switch {
	case cp.Seq == 0:
	case info.State.LastSeq < cp.Seq:
		reason = fmt.Sprintf("the log ends at seq %d, behind the projection's checkpoint %d", info.State.LastSeq, cp.Seq)
	case info.State.FirstSeq > cp.Seq+1:
		reason = fmt.Sprintf("the log starts at seq %d: events %d to %d were removed before the projection applied them",
			info.State.FirstSeq, cp.Seq+1, info.State.FirstSeq-1)
	default:
		msg, err := stream.GetMsg(ctx, cp.Seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			reason = fmt.Sprintf("the log no longer holds seq %d, the projection's checkpoint", cp.Seq)
		case err != nil:
			return 0, fmt.Errorf("read log %q at seq %d: %w", f.cfg.Stream, cp.Seq, err)
		case Sum(msg.Data) != cp.Sum:
			reason = fmt.Sprintf("the log holds another event at seq %d than the one the projection applied (recreated?)", cp.Seq)
		}
	}
	if reason != "" {
		f.setReady(false)
		f.logger.Error("projection: the log does not match the projection; rebuilding it from the log",
			"stream", f.cfg.Stream, "seq", cp.Seq, "reason", reason)
		if err := f.p.Reset(); err != nil {
			return 0, &applyError{fmt.Errorf("%w: %s; reset failed: %v", ErrLogMismatch, reason, err)}
		}
		f.rebuilds.Add(1)
	}
	f.tail.Store(info.State.LastSeq)
	return info.State.LastSeq, nil
}
