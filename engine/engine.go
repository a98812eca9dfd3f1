package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/lease"
	"github.com/presence-engine/presence/internal/retry"
	"github.com/presence-engine/presence/projections"
)

// Options configure an Engine. The zero value runs everything on one machine:
// an embedded nats-server on 127.0.0.1:4222 with its data under the engine's
// directory.
type Options struct {
	// NATSURL, when set, uses an existing NATS server or cluster instead of the
	// embedded one.
	NATSURL string
	// NATSOptions are added to the engine's connection options (credentials, TLS).
	NATSOptions []nats.Option
	// Listen is the embedded server's client address. Zero means DefaultListen;
	// port 0 picks a free port.
	Listen string
	// Monitor, when set, turns on the embedded server's monitoring endpoints
	// (/varz, /jsz, ...) on this HOST:PORT. Zero means none.
	Monitor string
	// Sync is the embedded server's durability. Zero means DefaultSync.
	Sync Sync
	// Streams shape the streams when the engine creates them.
	Streams StreamOptions
	// Logger receives everything the engine reports. Zero means slog.Default().
	Logger *slog.Logger
	// ReadTimeout bounds a read's wait for its min_seq. Zero means 2s.
	ReadTimeout time.Duration
	// MaxConcurrent bounds the sets, and apart from them the reads, that the
	// service handles at once. Zero means 4096.
	MaxConcurrent int
	// Projection configures the projection's store. A zero CacheSize means
	// DefaultProjectionCache.
	Projection projections.Options
	// Registerer receives the engine's Prometheus collectors. Zero means none.
	Registerer prometheus.Registerer
	// Auth, for the embedded server, makes it ask every client for a user and
	// gives each user the permissions of its role (presence serve --auth FILE).
	// The engine connects as EngineUser with a password drawn at each start.
	// Zero means no authentication: keep the server on loopback then.
	Auth *AuthConfig
	// TLS, for the embedded server, makes client connections use TLS.
	TLS *tls.Config
	// ContactRate and ContactBurst bound each contact's sets (WriterConfig).
	// Zero means the defaults; a negative rate means no bound.
	ContactRate  float64
	ContactBurst int
	// FlapWindow coalesces the visible changes endpoints make within it
	// (WriterConfig). Zero means DefaultFlapWindow; negative, none.
	FlapWindow time.Duration
	// Now is the clock of event times and of endpoints' leases. Zero means
	// time.Now; tests move one of their own.
	Now func() time.Time
}

// withDefaults returns o with its zero fields at their defaults.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Projection.Logger == nil {
		o.Projection.Logger = o.Logger
	}
	if o.Projection.CacheSize == 0 {
		o.Projection.CacheSize = DefaultProjectionCache
	}
	return o
}

// Engine is the whole presence engine of one process: the (embedded or external)
// NATS server, the writer, the projection and its follower, the feed and the
// service. Open starts the server and opens the stores; Run runs the parts.
// Its methods are safe for concurrent use.
type Engine struct {
	dir    string
	opts   Options
	logger *slog.Logger

	readyMu   sync.Mutex
	readyLast string // what Readiness said last

	server           *server.Server // nil with an external server
	nc               *nats.Conn
	writerNC         *nats.Conn // the owner's appends'
	js               jetstream.JetStream
	projection       *projections.Projection
	follower         *projections.Follower
	feed             *feed
	writers          []*Writer      // one a partition of the log, in partition order
	owners           []*lease.Lease // each writer's lease on its partition
	share            *share         // how many partitions this engine may own
	reader           *LocalReader
	service          *service
	admin            admin
	damaged          atomic.Uint64             // times the projection's store was found damaged
	operatorRebuilds atomic.Uint64             // rebuilds an operator asked for that switched
	repairs          atomic.Pointer[repairCtx] // where a repair runs, once Run has started
	repairing        atomic.Bool

	lock      io.Closer     // the data directory's, held until Close
	ncClosed  chan struct{} // closed when the connection is
	closeOnce sync.Once
	closeErr  error
}

// lockFile, in an engine's data directory, is locked while an engine uses the
// directory.
const lockFile = "LOCK"

