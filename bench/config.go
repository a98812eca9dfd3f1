package bench

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Mode is how subscribers run.
type Mode string

// The subscriber modes.
const (
	// Remote: each subscriber has its own NATS connection; it follows the
	// engine's repeats of the feed on core NATS, which carry the current
	// status, and to catch up reads the feed with a consumer of its own and
	// the current status over the service.
	Remote Mode = "remote"
	// InProcess: the handlers run in one process, handed the feed by one hub
	// (one consumer of the feed), and share one projection replica that
	// follows the log.
	InProcess Mode = "inprocess"
)

// Config describes a run. The zero value is a full run; Quick is a short one.
type Config struct {
	// NATSURL runs against an existing NATS server or cluster. Zero means the
	// engine's embedded server.
	NATSURL string
	// EngineCommand runs the engine as a child process: the command up to and
	// including "serve" (for example [presence, serve]); the run adds --data,
	// --listen or --nats. Zero means the engine runs in this process (its memory
	// is then not told apart from the subscribers').
	EngineCommand []string
	// Partitions is how many partitions the engine gives the log it creates
	// (engine.StreamOptions). Zero means the engine's default, 1.
	Partitions int
	// Contacts is K, the number of contacts written to. Zero means 100,000.
	Contacts int
	// Writers is W, the writer connections. Zero means 4.
	Writers int
	// InFlight is the sets each writer keeps outstanding. Zero means 64.
	InFlight int
	// Subscribers are the values of M. Zero means 1, 10, 100 and 1000
	// (remote runs stop at 100: see Remote).
	Subscribers []int
	// MaxRemote is the largest M run in remote mode. Zero means 100: every
	// remote subscriber catching up has its own JetStream consumer, and a
	// thousand of them take more memory and CPU than the machine has to give.
	MaxRemote int
	// Modes are the subscriber modes run. Zero means both.
	Modes []Mode
	// Changes is how many sets each fan-out run makes. Zero means 20,000, or
	// 1,000,000 with a Duration.
	Changes int
	// AppendSets is how many sets the append measurement makes. Zero means
	// 200,000, or 10,000,000 with a Duration.
	AppendSets int
	// Duration, when set, has each run of the engine write for that long
	// instead of a number of sets: the appends through the service, and the
	// live phase of each fan-out run and of the half-rate run (a catch-up
	// reads what its run wrote). Changes and AppendSets then only cap the
	// sets, whichever comes first. The raw baselines still move
	// BaselineMessages each.
	Duration time.Duration
	// BaselineMessages is how many messages each raw baseline moves. Zero means
	// 200,000.
	BaselineMessages int
	// HalfRateM is the M at which latency is measured at half the maximum
	// sustained rate. Zero means 100.
	HalfRateM int
	// Endpoints is how many endpoints the heartbeat measurement signs in, one
	// a contact, with a lease of an hour. Zero means 100,000.
	Endpoints int
	// Heartbeats is how many heartbeats it sends over them, and how many
	// requests its raw core NATS baseline makes. Zero means 200,000.
	Heartbeats int
	// HeartbeatsInFlight is how many heartbeats (and sign-ins, and raw
	// requests) are outstanding at once, on one connection. Zero means 64.
	HeartbeatsInFlight int
	// MemorySets, when set, adds a memory run at the end: that many sets over
	// MemoryContacts contacts as fast as the writers go, the engine's resident
	// memory sampled as they go, to show whether it grows with contacts and
	// events or stays within its caches. Zero means no memory run.
	MemorySets int
	// MemoryContacts is K for the memory run. Zero means 1,000,000.
	MemoryContacts int
	// HeapProfile, when set, is where a heap profile of this process is written
	// at the end of the memory run, before the engine stops: with the engine in
	// this process, it shows what holds the engine's memory.
	HeapProfile string
	// Dir holds the run's data. Zero means a new temporary directory, removed
	// at the end.
	Dir string
	// Logger receives the engine's messages (in-process) and the run's. Zero
	// means they are discarded.
	Logger *slog.Logger
	// Progress receives a line per step. Zero means none.
	Progress io.Writer
	// Timeout bounds each waiting step (subscribers catching up, the fold).
	// Zero means 2 minutes.
	Timeout time.Duration
}

// Quick returns the configuration of `presence bench --quick`: small enough to
// finish within a minute on two cores, every figure still measured.
func Quick() Config {
	return Config{
		Contacts:         10_000,
		Writers:          2,
		InFlight:         32,
		Subscribers:      []int{1, 10, 100},
		Changes:          2_000,
		AppendSets:       20_000,
		BaselineMessages: 20_000,
		HalfRateM:        10,
		Endpoints:        10_000,
		Heartbeats:       20_000,
		Timeout:          30 * time.Second,
	}
}

func (c Config) withDefaults() (Config, error) {
	if c.Contacts <= 0 {
		c.Contacts = 100_000
	}
	if c.Writers <= 0 {
		c.Writers = 4
	}
	if c.InFlight <= 0 {
		c.InFlight = 64
	}
	if len(c.Subscribers) == 0 {
		c.Subscribers = []int{1, 10, 100, 1000}
	}
	if c.MaxRemote <= 0 {
		c.MaxRemote = 100
	}
	if len(c.Modes) == 0 {
		c.Modes = []Mode{Remote, InProcess}
	}
	if c.Duration < 0 {
		return c, fmt.Errorf("duration %v: want a positive duration, or zero to run for a number of sets", c.Duration)
	}
	if c.Changes <= 0 {
		c.Changes = 20_000
		if c.Duration > 0 {
			c.Changes = 1_000_000
		}
	}
	if c.AppendSets <= 0 {
		c.AppendSets = 200_000
		if c.Duration > 0 {
			c.AppendSets = 10_000_000
		}
	}
	if c.BaselineMessages <= 0 {
		c.BaselineMessages = 200_000
	}
	if c.HalfRateM <= 0 {
		c.HalfRateM = 100
	}
	if c.Endpoints <= 0 {
		c.Endpoints = 100_000
	}
	if c.Heartbeats <= 0 {
		c.Heartbeats = 200_000
	}
	if c.HeartbeatsInFlight <= 0 {
		c.HeartbeatsInFlight = 64
	}
	if c.MemoryContacts <= 0 {
		c.MemoryContacts = 1_000_000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	for _, m := range c.Subscribers {
		if m <= 0 {
			return c, fmt.Errorf("subscribers %d: want a positive number", m)
		}
	}
	for _, m := range c.Modes {
		if m != Remote && m != InProcess {
			return c, fmt.Errorf("mode %q: want %q or %q", m, Remote, InProcess)
		}
	}
	return c, nil
}
