package engine

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
)

// DefaultReadyLag is how many events of the log the projection may be behind
// and the engine still be ready, unless configured: a busy log is always some
// events ahead of the fold, a stalled fold soon far more.
const DefaultReadyLag = 10_000

// NotReady says why the engine is not ready to serve, for a readiness probe
// (serve's /readyz), one reason a line; none when it is ready. It is ready
// when:
//
//   - its service answers, and both its connections to NATS are up;
//   - the log is reachable (its stream answers within a second);
//   - the projection has caught up with the log, and is at most maxLag events
//     behind it;
//   - no consumer on the log is paused (only the engine's own readers and
//     auditors' replays read it: a pause stalls the fold without a word);
//   - each partition has an owner, and each one this engine holds it decides
//     for (its term has caught up with the log).
//
// Each look asks the server twice: the log's info, and its consumers' (one
// the server cannot list in time is not a reason: readiness is this
// engine's).
func (e *Engine) NotReady(ctx context.Context, maxLag uint64) []string {
	var why []string
	select {
	case <-e.service.Started():
	default:
		why = append(why, "the service is not answering yet")
	}
	if !e.Connected() {
		why = append(why, "not connected to NATS")
		return why // nothing else can be looked at
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	log, err := e.js.Stream(ctx, events.LogStream)
	if err != nil {
		return append(why, fmt.Sprintf("the log (stream %s) is not reachable: %v", events.LogStream, err))
	}
	last, applied := log.CachedInfo().State.LastSeq, e.projection.Applied()
	switch {
	case !e.follower.IsReady():
		why = append(why, fmt.Sprintf("the projection is catching up with the log: at seq %d of %d", applied, last))
	case last > applied && last-applied > maxLag:
		why = append(why, fmt.Sprintf("the projection is %d events behind the log (at seq %d of %d; ready within %d)", last-applied, applied, last, maxLag))
	}
	why = append(why, pausedConsumers(ctx, log)...)
	for p, w := range e.writers {
		switch holder := e.owners[p].Holder(); {
		case holder == "":
			why = append(why, fmt.Sprintf("partition %d has no owner: its sets fail until an engine takes it", p))
		case e.owners[p].Held() && !w.Owning():
			why = append(why, fmt.Sprintf("this engine holds partition %d but is still reading the log before it decides for it", p))
		}
	}
	return why
}

// pausedConsumers names the consumers paused on the log.
func pausedConsumers(ctx context.Context, log jetstream.Stream) []string {
	var why []string
	list := log.ListConsumers(ctx)
	for info := range list.Info() {
		if info.Paused {
			until := "further notice"
			if info.Config.PauseUntil != nil {
				until = info.Config.PauseUntil.UTC().Format(time.RFC3339)
			}
			why = append(why, fmt.Sprintf("consumer %s on the log is paused until %s (through the JetStream API: the fold or a replay stalls)",
				info.Name, until))
		}
	}
	_ = list.Err() // not listed in time: nothing known paused
	return why
}

// Readiness is NotReady, logging each change of what it says once: a warning
// when the engine is no longer ready or for another reason, a line when it is
// ready again. Serve's /readyz calls it.
func (e *Engine) Readiness(ctx context.Context, maxLag uint64) []string {
	why := e.NotReady(ctx, maxLag)
	now := strings.Join(why, "; ")
	// The reasons' figures move from one look to the next (how far the
	// projection is): only another kind of reason is a change.
	kind := digits.ReplaceAllString(now, "#")
	e.readyMu.Lock()
	defer e.readyMu.Unlock()
	if kind != e.readyLast {
		if now == "" {
			e.logger.Info("engine ready")
		} else {
			e.logger.Warn("engine not ready", "why", now)
		}
		e.readyLast = kind
	}
	return why
}

var digits = regexp.MustCompile(`[0-9]+`)