// Open prepares an engine whose data lives in dir: the projection in
// dir/projection and, with the embedded server, the log in dir/jetstream. It
// starts the embedded server (or connects to opts.NATSURL), creates the streams
// if they are missing and opens the projection. Run starts the work. The
// engine holds dir until Close: another Open of it fails meanwhile.
func Open(dir string, opts Options) (*Engine, error) {
	if dir == "" {
		return nil, errors.New("engine: a data directory is required")
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %q: %w", dir, err)
	}
	// Two engines on one directory would run two servers on one store, and
	// the second would fail only at the projection, with the first's log
	// already shared: the directory is taken before anything else.
	// One name whichever way dir was given, through a symbolic link
	// included: the lock is a POSIX record lock, which never conflicts within
	// a process, so two engines of one process are told apart by that name.
	lockDir := dir
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		lockDir = real
	}
	if abs, err := filepath.Abs(lockDir); err == nil {
		lockDir = abs
	}
	lockFile := filepath.Join(lockDir, lockFile)
	lock, err := vfs.Default.Lock(lockFile)
	if err != nil {
		return nil, lockError(dir, lockFile, err)
	}
	e := &Engine{dir: dir, opts: opts, logger: opts.Logger, lock: lock, ncClosed: make(chan struct{})}
	if err := e.open(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// lockError says why the data directory could not be taken: another engine
// holds it, or the lock file itself could not be made (a directory in its
// place, no permission), which no other engine would fix.
func lockError(dir, lockFile string, err error) error {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return fmt.Errorf("data directory %q: cannot make its lock file: %w", dir, err)
	}
	return fmt.Errorf("data directory %q is in use by another engine (%s is locked: %v); stop it, or give this one another --data", dir, lockFile, err)
}

// redactURLs returns a list of NATS URLs with their passwords hidden, to be
// said.
func redactURLs(list string) string {
	urls := strings.Split(list, ",")
	for i, u := range urls {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			if _, has := p.User.Password(); has {
				p.User = url.UserPassword(p.User.Username(), "xxxxx")
				urls[i] = p.String()
			}
		}
	}
	return strings.Join(urls, ",")
}

