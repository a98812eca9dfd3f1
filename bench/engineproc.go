package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/engine"
)

// engineUnderTest is the engine a run measures: a child process, or an Engine in
// this process.
type engineUnderTest struct {
	url string

	// child process
	cmd    *exec.Cmd
	exited chan struct{}

	// in process
	e      *engine.Engine
	cancel context.CancelFunc
	done   chan error
}

// startEngine starts the engine with its data in dir and waits until it serves
// and its projection has caught up.
func startEngine(ctx context.Context, cfg Config, dir string) (*engineUnderTest, error) {
	if len(cfg.EngineCommand) == 0 {
		// No bound on each contact's sets: the writers of a small workload set
		// each contact far faster than people do, and the bound is not what
		// is measured.
		opts := engine.Options{NATSURL: cfg.NATSURL, Logger: cfg.Logger, ContactRate: -1, Streams: engine.StreamOptions{Partitions: cfg.Partitions}}
		if cfg.NATSURL == "" {
			opts.Listen = "127.0.0.1:0"
		}
		e, err := engine.Open(filepath.Join(dir, "engine"), opts)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithCancel(context.Background())
		u := &engineUnderTest{e: e, cancel: cancel, done: make(chan error, 1), url: e.ClientURL()}
		go func() { u.done <- e.Run(rctx) }()
		wctx, wcancel := context.WithTimeout(ctx, cfg.Timeout)
		defer wcancel()
		if err := e.WaitReady(wctx); err != nil {
			u.stop()
			return nil, fmt.Errorf("engine not ready: %w", err)
		}
		return u, nil
	}

	args := append(append([]string(nil), cfg.EngineCommand[1:]...),
		"--data", filepath.Join(dir, "engine"), "--log-format", "json", "--log-level", "info", "--contact-rate", "0")
	if cfg.Partitions != 0 {
		args = append(args, "--partitions", strconv.Itoa(cfg.Partitions))
	}
	if cfg.NATSURL != "" {
		args = append(args, "--nats", cfg.NATSURL)
	} else {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	cmd := exec.Command(cfg.EngineCommand[0], args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the engine (%s): %w", strings.Join(cmd.Args, " "), err)
	}
	u := &engineUnderTest{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan map[string]any, 16)
	var tail tailLines
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			tail.add(sc.Text())
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				select {
				case lines <- m:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(u.exited)
	}()
	timeout := time.NewTimer(cfg.Timeout)
	defer timeout.Stop()
	// The two lines may come in either order.
	for caughtUp := false; !caughtUp || u.url == ""; {
		select {
		case m := <-lines:
			switch m["msg"] {
			case "presence engine serving":
				u.url, _ = m["url"].(string)
			case "projection caught up with the log":
				caughtUp = true
			}
		case <-u.exited:
			return nil, fmt.Errorf("the engine exited before it was ready: %s", tail.String())
		case <-timeout.C:
			u.stop()
			return nil, fmt.Errorf("the engine was not ready within %s: %s", cfg.Timeout, tail.String())
		case <-ctx.Done():
			u.stop()
			return nil, ctx.Err()
		}
	}
	return u, nil
}

// peakRSS returns the child's peak resident memory, 0 in process.
func (u *engineUnderTest) peakRSS() int64 {
	if u.cmd == nil {
		return 0
	}
	return vmHWM(u.cmd.Process.Pid)
}

// rss returns the engine's resident memory now: the child's, or this
// process's when the engine runs here.
func (u *engineUnderTest) rss() int64 {
	if u.cmd == nil {
		return vmRSS(0)
	}
	return vmRSS(u.cmd.Process.Pid)
}

// metrics reads the engine's counters from the service's stats.
func (u *engineUnderTest) metrics(nc *nats.Conn) (engine.Metrics, error) {
	if u.e != nil {
		return u.e.Metrics(), nil
	}
	msg, err := nc.Request("$SRV.STATS."+engine.ServiceName, nil, 2*time.Second)
	if err != nil {
		return engine.Metrics{}, err
	}
	var stats struct {
		Endpoints []struct {
			Data engine.Metrics `json:"data"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		return engine.Metrics{}, err
	}
	if len(stats.Endpoints) == 0 {
		return engine.Metrics{}, errors.New("the service reported no endpoints")
	}
	return stats.Endpoints[0].Data, nil
}

// stop ends the engine: SIGTERM for a child, then SIGKILL if it lingers.
func (u *engineUnderTest) stop() error {
	if u.e != nil {
		u.cancel()
		err := <-u.done
		return errors.Join(err, u.e.Close())
	}
	if u.cmd == nil || u.cmd.Process == nil {
		return nil
	}
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-u.exited:
	case <-time.After(30 * time.Second):
		_ = u.cmd.Process.Kill()
		<-u.exited
	}
	return nil
}

// cpuClock is processor time so far of this process and of the engine's
// child process (zero in process), in clock ticks.
type cpuClock struct{ self, child int64 }

func (u *engineUnderTest) cpuNow() cpuClock {
	c := cpuClock{self: cpuTicks(0)}
	if u.cmd != nil {
		c.child = cpuTicks(u.cmd.Process.Pid)
	}
	return c
}

// perDelivery is the processor time since c, per delivery, in microseconds.
func (u *engineUnderTest) perDelivery(c cpuClock, deliveries int64) CPU {
	if deliveries <= 0 {
		return CPU{}
	}
	now := u.cpuNow()
	const usPerTick = 1e6 / clockTicks
	return CPU{Bench: float64(now.self-c.self) * usPerTick / float64(deliveries),
		Engine: float64(now.child-c.child) * usPerTick / float64(deliveries)}
}

// clockTicks is the unit of the times in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// cpuTicks reads a process's user and system time from /proc, in clock ticks;
// 0 where there is no /proc.
func cpuTicks(pid int) int64 {
	b, err := readProc(pid, "stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after it, utime and stime being the 14th and 15th of the line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(f[11], 10, 64)
	sys, _ := strconv.ParseInt(f[12], 10, 64)
	return user + sys
}

// readProc reads /proc/PID/name, or /proc/self/name for pid 0.
func readProc(pid int, name string) ([]byte, error) {
	dir := "self"
	if pid > 0 {
		dir = strconv.Itoa(pid)
	}
	return os.ReadFile("/proc/" + dir + "/" + name)
}

// vmHWM reads a process's peak resident set size from /proc; 0 where there is
// no /proc.
func vmHWM(pid int) int64 {
	return procStatusKB(pid, "VmHWM:") * 1024
}

// vmRSS reads a process's resident set size from /proc; 0 where there is no
// /proc.
func vmRSS(pid int) int64 {
	return procStatusKB(pid, "VmRSS:") * 1024
}

func procStatusKB(pid int, field string) int64 {
	b, err := readProc(pid, "status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeakRSS starts this process's peak resident memory afresh (Linux), so
// that the next vmHWM(0) measures from now.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// tailLines keeps the last lines a child wrote, for errors.
type tailLines struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailLines) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > 10 {
		t.lines = t.lines[1:]
	}
}

func (t *tailLines) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}
