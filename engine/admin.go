package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// progressEvery is how often a long admin operation reports, on
// events.ProgressPrefix: the client takes a
// silence much longer than this for a lost engine.
var progressEvery = 500 * time.Millisecond

// operations is what the admin endpoints ask of an engine.
type operations interface {
	Digest(ctx context.Context) (projections.Digest, error)
	Verify(ctx context.Context, progress func(projections.Progress)) (*audit.VerifyReport, error)
	Rebuild(ctx context.Context, progress func(projections.Progress)) (RebuildResult, error)
}

// RebuildResult says where a rebuild switched to the new projection.
type RebuildResult struct {
	Seq    uint64             `json:"seq"`    // the log sequence the new projection had reached when it took over
	Digest projections.Digest `json:"digest"` // of the new projection as it took over
}

// errBusy: another long admin operation runs.
func errBusy(what string) error {
	return unavailable(fmt.Errorf("a %s is in progress; retry when it is done", what))
}

// admin runs one long operation at a time.
type admin struct {
	mu      sync.Mutex
	running string
}

func (a *admin) start(what string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running != "" {
		return errBusy(a.running)
	}
	a.running = what
	return nil
}

func (a *admin) done() {
	a.mu.Lock()
	a.running = ""
	a.mu.Unlock()
}

// Digest returns the digest of the projection's state at its checkpoint. It
// waits for nothing: during a verify or a rebuild it is refused (503), as its
// walk of every contact would hold up the rebuild's switch.
func (e *Engine) Digest(context.Context) (projections.Digest, error) {
	if err := e.admin.start("digest"); err != nil {
		return projections.Digest{}, err
	}
	defer e.admin.done()
	d, err := e.projection.Digest()
	if errors.Is(err, projections.ErrClosed) {
		return d, unavailable(err)
	}
	return d, err
}

// Verify checks the projection and the feed against the log (audit.Verify), as
// of the projection's checkpoint, while the engine goes on working. The fresh
// fold it compares with is kept under the engine's directory until it is done.
func (e *Engine) Verify(ctx context.Context, progress func(projections.Progress)) (*audit.VerifyReport, error) {
	if err := e.admin.start("verify"); err != nil {
		return nil, err
	}
	defer e.admin.done()
	return audit.Verify(ctx, audit.VerifyConfig{
		JetStream: e.js, Projection: e.projection, Log: events.LogStream, Feed: events.FeedStream,
		TempDir: e.dir, Progress: progress, Logger: e.logger, LogRef: e.feed.cfg.Seal.open,
	})
}

// Rebuild folds the log afresh into a new projection while the service goes on
// answering from the old one, and switches to the new one once it has caught up.
func (e *Engine) Rebuild(ctx context.Context, progress func(projections.Progress)) (RebuildResult, error) {
	if err := e.admin.start("rebuild"); err != nil {
		return RebuildResult{}, err
	}
	defer e.admin.done()
	stream, err := e.js.Stream(ctx, events.LogStream)
	if err != nil {
		return RebuildResult{}, unavailable(fmt.Errorf("open log %q: %w", events.LogStream, err))
	}
	e.logger.Info("projection: rebuilding from the log", "dir", e.projection.Dir())
	snap, err := e.projection.Rebuild(ctx, stream, progress)
	if err != nil {
		return RebuildResult{}, err
	}
	e.operatorRebuilds.Add(1)
	defer snap.Close()
	d, err := snap.Digest()
	if err != nil {
		return RebuildResult{}, err
	}
	return RebuildResult{Seq: d.Seq, Digest: d}, nil
}