func (e *Engine) open() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := e.opts.NATSURL
	connOpts := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: a close of our own
				e.logger.Warn("disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			e.logger.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		// What the server refuses the engine (a permission its user lacks
		// on a server of one's own) comes here, not as any call's error.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			e.logger.Warn("NATS reports an error", "err", err, "subscription", subject)
		}),
	}, e.opts.NATSOptions...)
	if url == "" {
		cfg := serverConfig{
			Listen:   e.opts.Listen,
			StoreDir: e.dir, // the server keeps JetStream in StoreDir/jetstream
			Sync:     e.opts.Sync,
			Logger:   e.logger,
			Auth:     e.opts.Auth,
			TLS:      e.opts.TLS,
			Monitor:  e.opts.Monitor,
		}
		if cfg.Auth != nil {
			secret, err := newSecret()
			if err != nil {
				return err
			}
			cfg.EnginePassword = secret
			connOpts = append(connOpts, nats.UserInfo(EngineUser, secret))
		}
		s, err := startServer(cfg)
		if err != nil {
			return err
		}
		e.server = s
		e.logger.Info("embedded nats-server listening", "url", s.ClientURL(), "store", filepath.Join(e.dir, "jetstream"),
			"sync", e.opts.Sync.String(), "auth", e.opts.Auth != nil, "tls", e.opts.TLS != nil)
		if addr := s.MonitorAddr(); addr != nil {
			e.logger.Info("embedded nats-server monitoring", "url", "http://"+addr.String()+"/varz")
		}
		// The engine's own connection is in-process: no TLS to go through.
		url = strings.Replace(s.ClientURL(), "tls://", "nats://", 1)
		connOpts = append(connOpts, nats.InProcessServer(s))
	}
	nc, err := nats.Connect(url, append(connOpts, nats.Name("presence-engine"),
		nats.ClosedHandler(func(*nats.Conn) { close(e.ncClosed) }))...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", redactURLs(url), err)
	}
	e.nc = nc
	// The owner's appends go on a connection of their own that keeps nothing
	// while it is down: an append made then fails at once, rather than
	// reaching the log after the connection is back, when another engine may
	// own it (docs/engines.md).
	if e.writerNC, err = nats.Connect(url, append(connOpts, nats.Name("presence-engine-writer"), nats.ReconnectBufSize(-1))...); err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", redactURLs(url), err)
	}
	if e.js, err = jetstream.New(nc); err != nil {
		return err
	}
	if err := EnsureStreams(ctx, e.js, e.opts.Streams, e.logger); err != nil {
		return err
	}
	partitions, err := LogPartitions(ctx, e.js)
	if err != nil {
		return err
	}
	popts := e.opts.Projection
	// A read or the fold that finds the store damaged fails (never a wrong
	// answer) and has it rebuilt from the log while the rest goes on.
	popts.EventListener.Corrupt = e.corrupt
	// Fresh folds of a verify that a crash left behind.
	if leftovers, _ := filepath.Glob(filepath.Join(e.dir, audit.TempPattern)); len(leftovers) > 0 {
		for _, d := range leftovers {
			os.RemoveAll(d)
		}
	}
	pdir := filepath.Join(e.dir, "projection")
	e.projection, err = projections.Open(pdir, popts)
	if errors.Is(err, projections.ErrCorrupt) {
		// Never serve from a damaged store: set it aside and fold the log
		// again (reads answer 503 until the new one has caught up).
		e.damaged.Add(1)
		to, aerr := projections.SetAside(pdir, popts)
		if aerr != nil {
			return errors.Join(err, aerr)
		}
		e.logger.Error("projection: the store is damaged; it was set aside and the projection is rebuilt from the log",
			"err", err, "set_aside", to)
		e.projection, err = projections.Open(pdir, popts)
	}
	if err != nil {
		return err
	}
	if e.follower, err = projections.NewFollower(projections.FollowerConfig{
		Projection: e.projection, JetStream: e.js, Stream: events.LogStream, Logger: e.logger,
	}); err != nil {
		return err
	}
	// EnsureStreams made it, or saw it made: a server may not know yet.
	requests, err := openBucket(ctx, e.js, events.RequestsBucket, jetstream.ErrBucketNotFound)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", events.RequestsBucket, err)
	}
	if err := e.openWriters(ctx, requests, partitions); err != nil {
		return err
	}
	e.reader = &LocalReader{Projection: e.projection, Ready: e.follower.IsReady, Timeout: e.opts.ReadTimeout, Partitions: partitions}
	seal, err := e.openSeal(ctx)
	if err != nil {
		return err
	}
	if e.feed, err = newFeed(feedConfig{Conn: nc, Logger: e.logger, Seal: seal, Streams: e.opts.Streams, Current: e.reader,
		Deriver: e.writers[0]}); err != nil {
		return err
	}
	if err := startConsumerGuard(nc, e.logger); err != nil {
		return err
	}
	e.service, err = newService(serviceConfig{Conn: nc, Writers: e.writers, Reader: e.reader, Logger: e.logger,
		MaxConcurrent: e.opts.MaxConcurrent, Stats: func() any { return e.Metrics() }, Admin: e})
	if err != nil {
		return err
	}
	if e.opts.Registerer != nil {
		if err := e.opts.Registerer.Register(newPromCollector(e.Metrics)); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// openWriters prepares, for each partition of the log, the lease on its
// ownership and the writer that appends to it while it holds it. The engine
// competes for the leases only while its projection has caught up with the
// log. The writers' appends go out without waiting for each other, on the
// writers' connection, through a JetStream context that lets as many wait for
// their acknowledgement as the writers send, and gives up on one after
// appendTimeout.
func (e *Engine) openWriters(ctx context.Context, requests jetstream.KeyValue, partitions int) error {
	owners, err := openBucket(ctx, e.js, events.OwnersBucket, jetstream.ErrBucketNotFound)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", events.OwnersBucket, err)
	}
	id, err := engineID(e.dir)
	if err != nil {
		return err
	}
	js, err := jetstream.New(e.writerNC, jetstream.WithPublishAsyncMaxPending(2*partitions*DefaultInFlight), jetstream.WithPublishAsyncTimeout(appendTimeout))
	if err != nil {
		return err
	}
	e.share = &share{kv: owners, id: id, ready: e.follower.IsReady, logger: e.logger}
	for p := range partitions {
		var w *Writer
		owner, err := lease.New(ctx, lease.Config{KV: owners, Key: events.OwnerKey(p), Holder: id, Logger: e.logger.With("partition", p),
			Eligible: func() bool { return e.share.eligible(p) }, Settle: func() { w.settle() }})
		if err != nil {
			return err
		}
		w, err = newWriter(writerConfig{JetStream: js, Projection: e.projection, Lease: owner, Logger: e.logger,
			Partition: p, Partitions: partitions, Requests: requests, ContactRate: e.opts.ContactRate, ContactBurst: e.opts.ContactBurst,
			FlapWindow: e.opts.FlapWindow, Now: e.opts.Now})
		if err != nil {
			return err
		}
		e.owners, e.writers = append(e.owners, owner), append(e.writers, w)
	}
	e.share.leases = e.owners
	status, err := owners.Status(ctx)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", events.OwnersBucket, err)
	}
	e.share.refresh = status.TTL() / 3
	return nil
}

