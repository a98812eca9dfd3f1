package projections

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/tail"
)

// Progress is how far a long piece of work has come: Done of Total log events.
// Total may grow as the log does.
type Progress struct {
	Done  uint64 `json:"done"`
	Total uint64 `json:"total"`
}

// FoldLog reads the log (stream) from the projection's checkpoint on and folds it
// up to sequence to, inclusive, calling progress (if not nil) after each batch
// with the sequence applied. It returns once the projection has applied to, or
// once the log holds nothing more up to it (when the events up to to were
// removed); it fails at once if the log ends before to.
func (p *Projection) FoldLog(ctx context.Context, stream jetstream.Stream, to uint64, progress func(applied uint64)) error {
	if p.Applied() >= to {
		return nil
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	if info.State.LastSeq < to {
		return fmt.Errorf("%w: the log ends at seq %d, before seq %d", ErrLogMismatch, info.State.LastSeq, to)
	}
	reader, err := tail.Start(ctx, stream, tail.Config{
		From:     p.Applied() + 1,
		Subjects: []string{events.EventsPrefix + ">"},
		Buffer:   16384,
		Logger:   p.logger,
	})
	if err != nil {
		return err
	}
	defer reader.Stop()
	var batch []Record
	for p.Applied() < to {
		batch, err = reader.Next(ctx, batch, 4096)
		if err != nil {
			return err
		}
		cut := len(batch)
		for i, r := range batch {
			if r.Seq > to {
				cut = i
				break
			}
		}
		if err := p.Apply(batch[:cut]); err != nil {
			return err
		}
		if progress != nil {
			progress(p.Applied())
		}
		if cut < len(batch) || reader.Last() == batch[len(batch)-1].Seq {
			break // past to, or nothing more in the log for now: the rest up to to was removed
		}
	}
	return nil
}

// Rebuild folds the whole log afresh into a new store beside the projection's,
// while the projection goes on answering and being folded, and puts the new store
// in its place once it has caught up: for the moment of the switch, folds wait
// and reads are held (milliseconds). It returns a snapshot of the new store as
// of the switch, to be closed by the caller. A crash at any point leaves either the old store or the new one
// complete; Open cleans up what is left of the other.
//
// progress, if not nil, is called as the new store catches up.
func (p *Projection) Rebuild(ctx context.Context, stream jetstream.Stream, progress func(Progress)) (*Snapshot, error) {
	fs := p.fs()
	next := p.dir + rebuildSuffix
	if err := fs.RemoveAll(next); err != nil {
		return nil, fmt.Errorf("rebuild: clear %q: %w", next, err)
	}
	opts := p.opts
	opts.EventListener.Folded = nil // the rebuilt store is not the one audited
	q, err := Open(next, opts)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	defer func() {
		if q != nil {
			q.Close()
			fs.RemoveAll(next)
		}
	}()
	report := func(target uint64) func(uint64) {
		return func(applied uint64) {
			if progress != nil {
				progress(Progress{Done: applied, Total: max(target, p.Applied())})
			}
		}
	}
	// Catch up while the projection moves on, until what is left is one batch,
	// for a few rounds at most: a fold that keeps ahead is caught up with under
	// the lock.
	for range 8 {
		target, from := p.Applied(), q.Applied()
		if err := q.FoldLog(ctx, stream, target, report(target)); err != nil {
			return nil, fmt.Errorf("rebuild: %w", err)
		}
		if p.Applied() <= q.Applied()+4096 || q.Applied() == from {
			break
		}
	}
	// The last stretch with the fold held, then the switch.
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	want := p.Checkpoint()
	if err := q.FoldLog(ctx, stream, want.Seq, report(want.Seq)); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if got := q.Checkpoint(); got != want {
		return nil, fmt.Errorf("rebuild: %w: the fresh fold reached seq %d (sum %016x, feed position %d), the projection is at seq %d (sum %016x, feed position %d)",
			ErrLogMismatch, got.Seq, got.Sum, got.Feed, want.Seq, want.Sum, want.Feed)
	}
	if err := q.Close(); err != nil {
		return nil, fmt.Errorf("rebuild: close the new store: %w", err)
	}
	q = nil
	old, err := p.swap(next)
	if err != nil {
		return nil, err
	}
	if err := p.fs().RemoveAll(old); err != nil {
		p.logger.Warn("projection: removing the replaced store", "dir", old, "err", err)
	}
	p.logger.Info("projection: rebuilt from the log and switched", "dir", p.dir, "seq", want.Seq)
	return p.Snapshot()
}

const (
	rebuildSuffix = ".rebuild" // a rebuild in progress
	oldSuffix     = ".old"     // the store a rebuild replaced, until removed
)

// swap puts the store in dir next in the projection's place, and returns the
// directory the replaced store is left in, to be removed. The caller holds
// writeMu.
func (p *Projection) swap(next string) (string, error) {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return "", ErrClosed
	}
	fs := p.fs()
	old := p.dir + oldSuffix
	if err := p.db.Close(); err != nil {
		p.logger.Warn("projection: closing the replaced store", "err", err)
	}
	err := fs.RemoveAll(old)
	if err == nil {
		err = fs.Rename(p.dir, old)
		if err == nil {
			if err = fs.Rename(next, p.dir); err != nil {
				err = errors.Join(err, fs.Rename(old, p.dir)) // keep the old store
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("rebuild: switch stores: %w", err)
	}
	// Whichever store is in place now, it must be there: a new empty one
	// would serve state the log does not hold.
	opts := p.opts
	opts.errorIfNotExists = true
	db, oerr := openPebble(p.dir, opts)
	if oerr != nil {
		p.closed, p.closeErr = true, oerr
		return "", errors.Join(err, oerr)
	}
	p.db = db
	p.cache.clear() // of the replaced store; no reader is in (closeMu)
	if lerr := p.load(); lerr != nil {
		p.closed, p.closeErr = true, lerr
		db.Close()
		return "", errors.Join(err, lerr)
	}
	return old, err
}

// fs is the filesystem the projection is stored in.
func (p *Projection) fs() vfs.FS { return fsOf(p.opts) }

func fsOf(opts Options) vfs.FS {
	if opts.FS == nil {
		return vfs.Default
	}
	return opts.FS
}

// recoverSwap finishes or undoes a switch that a crash interrupted, before dir
// is opened: a missing store is the old one put back; a half-built one goes.
func recoverSwap(dir string, opts Options) error {
	fs := fsOf(opts)
	if _, err := fs.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := fs.Stat(dir + oldSuffix); err == nil {
			if err := fs.Rename(dir+oldSuffix, dir); err != nil {
				return err
			}
		}
	}
	return errors.Join(fs.RemoveAll(dir+rebuildSuffix), fs.RemoveAll(dir+oldSuffix))
}

// SetAside moves a damaged store out of the way, to dir.damaged-<time> beside
// it, for whoever wants to look at it; a projection opened in dir afterwards
// starts empty and is folded again from the log. It returns where the store went.
func SetAside(dir string, opts Options) (string, error) {
	fs := fsOf(opts)
	to := fmt.Sprintf("%s.damaged-%s", dir, time.Now().UTC().Format("20060102T150405.000000000"))
	if err := fs.Rename(dir, to); err != nil {
		return "", fmt.Errorf("set the damaged projection %q aside: %w", dir, err)
	}
	return to, nil
}
