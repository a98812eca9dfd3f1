package main

import (
	"fmt"
	"io"
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/presence-engine/presence/projections"
)

// progressBar shows long work on a terminal: events done, rate and time left. It
// is nil (and its methods do nothing) when the output is not a terminal.
type progressBar struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newProgressBar returns a bar titled title on w, or nil unless show and w is a
// terminal.
func newProgressBar(w io.Writer, title string, show bool) *progressBar {
	if !show || !isTerminal(w) {
		return nil
	}
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	bar := p.AddBar(0,
		mpb.PrependDecorators(
			decor.Name(title+" ", decor.WCSyncSpaceR),
			decor.Any(progressCount, decor.WCSyncSpace),
		),
		mpb.AppendDecorators(
			decor.AverageSpeed(0, " %.0f/s", decor.WCSyncSpace),
			decor.Name(" ETA "),
			decor.AverageETA(decor.ET_STYLE_GO),
		),
		mpb.BarRemoveOnComplete(),
	)
	return &progressBar{p: p, bar: bar}
}

// progressCount is the bar's count: "3 / 1000 events", "1 / 1 event".
func progressCount(s decor.Statistics) string {
	return fmt.Sprintf("%d / %s", s.Current, count(s.Total, "event", "events"))
}

// update shows how far the work has come.
func (b *progressBar) update(pr projections.Progress) {
	if b == nil {
		return
	}
	b.bar.SetTotal(int64(max(pr.Total, pr.Done)), false)
	b.bar.SetCurrent(int64(pr.Done))
}

// done removes the bar, whether the work finished or not.
func (b *progressBar) done() {
	if b == nil {
		return
	}
	b.bar.Abort(true)
	b.p.Wait()
}
