package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

func newServe() *cobra.Command {
	var (
		data, listen, natsURL, syncText, logLevel, logFormat, metrics string
		authFile, tlsCert, tlsKey, memoryLimit, projectionCache       string
		creds, nkey, user, password, tlsCA                            string
		replicas, contactBurst, stateCache, partitions                int
		readyLag                                                      uint64
		monitor                                                       string
		contactRate                                                   float64
		ownerTTL, flapWindow                                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the engine: embedded NATS server, writer, projection, feed and service",
		Long: `Run the presence engine. By default everything runs in this process: an
embedded nats-server with JetStream listening on 127.0.0.1:4222 (data under
--data), the writer, the projection, the feed and the service. With --nats the
engine uses an existing NATS server or cluster instead.

On a server of your own, the engine's connection logs in with --creds, --nkey
or --user and --password, and uses TLS with --tls-ca (and --tls-cert and
--tls-key for a client certificate); presence auth NAME engine prints the
permissions it needs there.

Every flag can also come from the environment, as containers are configured:
--flag-name from PRESENCE_FLAG_NAME (--nats from PRESENCE_NATS, --password from
PRESENCE_PASSWORD). A flag given on the command line wins.

SIGINT or SIGTERM shut it down cleanly: it stops taking requests, finishes those
in hand, commits the projection and exits 0.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagsFromEnv(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				return usageError{err}
			}
			opts := engine.Options{NATSURL: natsURL, Listen: listen, Logger: logger,
				Streams: engine.StreamOptions{Replicas: replicas, OwnerTTL: ownerTTL, Partitions: partitions}}
			if syncText != "" {
				if natsURL != "" {
					return usageError{fmt.Errorf("--sync sets the embedded server's durability; with --nats it is the server's own configuration")}
				}
				if opts.Sync, err = engine.ParseSync(syncText); err != nil {
					return usageError{err}
				}
			}
			if err := checkPartitions(partitions); err != nil {
				return err
			}
			if replicas < 0 {
				return usageError{fmt.Errorf("--replicas %d: want 1, 3 or 5 (0 chooses)", replicas)}
			}
			if ownerTTL < time.Second {
				return usageError{fmt.Errorf("--owner-ttl %s: want 1s or more (the owners' bucket counts whole seconds)", ownerTTL)}
			}
			if natsURL != "" && authFile != "" {
				return usageError{fmt.Errorf("--auth configures the embedded server; with --nats users are the server's own configuration (presence auth NAME ROLE prints the permissions of a role, engine included)")}
			}
			if natsURL == "" && (creds != "" || nkey != "" || user != "" || password != "" || tlsCA != "") {
				return usageError{fmt.Errorf("--creds, --nkey, --user, --password and --tls-ca are the engine's login to a server of your own: they go with --nats")}
			}
			if natsURL != "" {
				if opts.NATSOptions, err = natsLogin(creds, nkey, user, password, tlsCA, tlsCert, tlsKey); err != nil {
					return usageError{err}
				}
			}
			if contactRate < 0 || contactBurst < 1 {
				return usageError{fmt.Errorf("--contact-rate %g, --contact-burst %d: want a rate of 0 or more (0: no bound) and a burst of 1 or more", contactRate, contactBurst)}
			}
			opts.ContactRate, opts.ContactBurst = contactRate, contactBurst
			if contactRate == 0 {
				opts.ContactRate = -1
			}
			if flapWindow < 0 {
				return usageError{fmt.Errorf("--flap-window %s: want 0 (none) or more", flapWindow)}
			}
			opts.FlapWindow = flapWindow
			if flapWindow == 0 {
				opts.FlapWindow = -1
			}
			if authFile != "" {
				if opts.Auth, err = engine.LoadAuth(authFile); err != nil {
					return usageError{err}
				}
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usageError{fmt.Errorf("--tls-cert and --tls-key go together (got cert %q, key %q)", tlsCert, tlsKey)}
			}
			if tlsCert != "" && natsURL == "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return usageError{fmt.Errorf("--tls-cert %s, --tls-key %s: %w", tlsCert, tlsKey, err)}
				}
				opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			if memoryLimit != "" {
				n, err := parseSize(memoryLimit)
				if err != nil {
					return usageError{fmt.Errorf("--memory-limit: %w", err)}
				}
				debug.SetMemoryLimit(n)
			}
			if opts.Projection.CacheSize, err = parseSize(projectionCache); err != nil {
				return usageError{fmt.Errorf("--projection-cache: %w", err)}
			}
			opts.Projection.StateCache = stateCache
			if monitor != "" && natsURL != "" {
				return usageError{fmt.Errorf("--monitor turns on the embedded server's monitoring; with --nats it is the server's own configuration")}
			}
			opts.Monitor = monitor
			var (
				metricsServer *http.Server
				running       atomic.Pointer[engine.Engine] // once opened, for /readyz
			)
			if metrics != "" {
				reg := prometheus.NewRegistry()
				reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
				opts.Registerer = reg
				ln, err := net.Listen("tcp", metrics)
				if err != nil {
					return fmt.Errorf("--metrics %s: %w", metrics, err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
				mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
					why := []string{"the engine is starting"}
					if e := running.Load(); e != nil {
						why = e.Readiness(r.Context(), readyLag)
					}
					if len(why) > 0 {
						w.WriteHeader(http.StatusServiceUnavailable)
						fmt.Fprintln(w, "not ready:")
						for _, line := range why {
							fmt.Fprintln(w, "- "+line)
						}
						return
					}
					fmt.Fprintln(w, "ready")
				})
				metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go func() { _ = metricsServer.Serve(ln) }()
				defer metricsServer.Close()
				logger.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics",
					"health", "http://"+ln.Addr().String()+"/healthz", "ready", "http://"+ln.Addr().String()+"/readyz")
			}
			e, err := engine.Open(data, opts)
			if err != nil {
				return err
			}
			running.Store(e)
			done := make(chan error, 1)
			go func() { done <- e.Run(cmd.Context()) }()
			var runErr error
			started, ready := e.Started(), e.Follower().Ready()
			serving := func() {
				logger.Info("presence engine serving", "url", e.ClientURL(), "data", data, "version", engine.Version,
					"memory_limit", memoryLimitText())
				started = nil
			}
			for {
				select {
				case <-started:
					serving()
					continue
				case <-ready:
					select {
					case <-started: // both at once: say so in their order
						serving()
					default:
					}
					logger.Info("projection caught up with the log", "seq", e.Projection().Applied())
					ready = nil
					continue
				case runErr = <-done:
				}
				break
			}
			closeErr := e.Close()
			if runErr != nil {
				return runErr
			}
			if closeErr != nil {
				return closeErr
			}
			logger.Info("presence engine stopped cleanly")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "presence-data", "data directory: the projection, and the embedded server's JetStream store; one engine at a time")
	f.StringVar(&listen, "listen", engine.DefaultListen, "embedded server's client address, HOST:PORT (port 0 picks one)")
	f.StringVar(&natsURL, "nats", "", "use this NATS server or cluster instead of the embedded one")
	f.StringVar(&syncText, "sync", "", `embedded server's fsync: "always", or an interval such as 100ms (default 100ms)`)
	f.IntVar(&replicas, "replicas", 0, "replicas of the streams when they are created (default: 3 on a cluster with room, else 1)")
	f.IntVar(&partitions, "partitions", 0, "partitions of the log when it is created, each with an owner of its own and, on a cluster, a stream leader of its own (default: 1; fixed once the log exists)")
	f.DurationVar(&ownerTTL, "owner-ttl", engine.DefaultOwnerTTL, "how long the log stays with an engine that died owning it before another takes it over (set when the owners' bucket is created)")
	f.Float64Var(&contactRate, "contact-rate", engine.DefaultContactRate, "sets a second one contact may make on average; more are refused with a 429 (0: no bound)")
	f.IntVar(&contactBurst, "contact-burst", engine.DefaultContactBurst, "sets one contact may make at once, within --contact-rate")
	f.DurationVar(&flapWindow, "flap-window", engine.DefaultFlapWindow, "within this after a contact's last change shown, changes its endpoints make are held back and what they leave shown at its end (0: none)")
	f.StringVar(&authFile, "auth", "", "JSON file of users and their roles (user, subscriber, auditor, operator): every client must then log in")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate for TLS on the embedded server's client connections (with --tls-key); with --nats, the engine's client certificate")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&tlsCA, "tls-ca", "", "with --nats: PEM certificates of the authorities to trust for the server's certificate (TLS)")
	f.StringVar(&creds, "creds", "", "with --nats: the engine's NATS credentials file (JWT and NKey seed)")
	f.StringVar(&nkey, "nkey", "", "with --nats: a file holding the engine's NKey seed")
	f.StringVar(&user, "user", "", "with --nats: the engine's user name (with --password)")
	f.StringVar(&password, "password", "", "with --nats: the password of --user (better from the environment than the command line)")
	f.StringVar(&metrics, "metrics", "", "serve Prometheus metrics (/metrics), liveness (/healthz) and readiness (/readyz, with the reasons when not ready) on this HOST:PORT, for example 127.0.0.1:9090")
	f.Uint64Var(&readyLag, "ready-lag", engine.DefaultReadyLag, "/readyz says ready while the projection is at most this many events behind the log")
	f.StringVar(&monitor, "monitor", "", "turn on the embedded server's monitoring endpoints (/varz, /jsz, ...) on this HOST:PORT")
	f.StringVar(&memoryLimit, "memory-limit", "", "soft limit of this process's memory, such as 1GiB: past it the embedded server's read caches are given back (default: $GOMEMLIMIT, else none)")
	f.StringVar(&projectionCache, "projection-cache", "64MiB", "the projection's block cache, such as 256MiB: the status reads are served from it")
	f.IntVar(&stateCache, "state-cache", 0, "contacts whose states are kept in memory for status reads, kept current by the fold (0: 65536; negative: none)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	documentEnv(f)
	return cmd
}

// natsLogin returns the engine's connection options for a server of one's
// own: one way to log in at most, and TLS as given.
func natsLogin(creds, nkey, user, password, tlsCA, tlsCert, tlsKey string) ([]nats.Option, error) {
	var opts []nats.Option
	ways := 0
	for _, given := range []bool{creds != "", nkey != "", user != ""} {
		if given {
			ways++
		}
	}
	switch {
	case ways > 1:
		return nil, fmt.Errorf("--creds, --nkey and --user are three ways to log in: give one")
	case password != "" && user == "":
		return nil, fmt.Errorf("--password goes with --user")
	case (tlsCert == "") != (tlsKey == ""):
		return nil, fmt.Errorf("--tls-cert and --tls-key go together (got cert %q, key %q)", tlsCert, tlsKey)
	}
	readable := func(flag, path string) error {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s %s: %w", flag, path, err)
		}
		return nil
	}
	if creds != "" {
		if err := readable("--creds", creds); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(creds))
	}
	if nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(nkey)
		if err != nil {
			return nil, fmt.Errorf("--nkey %s: %w", nkey, err)
		}
		opts = append(opts, opt)
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, password))
	}
	if tlsCA != "" {
		if err := readable("--tls-ca", tlsCA); err != nil {
			return nil, err
		}
		opts = append(opts, nats.RootCAs(tlsCA))
	}
	if tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(tlsCert, tlsKey); err != nil {
			return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", tlsCert, tlsKey, err)
		}
		opts = append(opts, nats.ClientCert(tlsCert, tlsKey))
	}
	return opts, nil
}

