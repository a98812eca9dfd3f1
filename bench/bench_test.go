package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runHarness runs the harness on cfg, with a minute for each waiting step,
// failing the test, with the run's progress, if it fails. -short skips it.
func runHarness(t *testing.T, cfg Config) *Results {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: runs the benchmark harness")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	cfg.Timeout, cfg.Progress = time.Minute, &progress
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	return res
}

// TestRunTinyWorkload runs the whole harness on a tiny workload and checks that
// what it reports holds together: every visible change reached every subscriber
// once, in order, with a fresh read; deliveries add up; latencies are positive
// and ordered; every engine figure has its baseline and ratio, heartbeats too,
// with the engine's heap per endpoint (the engine runs in this process); the
// outputs are written.
func TestRunTinyWorkload(t *testing.T) {
	res := runHarness(t, Config{
		Contacts: 300, Writers: 2, InFlight: 4, Subscribers: []int{1, 4}, Changes: 150, AppendSets: 400,
		BaselineMessages: 2000, HalfRateM: 4, Endpoints: 200, Heartbeats: 1000,
	})

	b := res.Baselines
	for name, v := range map[string]float64{"publish async": b.PublishAsync, "publish async expect": b.PublishAsyncExpect,
		"ordered read": b.OrderedRead, "append floor": b.AppendFloor,
		"publish async expect last": b.PublishAsyncExpectLast, "owner append floor": b.OwnerAppendFloor, "fold floor": b.FoldFloor, "ordered fan-out M=4": b.FanoutOrdered[4], "fan-out read floor M=4": b.FanoutReadFloor[4], "core fan-out M=4": b.FanoutCore[4]} {
		if v <= 0 {
			t.Errorf("baseline %s = %v, want a positive rate", name, v)
		}
	}
	for name, c := range map[string]Compared{"appends": res.Appends, "fold": res.Fold, "heartbeats": res.Heartbeats} {
		if c.Rate <= 0 || c.Baseline <= 0 {
			t.Errorf("%s: %+v, want a positive rate and baseline", name, c)
		}
		if want := c.Rate / c.Baseline; c.Ratio != want {
			t.Errorf("%s: ratio %v, want rate/baseline = %v", name, c.Ratio, want)
		}
	}

	if w := res.Workload; w.Endpoints != 200 || w.Heartbeats != 1000 || w.HeartbeatsInFlight != 64 {
		t.Errorf("workload %+v: want 200 endpoints, 1000 heartbeats, 64 in flight", w)
	}
	// Each endpoint's contact and lease and the state of its contact stay in
	// the engine's memory.
	if res.HeapPerEndpoint <= 0 {
		t.Errorf("heap per endpoint %v bytes, want the positive growth of the engine's heap", res.HeapPerEndpoint)
	}

	if got, want := len(res.Fanout), 4; got != want {
		t.Fatalf("%d fan-out runs, want %d (two modes, M = 1 and 4)", got, want)
	}
	checkFanouts(t, append(res.Fanout, *res.HalfRate))
	if res.HalfRate.TargetRate <= 0 || res.HalfRate.M != 4 {
		t.Errorf("half-rate run %+v, want M=4 at a set rate", res.HalfRate)
	}
	// The half-rate run is remote (remote is run): its floor repeats every
	// entry (four in five of its Changes publishes) to each of its M.
	if l := res.HalfRateFloor; l == nil {
		t.Error("no floor of the half-rate run")
	} else {
		if want := int64(4 * (150 - 150/5)); l.Count != want {
			t.Errorf("floor of the half-rate run: %d latencies, want %d (M x entries)", l.Count, want)
		}
		if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("floor of the half-rate run: latencies not positive and ordered: %+v", l)
		}
	}

	dir := t.TempDir()
	if err := res.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	var back Results
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil || len(back.Fanout) != len(res.Fanout) {
		t.Errorf("results.json does not read back: %v", err)
	}
	if svg, err := os.ReadFile(filepath.Join(dir, "chart.svg")); err != nil || !bytes.Contains(svg, []byte("<svg")) {
		t.Errorf("chart.svg is not an SVG: %v", err)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "results.txt"))
	if err != nil {
		t.Fatal(err)
	}
	const heartbeatRow = "heartbeats/s (200 live endpoints, 64 in flight)"
	wantRow := []string{rateStr(res.Heartbeats.Rate), rateStr(res.Heartbeats.Baseline), ratio(res.Heartbeats), "core", "NATS", "request/reply"}
	var row []string
	for _, line := range strings.Split(string(txt), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), heartbeatRow); ok {
			row = strings.Fields(rest)
		}
	}
	if !slices.Equal(row, wantRow) {
		t.Errorf("results.txt: row %q reads %q, want %q", heartbeatRow, row, wantRow)
	}
	for _, want := range []string{
		fmt.Sprintf("engine heap per live endpoint: %s", heapText(res.HeapPerEndpoint)),
		fmt.Sprintf("BenchmarkHeartbeats/engine\t1000\t%.1f requests/s\t%.3f x-raw\t%.0f heap-B/endpoint\n", res.Heartbeats.Rate, res.Heartbeats.Ratio, res.HeapPerEndpoint),
		fmt.Sprintf("BenchmarkHeartbeats/raw\t1000\t%.1f requests/s\n", res.Heartbeats.Baseline),
	} {
		if !bytes.Contains(txt, []byte(want)) {
			t.Errorf("results.txt does not say %q:\n%s", want, txt)
		}
	}
	benchLines := 0
	sc := bufio.NewScanner(bytes.NewReader(txt))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "BenchmarkFanout/mode=") {
			benchLines++
			if fields := strings.Fields(sc.Text()); len(fields) < 4 || fields[3] != "deliveries/s" {
				t.Errorf("benchmark line %q is not in Go benchmark format", sc.Text())
			}
		}
	}
	if benchLines != len(res.Fanout) {
		t.Errorf("%d BenchmarkFanout lines, want %d", benchLines, len(res.Fanout))
	}
}

