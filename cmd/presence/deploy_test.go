package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// The files of deploy/ cannot rot: the tests below read them as they are.

// deployFile returns the text of a file of deploy/.
func deployFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// yamlDocs decodes every document of a YAML file of deploy/, merge keys
// resolved.
func yamlDocs(t *testing.T, name string) []any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(deployFile(t, name)))
	var docs []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if err == io.EOF {
			return docs
		}
		if err != nil {
			t.Fatalf("deploy/%s: %v", name, err)
		}
		docs = append(docs, doc)
	}
}

// walk calls fn with every map of v and every string in a list of v.
func walk(v any, fn func(m map[string]any), str func(s string)) {
	switch v := v.(type) {
	case map[string]any:
		fn(v)
		for _, x := range v {
			walk(x, fn, str)
		}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				str(s)
			}
			walk(x, fn, str)
		}
	}
}

// TestDeployFilesNameRealFlags: every PRESENCE_ variable and every --flag the
// image, the compose file and the Kubernetes manifests give the engine is one
// of serve's.
func TestDeployFilesNameRealFlags(t *testing.T) {
	known := map[string]bool{}
	newServe().Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	vars := regexp.MustCompile(`\bPRESENCE_[A-Z0-9_]+\b`)
	check := func(file, name string) {
		if strings.HasPrefix(name, "--") {
			if flag := strings.SplitN(name[2:], "=", 2)[0]; !known[flag] {
				t.Errorf("deploy/%s passes %s: serve has no such flag", file, name)
			}
			return
		}
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), "_", "-"))
		if !known[flag] {
			t.Errorf("deploy/%s sets %s: serve has no flag --%s", file, name, flag)
		}
	}
	seen := map[string]int{}
	for _, m := range vars.FindAllString(deployFile(t, "Dockerfile"), -1) {
		check("Dockerfile", m)
		seen["Dockerfile"]++
	}
	for _, file := range []string{"compose.yaml", "k8s/presence.yaml"} {
		for _, doc := range yamlDocs(t, file) {
			if services, ok := doc.(map[string]any)["services"].(map[string]any); ok {
				for name := range services {
					if !strings.HasPrefix(name, "engine") {
						delete(services, name) // NATS's flags are its own
					}
				}
				doc = services // the engines, their anchor merged in
			}
			walk(doc, func(m map[string]any) {
				for k := range m {
					if strings.HasPrefix(k, envPrefix) {
						check(file, k)
						seen[file]++
					}
				}
				if name, ok := m["name"].(string); ok && strings.HasPrefix(name, envPrefix) {
					check(file, name)
					seen[file]++
				}
			}, func(s string) {
				if strings.HasPrefix(s, "--") {
					check(file, s)
				}
			})
		}
	}
	for _, file := range []string{"Dockerfile", "compose.yaml", "k8s/presence.yaml"} {
		if seen[file] < 3 {
			t.Errorf("deploy/%s: found %d PRESENCE_ variables; the test reads it wrong", file, seen[file])
		}
	}
}

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestShippedClusterRunsTwoEngines: three nats-servers from
// deploy/nats/cluster.conf (ports, directories and host names replaced, on
// loopback), and the compose file's two engines on them through its
// environment: both ready, one change set through one and read through the
// other.
func TestShippedClusterRunsTwoEngines(t *testing.T) {
	conf := deployFile(t, "nats/cluster.conf")
	var clientPorts, routePorts [3]int
	for i := range 3 {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
	}
	var urls []string
	for i := range 3 {
		node := conf
		for k := range 3 {
			node = strings.ReplaceAll(node, fmt.Sprintf("nats-route://nats-%d:6222", k+1), fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[k]))
		}
		for from, to := range map[string]string{
			"0.0.0.0:4222":    fmt.Sprintf("127.0.0.1:%d", clientPorts[i]),
			"0.0.0.0:6222":    fmt.Sprintf("127.0.0.1:%d", routePorts[i]),
			"0.0.0.0:8222":    fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"/data/jetstream": filepath.ToSlash(filepath.Join(t.TempDir(), "jetstream")),
		} {
			if !strings.Contains(node, from) {
				t.Fatalf("deploy/nats/cluster.conf no longer holds %q: update this test", from)
			}
			node = strings.ReplaceAll(node, from, to)
		}
		file := filepath.Join(t.TempDir(), "cluster.conf")
		if err := os.WriteFile(file, []byte(node), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("NATS_SERVER_NAME", fmt.Sprintf("nats-%d", i+1))
		urls = append(urls, startConfigured(t, file).ClientURL())
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitUntil(t, 30*time.Second, "the JetStream cluster to elect its leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})

	var env map[string]any
	for _, doc := range yamlDocs(t, "compose.yaml") {
		services, _ := doc.(map[string]any)["services"].(map[string]any)
		engine, _ := services["engine-1"].(map[string]any)
		env, _ = engine["environment"].(map[string]any)
	}
	if env["PRESENCE_NATS"] == nil {
		t.Fatalf("deploy/compose.yaml: engine-1 has no PRESENCE_NATS in its environment: %v", env)
	}
	var readyURLs []string
	for range 2 {
		for k, v := range env {
			t.Setenv(k, fmt.Sprint(v))
		}
		t.Setenv("PRESENCE_NATS", strings.Join(urls, ","))
		t.Setenv("PRESENCE_DATA", t.TempDir())
		t.Setenv("PRESENCE_METRICS", "127.0.0.1:0")
		line, _ := logLine(serveFromEnv(t).String(), "metrics listening")
		ready, _ := line["ready"].(string)
		readyURLs = append(readyURLs, ready)
	}
	for i, url := range readyURLs {
		waitUntil(t, 60*time.Second, fmt.Sprintf("engine %d's /readyz to say ready", i+1), func() bool {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	c := client.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Set(ctx, client.SetRequest{Contact: "sip:alice@contoso.com", Status: events.Busy})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq == 0 {
		t.Fatalf("set: %+v", res)
	}
	info, err := js.Stream(ctx, events.LogStream)
	if err != nil || info.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("the log on the shipped cluster: %v, %v; want R3 as the compose file asks", info, err)
	}
}

// TestDeploySmoke runs deploy/smoke.sh (the image built, the compose file up,
// both engines ready) where Docker is, and says so where it is not.
func TestDeploySmoke(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("no Docker daemon here: deploy/smoke.sh (the image and the compose file) not run")
	}
	if testing.Short() {
		t.Skip("-short: deploy/smoke.sh not run")
	}
	cmd := exec.Command("sh", filepath.Join("..", "..", "deploy", "smoke.sh"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("both engines ready")) {
		t.Fatalf("deploy/smoke.sh: %v\n%s", err, out)
	}
}

// TestBuildWithoutTheBenchmark: the image's build (-tags nobench, as
// deploy/Dockerfile builds it) compiles, serves, and says where the benchmark
// is.
func TestBuildWithoutTheBenchmark(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the nobench build is not made")
	}
	out := filepath.Join(t.TempDir(), "presence")
	if b, err := exec.Command("go", "build", "-tags", "nobench", "-o", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nobench: %v\n%s", err, b)
	}
	b, err := exec.Command(out, "bench").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !bytes.Contains(b, []byte("built without the benchmark")) {
		t.Errorf("presence bench in the nobench build: %v\n%s", err, b)
	}
	if b, err := exec.Command(out, "serve", "--help").CombinedOutput(); err != nil || !bytes.Contains(b, []byte("[$PRESENCE_NATS]")) {
		t.Errorf("presence serve --help in the nobench build: %v\n%s", err, b)
	}
}
