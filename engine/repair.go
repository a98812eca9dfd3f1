package engine

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/projections"
)

// repairCtx is where the engine runs a repair: the context and group of Run.
type repairCtx struct {
	ctx context.Context
	wg  *errgroup.Group
}

// corrupt is told that the projection's store is damaged: a read or the fold
// hit a block that fails its checksum. It says so loudly and rebuilds the
// projection from the log while the rest goes on (reads of what is damaged fail
// with a 500 until the switch: never a wrong answer). One repair runs at a time.
func (e *Engine) corrupt(err error) {
	r := e.repairs.Load()
	if r == nil || !e.repairing.CompareAndSwap(false, true) {
		return
	}
	e.damaged.Add(1)
	e.logger.Error("projection: the store is damaged; rebuilding it from the log", "err", err)
	r.wg.Go(func() error {
		defer e.repairing.Store(false)
		for r.ctx.Err() == nil {
			res, err := e.Rebuild(r.ctx, nil)
			if err == nil {
				e.logger.Warn("projection: rebuilt from the log after damage", "seq", res.Seq, "digest", res.Digest.Sum)
				return nil
			}
			if errors.Is(err, client.ErrUnavailable) && r.ctx.Err() == nil { // an operator's verify or rebuild runs
				e.logger.Warn("projection: repair waits for the admin operation in progress", "err", err)
				select {
				case <-r.ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			if r.ctx.Err() == nil {
				e.logger.Error("projection: rebuilding the damaged store failed", "err", err)
			}
			return nil
		}
		return nil
	})
}

// scan reads every state of the projection once, at start, so that a damaged
// store is found (and repaired, as the projection tells corrupt) before a
// read or the fold stumbles on it.
func (e *Engine) scan(ctx context.Context) {
	_ = e.projection.Each(func(projections.State) bool { return ctx.Err() == nil })
}