// adminWork builds the work of an admin request: op, with progress messages sent
// to the requester, on progress, while it runs.
func (s *service) adminWork(progress string, op func(ctx context.Context, progress func(projections.Progress)) (any, error)) work {
	return func(ctx context.Context) (any, error) {
		var (
			mu   sync.Mutex
			last projections.Progress
		)
		report := func(p projections.Progress) {
			mu.Lock()
			last = p
			mu.Unlock()
		}
		done := make(chan struct{})
		defer close(done)
		if progress != "" {
			go func() {
				tick := time.NewTicker(progressEvery)
				defer tick.Stop()
				for {
					select {
					case <-done:
						return
					case <-tick.C:
					}
					mu.Lock()
					p := last
					mu.Unlock()
					body, _ := json.Marshal(p)
					msg := &nats.Msg{Subject: progress, Data: body,
						Header: nats.Header{client.ProgressHeader: {"1"}}}
					if err := s.cfg.Conn.PublishMsg(msg); err != nil {
						s.logger.Debug("service: progress message failed", "err", err)
					}
				}
			}()
		}
		return op(ctx, report)
	}
}

// noBody refuses a body where a request takes none, as every other request
// refuses fields it does not know.
func noBody(req micro.Request) error {
	if n := len(req.Data()); n > 0 {
		return badRequest(fmt.Errorf("%s takes no body; got %d bytes", req.Subject(), n))
	}
	return nil
}

func (s *service) adminDigest(req micro.Request) (work, error) {
	if err := noBody(req); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (any, error) { return s.cfg.Admin.Digest(ctx) }, nil
}

func (s *service) adminVerify(req micro.Request) (work, error) {
	if err := noBody(req); err != nil {
		return nil, err
	}
	return s.adminWork(progressSubject(req), func(ctx context.Context, progress func(projections.Progress)) (any, error) {
		return s.cfg.Admin.Verify(ctx, progress)
	}), nil
}

func (s *service) adminRebuild(req micro.Request) (work, error) {
	if err := noBody(req); err != nil {
		return nil, err
	}
	return s.adminWork(progressSubject(req), func(ctx context.Context, progress func(projections.Progress)) (any, error) {
		return s.cfg.Admin.Rebuild(ctx, progress)
	}), nil
}

// progressSubject is where an admin request's progress goes: ProgressPrefix
// and the key the request names in client.ProgressHeader, or the token of
// its reply subject for a request that names none. Through an import from
// another account the reply subject is one the server made, not the
// requester's: the key is what they both know.
func progressSubject(req micro.Request) string {
	if key := req.Headers().Get(client.ProgressHeader); userName.MatchString(key) {
		return events.ProgressPrefix + key
	}
	if req.Reply() == "" {
		return ""
	}
	return events.ProgressPrefix + events.Token(req.Reply())
}

// AdminClient asks an engine for its admin operations over NATS, as an
// operator (presence digest, verify, rebuild). It is safe for concurrent use.
type AdminClient struct{ c *client.Client }

// NewAdminClient returns an AdminClient that sends its requests through c.
func NewAdminClient(c *client.Client) *AdminClient { return &AdminClient{c: c} }

// Digest asks the engine for the digest of its projection.
func (a *AdminClient) Digest(ctx context.Context) (projections.Digest, error) {
	var d projections.Digest
	err := a.c.Request(ctx, events.DigestSubject, nil, &d)
	return d, err
}

// Verify asks the engine to verify its projection and the feed against the log;
// progress (if not nil) is called as it goes. Differences are in the report; the
// error is for a verify that could not run.
func (a *AdminClient) Verify(ctx context.Context, progress func(projections.Progress)) (*audit.VerifyReport, error) {
	var r audit.VerifyReport
	if err := a.c.RequestWithProgress(ctx, events.VerifySubject, progressOf(progress), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Rebuild asks the engine to rebuild its projection from the log.
func (a *AdminClient) Rebuild(ctx context.Context, progress func(projections.Progress)) (RebuildResult, error) {
	var r RebuildResult
	err := a.c.RequestWithProgress(ctx, events.RebuildSubject, progressOf(progress), &r)
	return r, err
}

// progressOf reads the progress messages of a long admin operation for fn.
func progressOf(fn func(projections.Progress)) func([]byte) {
	if fn == nil {
		return nil
	}
	return func(data []byte) {
		var p projections.Progress
		if json.Unmarshal(data, &p) == nil {
			fn(p)
		}
	}
}