// checkFanouts checks that the figures of fan-out runs add up: every visible
// change reached every subscriber once, in order, never with a stale read,
// and the latencies are positive and ordered.
func checkFanouts(t *testing.T, rows []Fanout) {
	t.Helper()
	for _, f := range rows {
		name := fmt.Sprintf("%s M=%d", f.Mode, f.M)
		if f.Visible == 0 || f.Visible > f.Appended {
			t.Errorf("%s: %d visible of %d appended", name, f.Visible, f.Appended)
		}
		phases := int64(2) // live and catch-up
		if f.TargetRate > 0 {
			phases = 1
		}
		if want := phases * int64(f.M) * int64(f.Visible); f.Deliveries != want {
			t.Errorf("%s: %d deliveries, want %d (visible changes x subscribers x phases)", name, f.Deliveries, want)
		}
		if f.Lost != 0 || f.Duplicated != 0 || f.OutOfOrder != 0 || f.Stale != 0 {
			t.Errorf("%s: lost %d, duplicated %d, out of order %d, stale %d; want none", name, f.Lost, f.Duplicated, f.OutOfOrder, f.Stale)
		}
		l := f.Latency
		if l.Count != int64(f.M)*int64(f.Visible) {
			t.Errorf("%s: %d latencies for %d live deliveries", name, l.Count, int64(f.M)*int64(f.Visible))
		}
		if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("%s: latencies not positive and ordered: %+v", name, l)
		}
		if f.TargetRate == 0 && (f.Rate.Rate <= 0 || f.Rate.Baseline <= 0 || f.LookupRate <= 0) {
			t.Errorf("%s: catch-up %+v, lookups %v; want positive rates", name, f.Rate, f.LookupRate)
		}
	}
}

// TestRunForADuration runs the harness for a duration instead of a number of
// sets: every run of the engine stops when its time is up, far short of the
// sets that cap it, and its figures still add up.
func TestRunForADuration(t *testing.T) {
	res := runHarness(t, Config{
		Contacts: 300, Writers: 1, InFlight: 2, Subscribers: []int{2}, Modes: []Mode{InProcess}, Duration: 200 * time.Millisecond,
		BaselineMessages: 1000, HalfRateM: 2, Endpoints: 50, Heartbeats: 200, HeartbeatsInFlight: 4,
	})
	w := res.Workload
	if w.Duration != 0.2 || w.Changes != 1_000_000 || w.AppendSets != 10_000_000 {
		t.Errorf("workload %+v: want a duration of 0.2s and the caps of a run for a duration", w)
	}
	if n := res.AppendsCount; n <= 0 || n >= w.AppendSets {
		t.Errorf("appends: %d events appended; want some, and far fewer than the cap of %d", n, w.AppendSets)
	}
	if len(res.Fanout) != 1 || res.HalfRate == nil {
		t.Fatalf("%d fan-out runs and half-rate run %v; want one each", len(res.Fanout), res.HalfRate)
	}
	rows := append(res.Fanout, *res.HalfRate)
	for _, f := range rows {
		if f.Appended >= w.Changes {
			t.Errorf("%s M=%d: %d appended, want far fewer than the cap of %d", f.Mode, f.M, f.Appended, w.Changes)
		}
	}
	checkFanouts(t, rows)
	var txt bytes.Buffer
	if err := res.WriteTable(&txt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), "each run of the engine writes for 200ms") {
		t.Errorf("the table does not say the runs wrote for 200ms:\n%s", txt.String())
	}
}

// TestChartOfFewRuns draws the chart of runs with one value of M, and with no
// fan-out run at all: a log-scale axis whose data are one value, or none, has
// no range of its own.
func TestChartOfFewRuns(t *testing.T) {
	one := &Results{
		Workload:  Workload{Modes: []Mode{InProcess}},
		Fanout:    []Fanout{{Mode: InProcess, M: 1, Rate: Compared{Rate: 1000, Baseline: 1000}, Latency: Latency{P99: 5000}}},
		Baselines: Baselines{FanoutCore: map[int]float64{1: 1000}},
	}
	for name, r := range map[string]*Results{"one M": one, "no fan-out": {Workload: Workload{Modes: []Mode{Remote}}}} {
		for _, file := range []string{"chart.svg", "chart.png"} {
			path := filepath.Join(t.TempDir(), file)
			if err := r.WriteChart(path); err != nil {
				t.Errorf("%s: %s: %v", name, file, err)
				continue
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("%s: %s not written: %v", name, file, err)
			}
		}
	}
}

// TestCPUTicksGrow: the processor time read from /proc grows as this process
// works, so the CPU per delivery the bench reports is measured, not zero.
func TestCPUTicksGrow(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	start := cpuTicks(0)
	if start <= 0 {
		t.Fatalf("cpuTicks(self) = %d, want the time this process has run", start)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := uint64(1)
	for cpuTicks(0) <= start {
		for range 1_000_000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpuTicks(self) still %d after 10s of work (%d)", start, x)
		}
	}
	if got := cpuTicks(1 << 30); got != 0 {
		t.Errorf("cpuTicks of no process = %d, want 0", got)
	}
}
