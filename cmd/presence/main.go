// Command presence is the presence engine and its client: `presence serve` runs
// the engine; set, status, self and watch talk to it over NATS.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal a second one kills the process at once, as usual.
	context.AfterFunc(ctx, stop)
	// A closed pipe (presence replay | head) makes writes fail with EPIPE, which
	// the commands take as the reader having had enough, instead of a signal.
	signal.Ignore(syscall.SIGPIPE)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}
