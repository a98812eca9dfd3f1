package engine

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// serverConfig configures the embedded nats-server.
type serverConfig struct {
	// Listen is the client address, HOST:PORT. Zero means 127.0.0.1:4222; port 0
	// picks a free port.
	Listen string
	// StoreDir holds JetStream's data, in StoreDir/jetstream. Required: an empty
	// StoreDir would put the log in the OS temp directory.
	StoreDir string
	// Sync is how JetStream makes the log durable. Zero means DefaultSync.
	Sync Sync
	// Logger receives the server's messages. Zero means slog.Default().
	Logger *slog.Logger
	// ServerName names the server. Zero means "presence".
	ServerName string
	// ReadyTimeout bounds the wait for the server to accept clients. Zero means 10s.
	ReadyTimeout time.Duration
	// Auth, when set, makes the server ask every client for a user and
	// password, and gives each user the permissions of its role. EnginePassword
	// is then the password of EngineUser, the engine's own connection.
	Auth           *AuthConfig
	EnginePassword string
	// TLS, when set, makes client connections use TLS (in-process ones need not).
	TLS *tls.Config
	// Monitor, when set, is the HOST:PORT of the server's monitoring
	// endpoints (/varz, /jsz, /healthz); port 0 picks one.
	Monitor string
}

// DefaultListen is the embedded server's client address.
const DefaultListen = "127.0.0.1:4222"

// withDefaults returns c with its zero fields at their defaults.
func (c serverConfig) withDefaults() serverConfig {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ServerName == "" {
		c.ServerName = "presence"
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	return c
}

// hostPort splits a HOST:PORT address given as what (example is one that
// works), port 0 being the server's RANDOM_PORT.
func hostPort(what, addr, example string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w; want HOST:PORT, for example %s", what, addr, err, example)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%s %q: port %q is not a number from 0 to 65535", what, addr, portText)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// startServer starts an embedded nats-server with JetStream and waits until it
// accepts clients. The caller owns it: Shutdown, then WaitForShutdown.
func startServer(cfg serverConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("engine: the embedded server needs a StoreDir")
	}
	cfg = cfg.withDefaults()
	host, port, err := hostPort("listen address", cfg.Listen, "127.0.0.1:4222")
	if err != nil {
		return nil, err
	}
	if port != server.RANDOM_PORT {
		// The server would only log a busy port and never become ready: say so
		// at once.
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w (is another presence serve or nats-server running there? --listen chooses another address)", cfg.Listen, err)
		}
		ln.Close()
	}
	opts := &server.Options{}
	if cfg.Auth != nil {
		if err := cfg.Auth.Validate(); err != nil {
			return nil, err
		}
		if cfg.EnginePassword == "" {
			return nil, errors.New("engine: an embedded server with users needs the engine's password")
		}
		accounts, err := cfg.Auth.serverAccounts(cfg.EnginePassword)
		if err == nil {
			err = opts.ProcessConfigString(accounts)
		}
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server: the accounts of the users: %w", err)
		}
	}
	if err := moveStreamsToAccount(cfg.StoreDir, cfg.Auth != nil, cfg.Logger); err != nil {
		return nil, err
	}
	opts.ServerName, opts.Host, opts.Port = cfg.ServerName, host, port
	opts.JetStream, opts.StoreDir, opts.NoSigs = true, cfg.StoreDir, true
	opts.SyncAlways, opts.SyncInterval = cfg.Sync.Always, cfg.Sync.interval()
	if cfg.Monitor != "" {
		if opts.HTTPHost, opts.HTTPPort, err = hostPort("monitor address", cfg.Monitor, "127.0.0.1:8222"); err != nil {
			return nil, err
		}
	}
	if cfg.TLS != nil {
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, cfg.TLS, 2
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	s.SetLoggerV2(serverLogger{cfg.Logger}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats-server on %s not ready after %s", cfg.Listen, cfg.ReadyTimeout)
	}
	return s, nil
}

// globalAccount is the account of a server without accounts, where the
// engine and its streams are without --auth.
const globalAccount = "$G"

// moveStreamsToAccount moves the embedded server's streams, in storeDir, to
// the account the engine is in this run: EngineAccount with users (auth),
// the global account without. JetStream keeps each account's streams in a
// directory of its own: without the move, turning --auth on or off would
// start an empty log beside the one kept. A store that holds streams in
// both is refused, naming both: which one is the log is not the engine's to
// guess.
func moveStreamsToAccount(storeDir string, auth bool, logger *slog.Logger) error {
	from, to := globalAccount, EngineAccount
	if !auth {
		from, to = to, from
	}
	src, dst := filepath.Join(storeDir, "jetstream", from), filepath.Join(storeDir, "jetstream", to)
	if !holdsStreams(src) {
		return nil
	}
	if holdsStreams(dst) {
		return fmt.Errorf("the store holds streams in %s and in %s: this run's are in %s (with --auth the engine's account is %s, without it the global account %s); move the other aside",
			src, dst, dst, EngineAccount, globalAccount)
	}
	// What is left of dst holds no stream: empty directories only.
	for _, d := range []string{filepath.Join(dst, "streams"), dst} {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("move the streams from %s to %s: %w", src, dst, err)
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("move the streams from %s to %s: %w", src, dst, err)
	}
	logger.Info("embedded nats-server: the streams moved to the engine's account of this run", "from", src, "to", dst, "auth", auth)
	return nil
}

// holdsStreams reports whether a JetStream account directory holds a stream.
func holdsStreams(accountDir string) bool {
	entries, err := os.ReadDir(filepath.Join(accountDir, "streams"))
	return err == nil && len(entries) > 0
}

// serverLogger sends nats-server's messages to slog: warnings and errors as
// such, everything else (its start-up banner included) at Debug.
type serverLogger struct{ l *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) {
	l.l.Debug("nats-server: " + fmt.Sprintf(format, v...))
}

func (l serverLogger) Warnf(format string, v ...any) {
	l.l.Warn("nats-server: " + fmt.Sprintf(format, v...))
}

func (l serverLogger) Fatalf(format string, v ...any) {
	l.l.Error("nats-server: fatal: " + fmt.Sprintf(format, v...))
}

func (l serverLogger) Errorf(format string, v ...any) {
	l.l.Error("nats-server: " + fmt.Sprintf(format, v...))
}

func (l serverLogger) Debugf(format string, v ...any) {
	l.l.Debug("nats-server: " + fmt.Sprintf(format, v...))
}

func (l serverLogger) Tracef(format string, v ...any) {
	l.l.Debug("nats-server: " + fmt.Sprintf(format, v...))
}
