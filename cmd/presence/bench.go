// The benchmark, left out of a build with -tags nobench (the container image:
// deploy/Dockerfile), which its charts make 7 MB heavier.

//go:build !nobench

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/bench"
)

func newBench() *cobra.Command {
	var (
		quick, asJSON, inProcess  bool
		natsURL, out, subs, modes string
		cpuProfile, memoryLimit   string
		cfg                       bench.Config
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure fan-out against the raw broker, in the same run",
		Long: `Measure the engine the way its users run it: appends through the service,
the fold of the log, fan-out to M subscribers that each read the current
status of every change they are handed (remote: a connection each, following
the engine's repeats and reading over the service, with a consumer of the feed
only to catch up; in-process: a hub's handlers sharing one projection
replica), and heartbeats of live endpoints. Every figure is printed beside
the raw NATS figure for the same work, measured in the same run on the same
server, with their ratio.

The engine runs as a child process of this one (presence serve), so that its
memory is measured apart; --in-process runs it here instead. --quick finishes
within a minute on two cores.`,
		Example: `  presence bench --quick
  presence bench --subscribers 1,10,100,1000 --out bench-results
  presence bench --duration 30s --subscribers 100 --modes remote
  presence bench --nats nats://10.0.0.5:4222 --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			base := bench.Config{}
			if quick {
				base = bench.Quick()
			}
			if err := checkPartitions(cfg.Partitions); err != nil {
				return err
			}
			// Counts given: each positive, none left to a default.
			for _, n := range []struct {
				flag  string
				value int
				to    *int
			}{{"contacts", cfg.Contacts, &base.Contacts}, {"writers", cfg.Writers, &base.Writers},
				{"in-flight", cfg.InFlight, &base.InFlight}, {"changes", cfg.Changes, &base.Changes},
				{"append-sets", cfg.AppendSets, &base.AppendSets}, {"baseline-messages", cfg.BaselineMessages, &base.BaselineMessages},
				{"latency-m", cfg.HalfRateM, &base.HalfRateM},
				{"endpoints", cfg.Endpoints, &base.Endpoints}, {"heartbeats", cfg.Heartbeats, &base.Heartbeats},
				{"heartbeats-in-flight", cfg.HeartbeatsInFlight, &base.HeartbeatsInFlight}} {
				if !cmd.Flags().Changed(n.flag) {
					continue
				}
				if n.value <= 0 {
					return usageError{fmt.Errorf("--%s %d: want a positive number", n.flag, n.value)}
				}
				*n.to = n.value
			}
			if cmd.Flags().Changed("duration") {
				if cfg.Duration <= 0 {
					return usageError{fmt.Errorf("--duration %v: want a positive duration, for example 30s", cfg.Duration)}
				}
				// The runs go for the duration: the sets only cap them,
				// by default far above what they make in it.
				base.Duration = cfg.Duration
				if !cmd.Flags().Changed("changes") {
					base.Changes = 0
				}
				if !cmd.Flags().Changed("append-sets") {
					base.AppendSets = 0
				}
			}
			base.Partitions, base.MemorySets, base.MemoryContacts, base.HeapProfile = cfg.Partitions, cfg.MemorySets, cfg.MemoryContacts, cfg.HeapProfile
			if subs != "" {
				base.Subscribers = nil
				for _, s := range strings.Split(subs, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(s))
					if err != nil || n <= 0 {
						return usageError{fmt.Errorf("--subscribers %q: want positive numbers separated by commas, for example 1,10,100", subs)}
					}
					base.Subscribers = append(base.Subscribers, n)
				}
			}
			if modes != "" && modes != "both" {
				base.Modes = nil
				for _, m := range strings.Split(modes, ",") {
					mode := bench.Mode(strings.TrimSpace(m))
					if mode != bench.Remote && mode != bench.InProcess {
						return usageError{fmt.Errorf("--modes %q: want remote, inprocess or both", modes)}
					}
					base.Modes = append(base.Modes, mode)
				}
			}
			base.NATSURL = natsURL
			if !inProcess {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				base.EngineCommand = []string{exe, "serve"}
			}
			if memoryLimit != "" {
				n, err := parseSize(memoryLimit)
				if err != nil {
					return usageError{fmt.Errorf("--engine-memory-limit: %w", err)}
				}
				if inProcess {
					debug.SetMemoryLimit(n)
				} else {
					base.EngineCommand = append(base.EngineCommand, "--memory-limit", memoryLimit)
				}
			}
			if !asJSON {
				base.Progress = cmd.ErrOrStderr()
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := bench.Run(cmd.Context(), base)
			if err != nil {
				return err
			}
			stdout := cmd.OutOrStdout()
			if asJSON {
				if err := res.WriteJSON(stdout); err != nil {
					return err
				}
			} else {
				if err := res.WriteTable(stdout); err != nil {
					return err
				}
				fmt.Fprintln(stdout)
				if err := res.WriteGoBench(stdout); err != nil {
					return err
				}
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				if err := res.WriteFiles(out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "results written to %s\n", filepath.Join(out, "results.json"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&quick, "quick", false, "a short run, within a minute on two cores")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	f.BoolVar(&inProcess, "in-process", false, "run the engine in this process instead of as a child process")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process to this file (with --in-process it covers the engine)")
	f.StringVar(&natsURL, "nats", "", "run against this NATS server or cluster instead of the engine's embedded server")
	f.StringVar(&out, "out", "", "write results.json, results.txt and a chart (chart.svg) into this directory")
	f.StringVar(&subs, "subscribers", "", "values of M, for example 1,10,100,1000 (default 1,10,100,1000; quick 1,10,100)")
	f.StringVar(&modes, "modes", "", "remote, inprocess or both (default both)")
	f.IntVar(&cfg.Partitions, "partitions", 0, "partitions of the log the engine creates (default 1; against --nats, on a fresh server)")
	f.IntVar(&cfg.Contacts, "contacts", 0, "K, contacts written to (default 100000; quick 10000)")
	f.IntVar(&cfg.Writers, "writers", 0, "W, writer connections (default 4; quick 2)")
	f.IntVar(&cfg.InFlight, "in-flight", 0, "sets each writer keeps outstanding (default 64; quick 32)")
	f.IntVar(&cfg.Changes, "changes", 0, "sets per fan-out run (default 20000; quick 2000; with --duration, at most 1000000)")
	f.IntVar(&cfg.AppendSets, "append-sets", 0, "sets in the append measurement (default 200000; quick 20000; with --duration, at most 10000000)")
	f.DurationVar(&cfg.Duration, "duration", 0, "have each run of the engine (the appends, each fan-out run, the half-rate run) write for this long instead of a number of sets")
	f.IntVar(&cfg.BaselineMessages, "baseline-messages", 0, "messages per raw baseline (default 200000; quick 20000)")
	f.IntVar(&cfg.Endpoints, "endpoints", 0, "live endpoints the heartbeats go to, one a contact (default 100000; quick 10000)")
	f.IntVar(&cfg.Heartbeats, "heartbeats", 0, "heartbeats through the service, and raw core NATS requests beside them (default 200000; quick 20000)")
	f.IntVar(&cfg.HeartbeatsInFlight, "heartbeats-in-flight", 0, "heartbeats (and sign-ins, raw requests) outstanding at once (default 64)")
	f.IntVar(&cfg.MemorySets, "memory-sets", 0, "add a memory run of this many sets, sampling the engine's memory (default none)")
	f.IntVar(&cfg.HalfRateM, "latency-m", 0, "M of the latency run at half the maximum rate (default 100; quick 10)")
	f.StringVar(&memoryLimit, "engine-memory-limit", "", "run the engine with this --memory-limit (with --in-process, this whole process)")
	f.IntVar(&cfg.MemoryContacts, "memory-contacts", 0, "contacts of the memory run (default 1000000)")
	f.StringVar(&cfg.HeapProfile, "memprofile", "", "write a heap profile of this process at the end of the memory run (with --in-process it covers the engine)")
	return cmd
}