// openSeal returns the sealer of the feed's log references, under the key the
// engines share in events.EngineBucket.
func (e *Engine) openSeal(ctx context.Context) (*sealer, error) {
	kv, err := openBucket(ctx, e.js, events.EngineBucket, jetstream.ErrBucketNotFound)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", events.EngineBucket, err)
	}
	key, err := sealKey(ctx, kv, e.logger)
	if err != nil {
		return nil, err
	}
	return newSealer(key)
}

// appendTimeout is how long the writer waits for an append's acknowledgement
// before it reads the log to learn whether it was stored.
const appendTimeout = 5 * time.Second

// idFile, in an engine's data directory, names the engine as a holder of the
// log's ownership: drawn at the first start and kept, so that an engine
// restarted on its directory takes back at once an ownership it had not let go
// of (it crashed) instead of waiting out the TTL.
const idFile = "ENGINE_ID"

// engineID returns the engine's name from dir, drawn at the first start.
func engineID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("data directory %q: read the engine's ID: %w", dir, err)
	}
	host, _ := os.Hostname()
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	id := fmt.Sprintf("%s-%s", host, secret[:12])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("data directory %q: keep the engine's ID: %w", dir, err)
	}
	return id, nil
}

// Run runs the follower, the feed and the service until ctx is done, then shuts
// down in order: the service stops taking requests and finishes those in hand,
// then the follower and the feed stop (each after its current batch). It returns
// nil after a clean shutdown, or the first error of a part, which stops the rest.
// Close releases the stores and the server afterwards.
func (e *Engine) Run(ctx context.Context) error {
	parts, stopParts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopParts()
	g, gctx := errgroup.WithContext(parts)
	g.Go(func() error { return e.follower.Run(gctx) })
	g.Go(func() error { return e.feed.Run(gctx) })
	// The engine's key goes first as it stops: the others count it no more
	// by the time its partitions are let go of, and take them at once.
	g.Go(func() error {
		select {
		case <-e.follower.Ready():
		case <-gctx.Done():
			return nil
		}
		e.share.run(gctx)
		return nil
	})
	for p, w := range e.writers {
		// A lease outlives its writer: it is let go of only once the
		// writer has settled the sets in hand.
		leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(gctx))
		g.Go(func() error {
			// Competing for the log makes sense once the projection has
			// caught up: at once then, not at the lease's next look.
			select {
			case <-e.follower.Ready():
			case <-leaseCtx.Done():
				return nil
			}
			return e.owners[p].Run(leaseCtx)
		})
		g.Go(func() error {
			defer stopLease()
			return w.Run(gctx)
		})
	}
	e.repairs.Store(&repairCtx{ctx: gctx, wg: g})
	g.Go(func() error { e.scan(gctx); return nil })

	svcCtx, stopService := context.WithCancel(ctx)
	defer stopService()
	context.AfterFunc(gctx, stopService) // a failing part stops the service too
	svcErr := e.service.Run(svcCtx)
	stopParts()
	if err := g.Wait(); err != nil {
		return err
	}
	return svcErr
}

