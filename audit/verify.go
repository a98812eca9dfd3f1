package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/tail"
	"github.com/presence-engine/presence/projections"
)

// TempPattern names the directories Verify keeps its fresh folds in, as for
// os.MkdirTemp: one left behind by a crash may be removed.
const TempPattern = "presence-verify-*"

// VerifyConfig configures Verify.
type VerifyConfig struct {
	// JetStream reaches the log and the feed. Required.
	JetStream jetstream.JetStream
	// Projection is the live projection to check. Required.
	Projection *projections.Projection
	// Log and Feed name the streams. Zero means events.LogStream and events.FeedStream.
	Log, Feed string
	// TempDir is where the fresh fold is kept while it is compared, in a
	// directory of its own (TempPattern) removed after. Zero means os.TempDir().
	TempDir string
	// MaxDifferences is how many differences the report lists (all are
	// counted). Zero means 100.
	MaxDifferences int
	// FeedWait is how long the check of the feed waits for an entry it expects
	// before calling it missing: the feed may trail the log. Zero means 10s.
	FeedWait time.Duration
	// Progress, when set, is called as the fresh fold goes on.
	Progress func(projections.Progress)
	// Logger receives what the fresh fold notices. Zero means slog.Default().
	Logger *slog.Logger
	// LogRef, when set, opens a feed entry's log reference (its
	// events.LogRefHeader, for its data): the engine's, which holds the key.
	// Each entry's must then name the log event it came from, and the
	// entries past the last visible change checked must come from later
	// events. Nil checks neither.
	LogRef func(ref string, data []byte) (uint64, error)
}

// Difference is one way in which the engine's state differs from the log's:
// What begins with the part concerned ("projection", "chain" or "feed").
type Difference = projections.Difference

// VerifyReport is what Verify checked and what it found.
type VerifyReport struct {
	Seq         uint64             `json:"seq"`          // the log was checked up to this sequence: the projection's checkpoint
	Events      uint64             `json:"events"`       // events folded
	Malformed   uint64             `json:"malformed"`    // log records that are not events, stepped over
	Contacts    uint64             `json:"contacts"`     // contacts compared
	FeedEntries uint64             `json:"feed_entries"` // feed entries checked
	Changes     uint64             `json:"changes"`      // visible changes the log holds up to Seq: the feed was checked up to this position
	Digest      projections.Digest `json:"digest"`       // of the live projection at Seq
	Fresh       projections.Digest `json:"fresh_digest"` // of the fresh fold: equal to Digest when the states agree
	Count       uint64             `json:"count"`        // differences found
	Differences []Difference       `json:"differences"`  // the first MaxDifferences of them
}

// OK reports whether nothing differs.
func (r *VerifyReport) OK() bool { return r.Count == 0 }

func (r *VerifyReport) add(max int, d Difference) {
	r.Count++
	if len(r.Differences) < max {
		r.Differences = append(r.Differences, d)
	}
}

