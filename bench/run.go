package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

// Run measures the engine as cfg describes and returns the results.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "presence-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	r := &runner{cfg: cfg, dir: dir, res: &Results{Started: time.Now()}}
	defer r.close()
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	r.res.Elapsed = time.Since(r.res.Started)
	return r.res, nil
}

type runner struct {
	cfg  Config
	dir  string
	res  *Results
	eng  *engineUnderTest
	rep  *replica // for in-process subscribers, opened on first use
	nc   *nats.Conn
	js   jetstream.JetStream
	seed uint64
	// replicas is the log's: the raw streams have as many.
	replicas int
}

func (r *runner) step(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (r *runner) close() {
	if r.rep != nil {
		r.rep.close()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.eng != nil {
		_ = r.eng.stop()
	}
}

func (r *runner) run(ctx context.Context) error {
	cfg := r.cfg
	res := r.res
	res.Machine = Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Engine: "in process", Server: "embedded"}
	if len(cfg.EngineCommand) > 0 {
		res.Machine.Engine = "child process"
	}
	if cfg.NATSURL != "" {
		res.Machine.Server = cfg.NATSURL
	}
	res.Workload = Workload{Partitions: cfg.Partitions, Contacts: cfg.Contacts, Writers: cfg.Writers, InFlight: cfg.InFlight, Changes: cfg.Changes,
		AppendSets: cfg.AppendSets, Duration: cfg.Duration.Seconds(), Baseline: cfg.BaselineMessages,
		Subscribers: cfg.Subscribers, Modes: cfg.Modes, Endpoints: cfg.Endpoints, Heartbeats: cfg.Heartbeats, HeartbeatsInFlight: cfg.HeartbeatsInFlight}
	res.EventSize = eventSize(cfg.Contacts)

	r.step("starting the engine (%s, %s server)", res.Machine.Engine, res.Machine.Server)
	var err error
	if r.eng, err = startEngine(ctx, cfg, r.dir); err != nil {
		return err
	}
	if r.nc, err = nats.Connect(r.eng.url, nats.Name("bench")); err != nil {
		return err
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		return err
	}
	log, err := r.js.Stream(ctx, events.LogStream)
	if err != nil {
		return err
	}
	r.replicas = log.CachedInfo().Config.Replicas

	if err := r.baselines(ctx); err != nil {
		return fmt.Errorf("baselines: %w", err)
	}
	if err := r.appends(ctx); err != nil {
		return fmt.Errorf("appends: %w", err)
	}
	if err := r.fold(ctx); err != nil {
		return fmt.Errorf("fold: %w", err)
	}
	for _, mode := range cfg.Modes {
		for _, m := range cfg.Subscribers {
			if mode == Remote && m > cfg.MaxRemote {
				res.Notes = append(res.Notes, fmt.Sprintf("remote M=%d not run: above the remote limit of %d (a JetStream consumer per subscriber)", m, cfg.MaxRemote))
				continue
			}
			f, err := r.fanout(ctx, mode, m, 0)
			if err != nil {
				return fmt.Errorf("fan-out %s M=%d: %w", mode, m, err)
			}
			res.Fanout = append(res.Fanout, f)
		}
	}
	if err := r.halfRate(ctx); err != nil {
		return fmt.Errorf("half-rate latency: %w", err)
	}
	// The peak so far: what follows adds contacts of its own.
	res.EnginePeakRSS = r.eng.peakRSS()
	if err := r.heartbeats(ctx); err != nil {
		return fmt.Errorf("heartbeats: %w", err)
	}
	if cfg.MemorySets > 0 {
		if err := r.memory(ctx); err != nil {
			return fmt.Errorf("memory run: %w", err)
		}
	}
	return nil
}

// eventSize is the mean size of the events the writers append.
func eventSize(contacts int) int {
	total, n := 0, 0
	for i := 0; i < contacts; i += max(1, contacts/100) {
		e := events.Event{Contact: contactID(i), Name: fmt.Sprintf("User %d", i), Status: events.Away,
			Previous: events.Online, At: time.Now(), Cause: events.CauseUser}
		total += len(e.Encode())
		n++
	}
	return total / max(n, 1)
}

// lastLogSeq is the log's last sequence.
func (r *runner) lastLogSeq(ctx context.Context) (uint64, error) {
	return r.lastSeq(ctx, events.LogStream)
}

// lastSeq is a stream's last sequence.
func (r *runner) lastSeq(ctx context.Context, stream string) (uint64, error) {
	s, err := r.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// feedEnd returns the feed's last sequence, its last feed position, once the
// feed has derived the log up to logSeq.
func (r *runner) feedEnd(ctx context.Context, logSeq uint64) (uint64, error) {
	if err := r.waitMetric(ctx, "the feed has derived the log", logSeq, func(m engine.Metrics) uint64 { return m.Feed.Position }); err != nil {
		return 0, err
	}
	return r.lastSeq(ctx, events.FeedStream)
}

// waitMetric polls the engine's metrics until got(them), a log sequence that
// what has reached, is want or more, within the run's timeout.
func (r *runner) waitMetric(ctx context.Context, what string, want uint64, got func(engine.Metrics) uint64) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := r.eng.metrics(r.nc)
		if err != nil {
			return err
		}
		if got(m) >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s up to seq %d, not %d: %w", what, got(m), want, ctx.Err())
		case <-tick.C:
		}
	}
}

// closeAll closes conns, skipping the nil ones (not opened).
func closeAll(conns []*nats.Conn) {
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}

// setsText says how many sets a run makes: n, or as many as in the run's
// duration (at most n).
func (r *runner) setsText(n int) string {
	if r.cfg.Duration > 0 {
		return fmt.Sprintf("sets for %v (at most %d)", r.cfg.Duration, n)
	}
	return fmt.Sprintf("%d sets", n)
}

func rateText(limit float64) string {
	if limit <= 0 {
		return ", as fast as they go"
	}
	return fmt.Sprintf(", at %.0f/s", limit)
}
