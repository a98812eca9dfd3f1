package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"
)

// Results is everything a run measured. Rates are per second; every engine
// figure has the raw NATS figure it corresponds to, measured in the same run,
// and their ratio.
type Results struct {
	Started   time.Time     `json:"started"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Machine   Machine       `json:"machine"`
	Workload  Workload      `json:"workload"`
	EventSize int           `json:"event_size_bytes"` // mean size of a log event

	Baselines Baselines `json:"baselines"`

	Appends      Compared `json:"appends"`       // sets appended through the service, vs raw async publish with expected seq
	AppendsCount int      `json:"appends_count"` // events those sets appended
	Fold         Compared `json:"fold"`          // events folded into a fresh projection, vs a raw ordered read of the same log
	FoldCount    uint64   `json:"fold_count"`    // events in that log
	// FoldMaxLag is the largest projection lag seen while appends ran as fast
	// as they could; FeedMaxLag likewise for the feed.
	FoldMaxLag uint64   `json:"fold_max_lag_events"`
	FeedMaxLag uint64   `json:"feed_max_lag_events"`
	Feed       Compared `json:"feed"` // feed entries published per second while appends ran
	// Heartbeats is heartbeats/s of live endpoints through the service, vs
	// core NATS request/reply to a responder that answers at once.
	Heartbeats Compared `json:"heartbeats"`
	// HeapPerEndpoint is the engine's heap per live endpoint, in bytes: the
	// growth of its live heap over the sign-ins. 0 when the engine ran in a
	// child process, whose heap is not measured.
	HeapPerEndpoint float64 `json:"heap_per_endpoint_bytes,omitempty"`

	Fanout []Fanout `json:"fanout"`
	// HalfRate is the latency at half the maximum sustained append rate.
	HalfRate *Fanout `json:"half_rate,omitempty"`
	// HalfRateFloor is the latency of the same load on plain NATS: the floor
	// of an append at the half-rate run's rate, each entry repeated on core
	// NATS to as many subscribers (latencyFloor). Remote runs only.
	HalfRateFloor *Latency `json:"half_rate_floor,omitempty"`

	EnginePeakRSS int64 `json:"engine_peak_rss_bytes"` // up to the half-rate run; 0 when the engine ran in this process
	// Memory is the memory run, if any: the engine's resident memory as the log
	// grew.
	Memory []MemorySample `json:"memory,omitempty"`
	Notes  []string       `json:"notes,omitempty"`
}

// Machine says where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	Engine    string `json:"engine"` // "child process" or "in process"
	Server    string `json:"server"` // "embedded" or the URL
}

// Workload is the shape of the run.
type Workload struct {
	Partitions int `json:"partitions"` // of the log the engine created; 0: the engine's default, 1
	Contacts   int `json:"contacts"`
	Writers    int `json:"writers"`
	InFlight   int `json:"in_flight"`
	Changes    int `json:"changes_per_fanout_run"`
	AppendSets int `json:"append_sets"`
	// Duration is how long, in seconds, each run of the engine wrote (Changes
	// and AppendSets then cap the sets); 0: the runs made those sets.
	Duration    float64 `json:"duration_s,omitempty"`
	Baseline    int     `json:"baseline_messages"`
	Subscribers []int   `json:"subscribers"`
	Modes       []Mode  `json:"modes"`
	// Endpoints are the live endpoints of the heartbeat measurement, one a
	// contact; Heartbeats the heartbeats it sent over them, and the raw
	// requests, HeartbeatsInFlight at once.
	Endpoints          int `json:"endpoints"`
	Heartbeats         int `json:"heartbeats"`
	HeartbeatsInFlight int `json:"heartbeats_in_flight"`
}

// Baselines are the raw figures of the run: NATS alone, and the floors.
type Baselines struct {
	PublishAsync       float64 `json:"publish_async"`        // msgs/s, JetStream async publish
	PublishAsyncExpect float64 `json:"publish_async_expect"` // msgs/s, with expected-last-subject-sequence
	// PublishAsyncExpectLast is msgs/s of one writer whose publishes each
	// expect the stream's last sequence, pipelined: how an owner of the log
	// appends (DESIGN.md §2).
	PublishAsyncExpectLast float64 `json:"publish_async_expect_last"`
	OrderedRead            float64 `json:"ordered_read"` // msgs/s, one ordered consumer
	// AppendFloor is msgs/s of the least work the server must do per append,
	// with plain NATS calls: published with expected-last-subject-sequence,
	// read back once, four in five derived to a second stream (appendFloor).
	AppendFloor float64 `json:"append_floor"`
	// OwnerAppendFloor is AppendFloor with the publishes of one owner, each
	// expecting the stream's last sequence: the floor of the design's write
	// path, which the engine's appends are to reach (issue 19).
	OwnerAppendFloor float64 `json:"owner_append_floor"`
	// FoldFloor is msgs/s of an ordered read of the log with each message
	// written to a fresh Pebble store, in batches, as the fold writes
	// (foldFloor): measured in the fold phase, on the log.
	FoldFloor     float64         `json:"fold_floor"`
	FanoutOrdered map[int]float64 `json:"fanout_ordered"` // deliveries/s to M ordered consumers
	// FanoutReadFloor is deliveries/s to M ordered consumers that each read
	// the status of every message in batched requests to a plain responder:
	// the floor of a remote fan-out with reads (fanoutReadFloor).
	FanoutReadFloor map[int]float64 `json:"fanout_read_floor"`
	// FanoutReadFloorCPU is the processor time of the floor per delivery.
	FanoutReadFloorCPU map[int]CPU     `json:"fanout_read_floor_cpu"`
	FanoutCore         map[int]float64 `json:"fanout_core"` // deliveries/s to M core subscribers
}

// Compared is an engine figure beside its baseline.
type Compared struct {
	Rate     float64 `json:"rate"`
	Baseline float64 `json:"baseline"`
	Ratio    float64 `json:"ratio"`
}

func compare(rate, baseline float64) Compared {
	c := Compared{Rate: rate, Baseline: baseline}
	if baseline > 0 {
		c.Ratio = rate / baseline
	}
	return c
}

// MemorySample is the engine's resident memory after a number of sets.
type MemorySample struct {
	Sets   int     `json:"sets"`
	Events uint64  `json:"log_events"` // events in the log
	RSS    int64   `json:"rss_bytes"`
	Rate   float64 `json:"appends_per_s"`
}

// Latency is a distribution in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// Fanout is one fan-out run: M subscribers in one mode.
type Fanout struct {
	Mode       Mode    `json:"mode"`
	M          int     `json:"m"`
	TargetRate float64 `json:"target_rate,omitempty"` // sets/s asked of the writers; 0: as fast as they go
	Appended   int     `json:"appended"`              // changes appended during the run
	Visible    int     `json:"visible"`               // of which visible: each must reach every subscriber
	AppendRate float64 `json:"append_rate"`
	Deliveries int64   `json:"deliveries"`            // in both phases
	LiveRate   float64 `json:"live_deliveries_per_s"` // while the writers wrote: bounded by their rate
	// Rate is the catch-up rate: M subscribers handing over the window at once,
	// vs the raw fan-out of a pre-filled stream (M ordered consumers for
	// remote, M core subscribers for in-process).
	Rate Compared `json:"deliveries_per_s"`
	// CatchUpStart is how long the M catching-up subscribers took to start
	// (connect, find their start in the feed, make their consumer), one after
	// another: not in Rate, as the raw fan-out's consumers are made before it
	// is timed.
	CatchUpStart float64 `json:"catch_up_start_s"`
	LookupRate   float64 `json:"lookups_per_s"`
	Latency      Latency `json:"latency"`
	Lost         int64   `json:"lost"`       // visible changes some subscriber never got
	Duplicated   int64   `json:"duplicated"` // deliveries of a change a subscriber already had
	OutOfOrder   int64   `json:"out_of_order"`
	Stale        int64   `json:"stale"` // reads older than their change
	// CatchUps is how many times, in the live phase, remote subscribers read the
	// feed itself over a gap in what they were handed on core NATS.
	CatchUps  int64 `json:"catch_ups"`
	RSSPerSub int64 `json:"rss_per_subscriber_bytes"`
	// CatchUpCPU is the processor time the catch-up took per delivery.
	CatchUpCPU CPU `json:"catch_up_cpu_per_delivery"`
}

// CPU is processor time per delivery, in microseconds: of the bench's own
// process (the subscribers, and a floor's responder) and of the engine's
// child process (the engine and its embedded server, or the server alone
// for a raw figure). With the engine in the bench's process, or a server
// elsewhere, Engine is 0 and Bench holds what this process took.
type CPU struct {
	Bench  float64 `json:"bench_us"`
	Engine float64 `json:"engine_us"`
}

func (c CPU) String() string {
	if c == (CPU{}) {
		return "-"
	}
	return fmt.Sprintf("%.1f / %.1f", c.Bench, c.Engine)
}

// WriteJSON writes the results as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func rateStr(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func ratio(c Compared) string {
	if c.Baseline == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", c.Ratio)
}

func bytesText(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

func ms(us float64) string { return fmt.Sprintf("%.2f", us/1000) }

// WriteTable writes the results for people.
func (r *Results) WriteTable(w io.Writer) error {
	runs := ""
	if d := r.Workload.Duration; d > 0 {
		runs = fmt.Sprintf("; each run of the engine writes for %v", time.Duration(d*float64(time.Second)))
	}
	fmt.Fprintf(w, "presence bench: %d CPUs, %s, engine %s, server %s, %d partitions; %d contacts, %d writers x %d in flight%s; events of %d bytes\n\n",
		r.Machine.CPUs, r.Machine.GoVersion, r.Machine.Engine, r.Machine.Server, max(1, r.Workload.Partitions), r.Workload.Contacts,
		r.Workload.Writers, r.Workload.InFlight, runs, r.EventSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tengine\traw NATS\tratio\tagainst\t")
	b := r.Baselines
	fmt.Fprintf(tw, "appends/s (through the service)\t%s\t%s\t%s\tasync publish + expected seq\t\n", rateStr(r.Appends.Rate), rateStr(r.Appends.Baseline), ratio(r.Appends))
	fmt.Fprintf(tw, "fold events/s (fresh projection)\t%s\t%s\t%s\tordered read of the same log\t\n", rateStr(r.Fold.Rate), rateStr(r.Fold.Baseline), ratio(r.Fold))
	fmt.Fprintf(tw, "feed entries/s (while appending)\t%s\t%s\t%s\tasync publish\t\n", rateStr(r.Feed.Rate), rateStr(r.Feed.Baseline), ratio(r.Feed))
	fmt.Fprintf(tw, "heartbeats/s (%d live endpoints, %d in flight)\t%s\t%s\t%s\tcore NATS request/reply\t\n", r.Workload.Endpoints,
		r.Workload.HeartbeatsInFlight, rateStr(r.Heartbeats.Rate), rateStr(r.Heartbeats.Baseline), ratio(r.Heartbeats))
	fmt.Fprintf(tw, "raw async publish\t\t%s\t\t\t\n", rateStr(b.PublishAsync))
	fmt.Fprintf(tw, "raw async publish + expected seq\t\t%s\t\t\t\n", rateStr(b.PublishAsyncExpect))
	fmt.Fprintf(tw, "raw async publish, one writer expecting the last seq\t\t%s\t%s\tasync publish\t\n",
		rateStr(b.PublishAsyncExpectLast), ratio(compare(b.PublishAsyncExpectLast, b.PublishAsync)))
	fmt.Fprintf(tw, "raw ordered read\t\t%s\t\t\t\n", rateStr(b.OrderedRead))
	floor := compare(b.AppendFloor, b.PublishAsyncExpect)
	fmt.Fprintf(tw, "raw floor of an append (publish, read, feed entry)\t\t%s\t%s\tasync publish + expected seq\t\n", rateStr(b.AppendFloor), ratio(floor))
	fmt.Fprintf(tw, "raw floor of an owner's append (the same, expecting the last seq)\t\t%s\t%s\tasync publish\t\n",
		rateStr(b.OwnerAppendFloor), ratio(compare(b.OwnerAppendFloor, b.PublishAsync)))
	fmt.Fprintf(tw, "raw floor of a fold (ordered read, a Pebble set each)\t\t%s\t%s\tordered read of the same log\t\n", rateStr(b.FoldFloor), ratio(compare(b.FoldFloor, r.Fold.Baseline)))
	tw.Flush()
	fmt.Fprintf(w, "\nprojection lag while appending at full speed: max %d events; feed lag: max %d events\n", r.FoldMaxLag, r.FeedMaxLag)
	if r.Machine.Engine == "child process" {
		fmt.Fprintln(w, "engine heap per live endpoint: not measured in a child process (--in-process, or go test ./engine -bench BenchmarkHeartbeats)")
	} else {
		fmt.Fprintf(w, "engine heap per live endpoint: %s (growth of the live heap over %d sign-ins)\n", heapText(r.HeapPerEndpoint), r.Workload.Endpoints)
	}
	if r.EnginePeakRSS > 0 {
		fmt.Fprintf(w, "engine peak resident memory, up to the half-rate run: %s\n", bytesText(r.EnginePeakRSS))
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tM\tappends/s\tlive deliveries/s\tdeliveries/s\traw fan-out\tratio\tstart ms\tlookups/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\tlost\tdup\tstale\tcatch-ups\tRSS/sub\t")
	rows := append([]Fanout(nil), r.Fanout...)
	if r.HalfRate != nil {
		rows = append(rows, *r.HalfRate)
	}
	for _, f := range rows {
		mode := string(f.Mode)
		if f.TargetRate > 0 {
			mode += fmt.Sprintf(" @%s/s", rateStr(f.TargetRate))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t\n", mode, f.M,
			rateStr(f.AppendRate), rateStr(f.LiveRate), rateStr(f.Rate.Rate), rateStr(f.Rate.Baseline), ratio(f.Rate),
			ms(f.CatchUpStart*1e6), rateStr(f.LookupRate),
			ms(f.Latency.P50), ms(f.Latency.P90), ms(f.Latency.P99), ms(f.Latency.P999), ms(f.Latency.Max),
			f.Lost, f.Duplicated, f.Stale, f.CatchUps, bytesText(f.RSSPerSub))
	}
	tw.Flush()
	if l := r.HalfRateFloor; l != nil && r.HalfRate != nil {
		fmt.Fprintf(w, "\nfloor of the half-rate run (plain NATS: the append floor at %s/s, each entry repeated on core NATS to %d subscribers):\n", rateStr(r.HalfRate.TargetRate), r.HalfRate.M)
		fmt.Fprintf(w, "  p50 %s ms, p90 %s ms, p99 %s ms, p99.9 %s ms, max %s ms over %d deliveries; the engine's p99 is %.1fx it\n",
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), l.Count, r.HalfRate.Latency.P99/max(l.P99, 1))
	}
	fmt.Fprintln(w, "\nlive: subscribers running while the writers write (latency: writer's ack to the handler's read of the current status)")
	fmt.Fprintln(w, "deliveries/s: M subscribers catching up on that window at once, each reading the current status of every change,")
	fmt.Fprintln(w, "timed from when all M exist (start ms: how long starting them took, one after another);")
	fmt.Fprintln(w, "raw fan-out: remote rows against M ordered consumers of a pre-filled stream, in-process rows against M core NATS subscribers;")
	fmt.Fprintf(w, "floor with reads: those M ordered consumers each also reading the status of every message, a request per batch of %d, from a plain responder;\n", readBatch)
	fmt.Fprintln(w, "CPU us/delivery: processor time per delivery of this process (subscribers, the floor's responder) / of the engine's process (engine and server; server alone for the floor)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "M\tordered consumers deliveries/s\tfloor with reads deliveries/s\tremote catch-up / floor\tCPU us/delivery, floor\tCPU us/delivery, remote catch-up\tcore subscribers deliveries/s\t")
	for _, m := range r.Workload.Subscribers {
		ofFloor, catchUpCPU := "-", CPU{}
		for _, f := range r.Fanout {
			if f.Mode == Remote && f.M == m && b.FanoutReadFloor[m] > 0 {
				ofFloor, catchUpCPU = fmt.Sprintf("%.2f", f.Rate.Rate/b.FanoutReadFloor[m]), f.CatchUpCPU
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m, rateStr(b.FanoutOrdered[m]), rateStr(b.FanoutReadFloor[m]), ofFloor,
			b.FanoutReadFloorCPU[m], catchUpCPU, rateStr(b.FanoutCore[m]))
	}
	tw.Flush()
	if len(r.Memory) > 0 {
		fmt.Fprintln(w, "\nmemory run: the engine's resident memory as the log grows")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "sets\tlog events\tappends/s\tengine RSS\t")
		for _, m := range r.Memory {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t\n", m.Sets, m.Events, rateStr(m.Rate), bytesText(m.RSS))
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// WriteGoBench writes the figures as Go benchmark lines, which benchstat
// compares across runs.
func (r *Results) WriteGoBench(w io.Writer) error {
	line := func(name string, n int64, unit string, v float64) {
		fmt.Fprintf(w, "%s\t%d\t%.1f %s\n", name, max(n, 1), v, unit)
	}
	line("BenchmarkAppend/engine", int64(r.AppendsCount), "appends/s", r.Appends.Rate)
	line("BenchmarkAppend/raw-expect", int64(r.Workload.Baseline), "msgs/s", r.Baselines.PublishAsyncExpect)
	line("BenchmarkAppend/raw", int64(r.Workload.Baseline), "msgs/s", r.Baselines.PublishAsync)
	line("BenchmarkAppend/raw-floor", int64(r.Workload.Baseline), "msgs/s", r.Baselines.AppendFloor)
	line("BenchmarkAppend/raw-expect-last", int64(r.Workload.Baseline), "msgs/s", r.Baselines.PublishAsyncExpectLast)
	line("BenchmarkAppend/raw-owner-floor", int64(r.Workload.Baseline), "msgs/s", r.Baselines.OwnerAppendFloor)
	fmt.Fprintf(w, "BenchmarkHeartbeats/engine\t%d\t%.1f requests/s\t%.3f x-raw", max(r.Workload.Heartbeats, 1), r.Heartbeats.Rate, r.Heartbeats.Ratio)
	if r.HeapPerEndpoint != 0 {
		fmt.Fprintf(w, "\t%.0f heap-B/endpoint", r.HeapPerEndpoint)
	}
	fmt.Fprintln(w)
	line("BenchmarkHeartbeats/raw", int64(r.Workload.Heartbeats), "requests/s", r.Heartbeats.Baseline)
	line("BenchmarkFold/engine", int64(r.FoldCount), "events/s", r.Fold.Rate)
	line("BenchmarkFold/raw-ordered-read", int64(r.FoldCount), "msgs/s", r.Fold.Baseline)
	line("BenchmarkFold/raw-floor", int64(r.FoldCount), "msgs/s", r.Baselines.FoldFloor)
	for _, f := range r.Fanout {
		name := fmt.Sprintf("BenchmarkFanout/mode=%s/M=%d", f.Mode, f.M)
		fmt.Fprintf(w, "%s\t%d\t%.1f deliveries/s\t%.1f lookups/s\t%.1f p50-us\t%.1f p99-us\t%.1f max-us\n",
			name, max(f.Deliveries, 1), f.Rate.Rate, f.LookupRate, f.Latency.P50, f.Latency.P99, f.Latency.Max)
	}
	latLine := func(name string, l Latency) {
		fmt.Fprintf(w, "%s\t%d\t%.1f p50-us\t%.1f p90-us\t%.1f p99-us\t%.1f max-us\n", name, max(l.Count, 1), l.P50, l.P90, l.P99, l.Max)
	}
	if h := r.HalfRate; h != nil {
		latLine(fmt.Sprintf("BenchmarkHalfRate/mode=%s/M=%d", h.Mode, h.M), h.Latency)
		if r.HalfRateFloor != nil {
			latLine(fmt.Sprintf("BenchmarkHalfRate/raw-floor/M=%d", h.M), *r.HalfRateFloor)
		}
	}
	for _, m := range r.Workload.Subscribers {
		if v, ok := r.Baselines.FanoutOrdered[m]; ok {
			line(fmt.Sprintf("BenchmarkFanout/raw-ordered/M=%d", m), int64(r.Workload.Baseline), "deliveries/s", v)
		}
		if v, ok := r.Baselines.FanoutReadFloor[m]; ok {
			line(fmt.Sprintf("BenchmarkFanout/raw-floor/M=%d", m), int64(r.Workload.Baseline), "deliveries/s", v)
		}
		if v, ok := r.Baselines.FanoutCore[m]; ok {
			line(fmt.Sprintf("BenchmarkFanout/raw-core/M=%d", m), int64(r.Workload.Baseline), "deliveries/s", v)
		}
	}
	return nil
}

// WriteFiles writes results.json, results.txt (the table and the benchmark
// lines), chart.svg and chart.png into dir.
func (r *Results) WriteFiles(dir string) error {
	var js, txt bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		return err
	}
	if err := r.WriteTable(&txt); err != nil {
		return err
	}
	txt.WriteString("\n")
	if err := r.WriteGoBench(&txt); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), js.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.txt"), txt.Bytes(), 0o644); err != nil {
		return err
	}
	if err := r.WriteChart(filepath.Join(dir, "chart.svg")); err != nil {
		return err
	}
	return r.WriteChart(filepath.Join(dir, "chart.png"))
}

// WriteChart draws deliveries/s and p99 latency against M, one line per mode.
func (r *Results) WriteChart(path string) error { return writeChart(r, path) }
