package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// TestServeOnAServerOfYourOwn: the engine on a nats-server it does not run,
// with TLS and accounts, configured as an operator would from presence auth:
// the engine (from environment variables alone, no flag) logs in as its own
// user in the account presence auth NAME engine prints, and runs (its
// streams, buckets, feed and service); each role, in the account of its own
// that presence auth prints, does what it may and is refused the rest (a
// push consumer on the feed included); a user of another account sees
// nothing of presence.
func TestServeOnAServerOfYourOwn(t *testing.T) {
	cert, key := natstest.SelfSigned(t)
	dir := t.TempDir()
	account := func(name, role string, extra ...string) string {
		out := mustPresence(t, append([]string{"auth", name, role, "--account", "PRES"}, extra...)...)
		return strings.TrimSpace(strings.Replace(out, `"CHANGE-ME"`, `"`+name+`-pw"`, 1))
	}
	conf := fmt.Sprintf(`listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
tls { cert_file: %q, key_file: %q }
accounts {
  %s
  %s
  %s
  %s
  OTHER { jetstream: enabled, users: [ { user: "other", password: "other-pw" } ] }
}
`, filepath.Join(dir, "js"), cert, key, account("eng", "engine"), account("alice", "user", "--contact", "alice"),
		account("crm", "subscriber"), account("aud", "auditor"))
	confFile := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startConfigured(t, confFile).ClientURL()

	for k, v := range map[string]string{"PRESENCE_NATS": url, "PRESENCE_USER": "eng", "PRESENCE_PASSWORD": "eng-pw",
		"PRESENCE_TLS_CA": cert, "PRESENCE_DATA": filepath.Join(dir, "engine"), "PRESENCE_LOG_FORMAT": "json"} {
		t.Setenv(k, v)
	}
	logs := serveFromEnv(t)
	as := func(user string) []nats.Option {
		return []nats.Option{nats.UserInfo(user, user+"-pw"), nats.RootCAs(cert), nats.CustomInboxPrefix(client.InboxPrefix(user))}
	}
	waitServing(t, url, as("crm")...)
	if strings.Contains(logs.String(), "Permissions Violation") || strings.Contains(logs.String(), "permissions violation") {
		t.Errorf("the engine was refused something it needs:\n%s", logs)
	}

	conn := func(user string) *nats.Conn {
		nc, err := nats.Connect(url, append(as(user), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
		if err != nil {
			t.Fatalf("%s connects: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	alice, crm, aud := client.New(conn("alice")), client.New(conn("crm")), client.New(conn("aud"))
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	// A subscriber follows the feed from the start.
	changes := make(chan client.Change, 8)
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: conn("crm"), Reader: crm, Logger: natstest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	subDone := make(chan error, 1)
	go func() {
		subDone <- sub.Run(sctx, func(_ context.Context, c client.Change) error { changes <- c; return nil })
	}()
	t.Cleanup(func() { stop(); <-subDone })
	<-sub.Ready()

	res, err := alice.Set(short(), client.SetRequest{Contact: "alice", Status: events.Busy})
	if err != nil || !res.Changed {
		t.Fatalf("alice sets her status: %+v, %v", res, err)
	}
	if _, err := alice.SignIn(short(), client.EndpointRequest{Contact: "alice", Endpoint: "desk", Kind: events.KindDesktop}); err != nil {
		t.Fatalf("alice signs in an endpoint: %v", err)
	}
	select {
	case c := <-changes:
		if c.Contact != "alice" {
			t.Errorf("the subscriber is handed %+v, want alice's change", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber was handed no change in 10s")
	}
	if st, err := crm.Status(short(), "alice", res.Seq); err != nil || st.Status != events.Busy {
		t.Errorf("the subscriber reads alice: %+v, %v; want busy", st, err)
	}
	if st, err := aud.Self(short(), "alice", 0); err != nil || st.Status == events.Unknown {
		t.Errorf("the auditor reads alice's own status: %+v, %v", st, err)
	}

	// What each may not do.
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, client.ErrForbidden) {
			t.Errorf("%s: %v; want it refused by the server (client.ErrForbidden)", what, err)
		}
	}
	_, err = alice.Set(short(), client.SetRequest{Contact: "bob", Status: events.Online})
	refused("alice sets bob's status", err)
	js, err := jetstream.New(conn("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if feed, err := js.Stream(short(), events.FeedStream); err != nil {
		t.Errorf("alice reads the feed's info: %v", err)
	} else if _, err := feed.CreateConsumer(short(), jetstream.ConsumerConfig{DeliverSubject: events.LivePrefix + "bob"}); err == nil || !strings.Contains(err.Error(), "pull consumers") {
		t.Errorf("alice creates a push consumer on the feed: %v; want it refused", err)
	}
	_, err = alice.Self(short(), "bob", 0)
	refused("alice reads bob's own status", err)
	_, err = crm.Set(short(), client.SetRequest{Contact: "crm", Status: events.Online})
	refused("the subscriber sets a status", err)
	_, err = aud.Set(short(), client.SetRequest{Contact: "alice", Status: events.Online})
	refused("the auditor sets a status", err)
	other, err := nats.Connect(url, nats.UserInfo("other", "other-pw"), nats.RootCAs(cert))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	if _, err := client.New(other).Status(short(), "alice", 0); err == nil || !strings.Contains(err.Error(), "no presence service answers") {
		t.Errorf("a user of another account reads alice: %v; want no responders: presence is not in its account", err)
	}
	if r := presence(t, "status", "alice", "--server", url, "--user", "aud", "--password", "aud-pw", "--tls-ca", cert, "--at", "now"); r.code != 0 {
		t.Errorf("the auditor reads the log for status --at: %s", r)
	}
}

// startConfigured runs a nats-server from a configuration file until the
// test ends.
func startConfigured(t *testing.T, file string) *server.Server {
	t.Helper()
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		conf, _ := os.ReadFile(file)
		t.Fatalf("nats-server refuses the configuration: %v\n%s", err, conf)
	}
	return natstest.Run(t, opts)
}

// serveFromEnv runs presence serve with no argument, configured by the
// environment alone (PRESENCE_LOG_FORMAT json), until the test ends, and
// returns its log once it is serving.
func serveFromEnv(t *testing.T) *syncBuffer {
	t.Helper()
	logs := newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = run(ctx, []string{"serve"}, &bytes.Buffer{}, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if <-done; runErr != nil {
			t.Errorf("serve returned %v; log:\n%s", runErr, logs)
		}
	})
	logs.waitFor(t, 60*time.Second, done, `the "presence engine serving" log line`, func(s string) bool {
		_, ok := logLine(s, "presence engine serving")
		return ok
	})
	return logs
}

// TestServeFlagsFromTheEnvironment: every flag of serve can come from
// PRESENCE_<FLAG>, a flag given wins, a bad value names its variable, and
// --help says which variable each flag comes from.
func TestServeFlagsFromTheEnvironment(t *testing.T) {
	t.Setenv("PRESENCE_PARTITIONS", "many")
	oneLineError(t, presence(t, "serve"), 2, `$PRESENCE_PARTITIONS "many"`)
	t.Setenv("PRESENCE_PARTITIONS", "") // empty: as if unset

	t.Setenv("PRESENCE_REPLICAS", "-1")
	oneLineError(t, presence(t, "serve"), 2, "--replicas -1")
	// The flag wins over its variable; the other variables are still read.
	t.Setenv("PRESENCE_CONTACT_BURST", "0")
	oneLineError(t, presence(t, "serve", "--replicas", "1"), 2, "--contact-burst 0")

	help := mustPresence(t, "serve", "--help")
	for _, want := range []string{"[$PRESENCE_NATS]", "[$PRESENCE_PASSWORD]", "[$PRESENCE_FLAP_WINDOW]", "PRESENCE_FLAG_NAME"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help does not say %s", want)
		}
	}
}

// TestHealthAndReadiness: with --metrics, /healthz answers while the process
// lives and /readyz says ready once the engine is (503 with the reasons
// before); --monitor turns on the embedded server's /varz.
func TestHealthAndReadiness(t *testing.T) {
	s := startServerWith(t, []string{"--metrics", "127.0.0.1:0", "--monitor", "127.0.0.1:0"})
	line, ok := logLine(s.logs.String(), "metrics listening")
	if !ok {
		t.Fatalf("no metrics listening line:\n%s", s.logs)
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	health, _ := line["health"].(string)
	ready, _ := line["ready"].(string)
	if code, body := get(health); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q; want 200 ok", code, body)
	}
	waitUntil(t, 30*time.Second, "/readyz to say ready", func() bool {
		code, body := get(ready)
		if code != http.StatusOK && !strings.HasPrefix(body, "not ready:\n- ") {
			t.Fatalf("/readyz: %d %q; want 200, or 503 with the reasons", code, body)
		}
		return code == http.StatusOK && body == "ready\n"
	})
	mon, ok := logLine(s.logs.String(), "embedded nats-server monitoring")
	if !ok {
		t.Fatalf("no monitoring line:\n%s", s.logs)
	}
	varz, _ := mon["url"].(string)
	if code, body := get(varz); code != http.StatusOK || !strings.Contains(body, `"jetstream"`) {
		t.Errorf("%s: %d %.200q; want the server's variables", varz, code, body)
	}
	if r := presence(t, "serve", "--nats", s.url, "--monitor", "127.0.0.1:0"); r.code != 2 || !strings.Contains(r.stderr, "--monitor turns on the embedded server's monitoring") {
		t.Errorf("serve --nats --monitor: %s; want a usage error", r)
	}
}

// TestServeSaysNoPassword: a NATS URL with a password that cannot be reached
// is named in the error with the password hidden.
func TestServeSaysNoPassword(t *testing.T) {
	r := presence(t, "serve", "--data", t.TempDir(), "--nats", fmt.Sprintf("nats://eng:s3kr1t@127.0.0.1:%d", freePort(t)))
	if r.code != 1 || strings.Contains(r.stderr, "s3kr1t") || !strings.Contains(r.stderr, "eng:xxxxx@127.0.0.1") {
		t.Errorf("serve with an unreachable server: %s; want exit 1, the URL named without its password", r)
	}
}
