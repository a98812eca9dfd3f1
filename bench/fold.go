package bench

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// fold folds the whole log into a fresh projection, and reads the same log with
// a raw ordered consumer, in the same run.
func (r *runner) fold(ctx context.Context) error {
	last, err := r.lastLogSeq(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	r.step("baseline: ordered read of the log's %d events", last)
	raw, err := orderedRead(ctx, r.js, events.LogStream, int(last))
	if err != nil {
		return err
	}
	r.step("baseline: the floor of a fold: an ordered read of the log's %d events, each written to a fresh Pebble store", last)
	if r.res.Baselines.FoldFloor, err = foldFloor(ctx, r.js, events.LogStream, int(last), filepath.Join(r.dir, "fold-floor"), r.cfg.Logger); err != nil {
		return err
	}
	r.step("engine: folding the log's %d events into a fresh projection", last)
	proj, err := projections.Open(filepath.Join(r.dir, "fold"), projections.Options{Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	defer proj.Close()
	f, err := projections.NewFollower(projections.FollowerConfig{Projection: proj, JetStream: r.js, Stream: events.LogStream, Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(fctx) }()
	werr := proj.WaitApplied(ctx, last)
	elapsed := time.Since(start)
	stop()
	if err := errors.Join(werr, <-done); err != nil {
		return err
	}
	r.res.Fold = compare(float64(last)/elapsed.Seconds(), raw)
	r.res.FoldCount = last
	return nil
}