func newLogger(w interface{ Write([]byte) (int, error) }, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// parseSize reads a size in bytes: a number, optionally followed by KiB, MiB,
// GiB or TiB (or KB, MB, GB, TB, also powers of 1024 here, as memory sizes go).
func parseSize(text string) (int64, error) {
	t := strings.TrimSpace(text)
	mult := int64(1)
	for i, unit := range []string{"K", "M", "G", "T"} {
		for _, suffix := range []string{unit + "iB", unit + "B", unit} {
			if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(suffix)) {
				t, mult = strings.TrimSpace(t[:len(t)-len(suffix)]), int64(1)<<(10*(i+1))
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "b")
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: want a size such as 512MiB or 2GiB (a whole number above 0, with KiB, MiB, GiB or TiB; KB, MB, GB and TB are read the same)", text)
	}
	return n * mult, nil
}

// memoryLimitText says the process's soft memory limit, for the log.
func memoryLimitText() string {
	n := debug.SetMemoryLimit(-1)
	if n == math.MaxInt64 {
		return "none"
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// checkPartitions checks a --partitions: 0 (the log's own, or 1 for a new
// log) or 1 to events.MaxPartitions.
func checkPartitions(n int) error {
	if n != 0 && events.ValidatePartitions(n) != nil {
		return usageError{fmt.Errorf("--partitions %d: want 1 to %d (0: the log's own)", n, events.MaxPartitions)}
	}
	return nil
}
