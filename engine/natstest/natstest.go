// Package natstest starts real nats-servers for tests: in-process, JetStream
// enabled, on a random loopback port, with their data in the test's temp
// directory. Nothing is mocked. It also holds what every test of a real
// server needs: a context bound to the test, a logger, a wait for a condition,
// and a proxy that cuts connections.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options adjust the server; the zero value is a plain JetStream server.
type Options struct {
	// StoreDir keeps the data somewhere else than a fresh t.TempDir(), so that
	// a restarted server finds it again.
	StoreDir string
	// Port is the client port. Zero means a random one.
	Port int
	// Config is nats-server configuration text (accounts, say), read before
	// the options above and the test's own are set.
	Config string
}

// Start starts a server and shuts it down when the test ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a server with opts and shuts it down when the test ends.
func StartWith(t testing.TB, opts Options) *server.Server {
	t.Helper()
	dir := opts.StoreDir
	if dir == "" {
		dir = t.TempDir()
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{}
	if opts.Config != "" {
		if err := sopts.ProcessConfigString(opts.Config); err != nil {
			t.Fatalf("nats-server refuses the configuration: %v\n%s", err, opts.Config)
		}
	}
	sopts.Host, sopts.Port, sopts.JetStream, sopts.StoreDir = "127.0.0.1", port, true, dir
	return Run(t, sopts)
}

// Run starts a server with opts (without signal handlers or a log of its
// own), waits until it accepts clients, and shuts it down when the test ends.
func Run(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(Timeout) {
		s.Shutdown()
		t.Fatalf("nats-server not ready after %s", Timeout)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context over a new connection to s.
func JetStream(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// StartCluster starts n servers forming one JetStream cluster on loopback, and
// waits until it has a meta leader. They are shut down when the test ends.
// With -short it skips the test instead.
func StartCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: starts a cluster of %d servers", n)
	}
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "presence-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatalf("start nats-server n%d: %v", i, err)
		}
		s.Start()
		servers[i] = s
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
	}
	for i, s := range servers {
		if !s.ReadyForConnections(Timeout) {
			t.Fatalf("nats-server n%d not ready after %s", i, Timeout)
		}
	}
	_, js := JetStream(t, servers[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster of %d has no meta leader after 30s: %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback port free at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreePort returns a loopback TCP port that was free at the time of the call.
func FreePort(t testing.TB) int { return freePort(t) }

// ReadStream returns every message of a stream, in order, up to its last
// sequence at the time of the call, read with an ordered consumer.
func ReadStream(t testing.TB, js jetstream.JetStream, name string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("stream %s consumer: %v", name, err)
	}
	var out []jetstream.Msg
	for uint64(len(out)) < info.State.Msgs {
		// Ask for no more than what is left, so that no fetch outlives the call.
		batch, err := cons.Fetch(int(min(1000, info.State.Msgs-uint64(len(out)))), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("read stream %s: %v", name, err)
		}
		n := len(out)
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if errors.Is(batch.Error(), nats.ErrNoResponders) && len(out) == n && ctx.Err() == nil {
			// On a cluster a new consumer may not answer its first pull yet.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if batch.Error() != nil || len(out) == n {
			t.Fatalf("read stream %s: %d of %d messages read: %v", name, len(out), info.State.Msgs, batch.Error())
		}
	}
	return out
}