// Started returns a channel closed once the service answers requests; reads
// may still be refused (503) until the projection has caught up (WaitReady).
func (e *Engine) Started() <-chan struct{} { return e.service.Started() }

// WaitReady blocks until the service answers, the projection has caught up
// with the log and each partition of the log has an owner (this engine or
// another), or ctx is done.
func (e *Engine) WaitReady(ctx context.Context) error {
	for _, ch := range []<-chan struct{}{e.service.Started(), e.follower.Ready()} {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for p, w := range e.writers {
		for !w.Owning() && (e.owners[p].Holder() == "" || e.owners[p].Held()) {
			if !retry.Sleep(ctx, 10*time.Millisecond) {
				return ctx.Err()
			}
		}
	}
	return nil
}

// ClientURL is the URL clients connect to.
func (e *Engine) ClientURL() string {
	if e.server != nil {
		return e.server.ClientURL()
	}
	return e.nc.ConnectedUrlRedacted()
}

// Conn is the engine's own NATS connection.
func (e *Engine) Conn() *nats.Conn { return e.nc }

// Connected reports whether both the engine's connections are up: its own,
// and the one its appends go on.
func (e *Engine) Connected() bool { return e.nc.IsConnected() && e.writerNC.IsConnected() }

// Projection is the engine's projection.
func (e *Engine) Projection() *projections.Projection { return e.projection }

// Reader reads the projection in-process, for subscribers in the same process.
func (e *Engine) Reader() *LocalReader { return e.reader }

// Writer is the engine's writer of partition 0: with one partition, of the
// whole log.
func (e *Engine) Writer() *Writer { return e.writers[0] }

// Writers are the engine's writers, one a partition of the log, in
// partition order.
func (e *Engine) Writers() []*Writer { return e.writers }

// Follower is the engine's projection follower.
func (e *Engine) Follower() *projections.Follower { return e.follower }

// Metrics is a snapshot of the engine's counters. The service reports it as the
// data of its endpoints' stats (nats micro stats presence), and Options.Registerer
// exports it to Prometheus.
type Metrics struct {
	Ready    bool   `json:"ready"`    // connected, the service answers and the projection has caught up
	FoldLag  uint64 `json:"fold_lag"` // log events the projection has not applied yet
	Rebuilds uint64 `json:"rebuilds"` // times the projection found the log did not match it and was folded again
	// OperatorRebuilds counts the rebuilds an operator asked for (Rebuild,
	// presence rebuild) that switched to the new projection.
	OperatorRebuilds uint64              `json:"operator_rebuilds"`
	Damaged          uint64              `json:"damaged"` // times the projection's store was found damaged (and rebuilt)
	Projection       projections.Metrics `json:"projection"`
	Feed             FeedMetrics         `json:"feed"`
	Writer           WriterMetrics       `json:"writer"`
}

// Metrics returns a snapshot of the engine's counters.
func (e *Engine) Metrics() Metrics {
	ready := false
	select {
	case <-e.service.Started():
		ready = e.follower.IsReady() && e.Connected()
	default:
	}
	m := Metrics{Ready: ready, FoldLag: e.follower.Lag(), Rebuilds: e.follower.Rebuilds(), OperatorRebuilds: e.operatorRebuilds.Load(), Damaged: e.damaged.Load(),
		Projection: e.projection.Metrics(), Feed: e.feed.Metrics(), Writer: writersMetrics(e.writers)}
	m.Writer.Engines = int(e.share.engines.Load())
	return m
}

// Close closes the connection, the projection and the embedded server, in that
// order. Call it after Run has returned. It is safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		if e.writerNC != nil {
			e.writerNC.Close()
		}
		if e.nc != nil {
			if err := e.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				errs = append(errs, err)
			}
			select {
			case <-e.ncClosed:
			case <-time.After(5 * time.Second):
				e.nc.Close()
			}
		}
		if e.projection != nil {
			errs = append(errs, e.projection.Close())
		}
		if e.server != nil {
			e.server.Shutdown()
			e.server.WaitForShutdown()
		}
		if e.lock != nil {
			errs = append(errs, e.lock.Close())
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}
