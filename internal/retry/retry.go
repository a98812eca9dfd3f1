// Package retry paces what is tried again: one pause that doubles after each
// failure up to a bound and starts afresh after a success, and a sleep that
// ends early when its context does.
package retry

import (
	"context"
	"time"
)

// Backoff is the pause between tries of one thing: First at the start and
// after each Reset, then twice the pause before, up to Max. Its zero value
// pauses 100ms, doubling up to 30s. It is not safe for concurrent use.
type Backoff struct {
	First time.Duration // the first pause; zero means 100ms
	Max   time.Duration // the longest pause; zero means 30s
	next  time.Duration
}

// Next returns the pause to make now, and doubles the one after.
func (b *Backoff) Next() time.Duration {
	first, most := b.First, b.Max
	if first <= 0 {
		first = 100 * time.Millisecond
	}
	if most <= 0 {
		most = 30 * time.Second
	}
	if b.next <= 0 {
		b.next = first
	}
	d := min(b.next, most)
	b.next = min(2*d, most)
	return d
}

// Wait sleeps the pause Next returns, and reports whether it passed before ctx
// ended.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }

// Reset makes the next pause First again: what was tried went through.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits for d or ctx, and reports whether d passed first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