// withDefaults returns c with its zero fields at their defaults.
func (c VerifyConfig) withDefaults() VerifyConfig {
	if c.Log == "" {
		c.Log = events.LogStream
	}
	if c.Feed == "" {
		c.Feed = events.FeedStream
	}
	if c.MaxDifferences <= 0 {
		c.MaxDifferences = 100
	}
	if c.FeedWait <= 0 {
		c.FeedWait = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Verify checks the engine's state against the log, as of the live projection's
// checkpoint: it folds the log afresh (with the projection's own fold, into a
// store of its own) and compares every contact's state and the checkpoint with
// the live projection's; it checks every contact's chain (each event's previous
// is the status before it); and it checks the feed against the log: the entry
// at feed sequence F is the F-th visible change of the log, with the right
// content, for every visible change up to the checkpoint (positions count
// visible changes only, so nothing can be missing, repeated or extra without
// an entry being out of its place).
// The live projection goes on folding meanwhile: it is read from a snapshot.
//
// The error is for what stopped the check (the log unreachable, ctx done);
// differences are in the report.
func Verify(ctx context.Context, cfg VerifyConfig) (*VerifyReport, error) {
	if cfg.JetStream == nil || cfg.Projection == nil {
		return nil, errors.New("audit: verify needs a JetStream and a Projection")
	}
	cfg = cfg.withDefaults()
	live, err := cfg.Projection.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer live.Close()
	report := &VerifyReport{Seq: live.Checkpoint().Seq}

	logStream, err := cfg.JetStream.Stream(ctx, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("verify: open log %q: %w", cfg.Log, err)
	}
	feedStream, err := cfg.JetStream.Stream(ctx, cfg.Feed)
	if err != nil {
		return nil, fmt.Errorf("verify: open feed %q: %w", cfg.Feed, err)
	}

	dir, err := os.MkdirTemp(cfg.TempDir, TempPattern)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer os.RemoveAll(dir)

	// Differences come from the fold's goroutine and the feed's: one channel
	// collects them.
	diffs := make(chan Difference, 64)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for d := range diffs {
			report.add(cfg.MaxDifferences, d)
		}
	}()
	expected := make(chan expectedChange, 4096)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the fold's sends if Verify returns early
	g, gctx := errgroup.WithContext(ctx)
	// Each contact's status as of the events folded so far, for the chains: a
	// map rather than reads of the fresh fold, which would cost a store read
	// per event (about 80 bytes a contact).
	chain := make(map[string]events.Status)

	fresh, err := projections.Open(filepath.Join(dir, "projection"), projections.Options{
		DisableWAL: true,
		Logger:     cfg.Logger,
		EventListener: projections.EventListener{Folded: func(seq uint64, e events.Event) {
			before := chain[e.Contact] // Unknown for a contact not seen yet
			chain[e.Contact] = e.Status
			if e.Previous != before {
				diffs <- Difference{Contact: e.Contact, Seq: seq, What: "chain: previous",
					Expected: before.String(), Found: e.Previous.String()}
			}
			if c, ok := events.ChangeOf(e); ok {
				select {
				case expected <- expectedChange{logSeq: seq, Change: c}:
				case <-gctx.Done():
				}
			}
		}},
	})
	if err != nil {
		close(diffs)
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer fresh.Close()

	fc := &feedCheck{wait: cfg.FeedWait, upTo: report.Seq, logRef: cfg.LogRef, diff: func(d Difference) { diffs <- d }}
	g.Go(func() error {
		defer close(expected)
		var progress func(uint64)
		if cfg.Progress != nil {
			progress = func(applied uint64) { cfg.Progress(projections.Progress{Done: applied, Total: report.Seq}) }
		}
		if err := fresh.FoldLog(gctx, logStream, report.Seq, progress); err != nil {
			return fmt.Errorf("verify: fold the log: %w", err)
		}
		return nil
	})
	g.Go(func() error { return fc.run(gctx, feedStream, expected) })
	err = g.Wait()
	if err == nil {
		err = compare(report, live, fresh, diffs)
	}
	close(diffs)
	<-collected
	if err != nil {
		return nil, err
	}
	m := fresh.Metrics()
	report.Events, report.Malformed = m.Folded, m.Malformed
	report.FeedEntries, report.Changes = fc.entries, fc.expected
	return report, nil
}

// compare compares the live snapshot with the fresh fold and digests both.
func compare(report *VerifyReport, live *projections.Snapshot, fresh *projections.Projection, diffs chan<- Difference) error {
	snap, err := fresh.Snapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	report.Contacts, err = projections.Compare(snap, live, func(d Difference) bool {
		d.What = "projection: " + d.What
		diffs <- d
		return true
	})
	if err != nil {
		return fmt.Errorf("verify: compare the projection: %w", err)
	}
	if report.Digest, err = live.Digest(); err != nil {
		return fmt.Errorf("verify: digest the projection: %w", err)
	}
	if report.Fresh, err = snap.Digest(); err != nil {
		return fmt.Errorf("verify: digest the fresh fold: %w", err)
	}
	return nil
}

// expectedChange is a visible change of the log, in log order: the feed entry
// it calls for, and the log sequence of its event.
type expectedChange struct {
	logSeq uint64
	events.Change
}

// feedCheck walks the feed beside the visible changes the log holds, both in
// log order: the n-th visible change is the entry at feed sequence n.
type feedCheck struct {
	wait   time.Duration
	upTo   uint64 // the log sequence checked up to
	logRef func(ref string, data []byte) (uint64, error)
	diff   func(Difference)

	tail      *tail.Tail
	buf       []tail.Record // read from the tail, from pos on not yet handed out
	pos       int
	peeked    *tail.Record
	delivered uint64 // feed sequence of the last entry read
	ended     bool   // the feed stopped growing: wait no more
	entries   uint64 // feed entries checked
	expected  uint64 // visible changes expected: the feed position of the last
}

func (f *feedCheck) run(ctx context.Context, stream jetstream.Stream, expected <-chan expectedChange) error {
	var err error
	f.tail, err = tail.Start(ctx, stream, tail.Config{Buffer: 4096})
	if err != nil {
		return fmt.Errorf("verify: read the feed: %w", err)
	}
	defer f.tail.Stop()
	for want := range expected {
		f.expected++
		if err := f.find(ctx, want, f.expected); err != nil {
			return err
		}
	}
	if f.logRef == nil {
		return nil
	}
	// What the feed holds past the last visible change up to upTo must come
	// from events after it: else it is an entry too many (a copy, or of no
	// visible change).
	for {
		r, ok, err := f.next(ctx, false)
		if err != nil || !ok {
			return err
		}
		if r.Seq <= f.expected {
			continue
		}
		logSeq, err := f.logRef(r.Header.Get(events.LogRefHeader), r.Data)
		switch {
		case err != nil:
			f.diff(Difference{What: "feed: log reference", Expected: "one that opens",
				Found: fmt.Sprintf("at feed seq %d: %v", r.Seq, err)})
		case logSeq <= f.upTo:
			c, _ := events.DecodeChange(r.Data)
			f.diff(Difference{Contact: c.Contact, Seq: logSeq, What: "feed: entry for no visible change",
				Expected: fmt.Sprintf("none past feed seq %d, the last visible change up to log seq %d", f.expected, f.upTo),
				Found:    fmt.Sprintf("%s at feed seq %d, from log seq %d", describeChange(c), r.Seq, logSeq)})
		default:
			return nil // from past the checkpoint: the rest is too
		}
	}
}

// find reads the feed up to the entry at feed position pos, which must be
// want's.
func (f *feedCheck) find(ctx context.Context, want expectedChange, pos uint64) error {
	expected := fmt.Sprintf("%s at feed seq %d", describeChange(want.Change), pos)
	missing := func(found string) {
		f.diff(Difference{Contact: want.Contact, Seq: want.logSeq, What: "feed: missing entry", Expected: expected, Found: found})
	}
	for {
		r, ok, err := f.next(ctx, true)
		if err != nil {
			return err
		}
		if !ok {
			missing("none (the feed ends before it)")
			return nil
		}
		switch {
		case r.Seq < pos:
			continue // its own position was checked already
		case r.Seq > pos:
			f.peeked = &r // kept for the change at its position
			missing(fmt.Sprintf("none (the feed holds no entry there; the next is at feed seq %d)", r.Seq))
			return nil
		}
		f.entries++
		c, err := events.DecodeChange(r.Data)
		switch {
		case err != nil:
			f.diff(Difference{Contact: want.Contact, Seq: want.logSeq, What: "feed: malformed entry", Expected: expected,
				Found: fmt.Sprintf("at feed seq %d: %v", r.Seq, err)})
		case c.Contact != want.Contact || c.Name != want.Name || c.Previous != want.Previous || !c.At.Equal(want.At):
			f.diff(Difference{Contact: want.Contact, Seq: want.logSeq, What: "feed: entry content", Expected: expected,
				Found: describeChange(c)})
		}
		if f.logRef != nil {
			if logSeq, err := f.logRef(r.Header.Get(events.LogRefHeader), r.Data); err != nil || logSeq != want.logSeq {
				found := fmt.Sprintf("log seq %d", logSeq)
				if err != nil {
					found = err.Error()
				}
				f.diff(Difference{Contact: want.Contact, Seq: want.logSeq, What: "feed: log reference",
					Expected: fmt.Sprintf("log seq %d at feed seq %d", want.logSeq, pos), Found: found})
			}
		}
		return nil
	}
}

// next returns the next feed entry. With wait, one not there yet is waited
// for, up to f.wait (and never again once the feed stopped growing); without,
// only what the feed held is read.
func (f *feedCheck) next(ctx context.Context, wait bool) (tail.Record, bool, error) {
	if r := f.peeked; r != nil {
		f.peeked = nil
		return *r, true, nil
	}
	if f.pos < len(f.buf) {
		f.pos++
		return f.buf[f.pos-1], true, nil
	}
	caughtUp := f.tail.Last() <= f.delivered
	if caughtUp && (!wait || f.ended) {
		return tail.Record{}, false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, f.wait)
	defer cancel()
	var err error
	f.buf, err = f.tail.Next(wctx, f.buf, 1024)
	f.pos = 0
	switch {
	case ctx.Err() != nil:
		return tail.Record{}, false, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		f.ended = true
		return tail.Record{}, false, nil
	case err != nil:
		return tail.Record{}, false, fmt.Errorf("verify: read the feed: %w", err)
	}
	f.delivered = f.buf[len(f.buf)-1].Seq
	f.pos = 1
	return f.buf[0], true, nil
}

func describeChange(c events.Change) string {
	return fmt.Sprintf("%q %q previous %s at %s", c.Contact, c.Name, c.Previous, c.At.UTC().Format(time.RFC3339Nano))
}
