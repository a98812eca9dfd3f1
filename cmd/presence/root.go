package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
)

// usageError marks a mistake on the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode prints err on one line and returns the process's exit code: 0 for
// none, 2 for bad input (a usage mistake, a value the service refused with a
// 400, or a query of the log that cannot be answered as asked), 1 for anything
// else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "presence: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	var u usageError
	if errors.As(err, &u) || errors.Is(err, client.ErrBadRequest) || errors.Is(err, audit.ErrBadQuery) {
		return 2
	}
	return 1
}

// run is the whole program: main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "presence",
		Short: "An event-sourced presence engine on NATS JetStream",
		Long: `presence tracks whether each contact is online, busy, away, on the phone or
offline (the MISTATUS states of Office Communicator 2007) and tells subscribers
when that changes. Every change is an event in a JetStream stream; a Pebble
projection folds them into current state.

"presence serve" runs the engine; the other commands are clients over NATS.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       engine.Version,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q; see presence --help", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Every command's flag errors (unknown, bad value, missing value) come
	// here: say where the command's flags are listed.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
	root.AddCommand(newServe(), newSet(), newStatus(), newSelf(), newWatch(), newReplay(), newReport(), newVerify(), newRebuild(), newAuth(), newBench(),
		newSignIn(), newHeartbeat(), newSignOut(), newPrefer(), newSettings())
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %s (got %s); see %s --help", cmd.Name(), names,
				count(len(args), "argument", "arguments"), cmd.CommandPath())}
		}
		return nil
	}
}

// clientFlags are the flags of every client command.
type clientFlags struct {
	server         string
	timeout        time.Duration
	json           bool
	user, password string
	tlsCA          string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	def := os.Getenv("NATS_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	cmd.Flags().StringVar(&f.server, "server", def, "NATS server URL ($NATS_URL when set)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for an answer")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	cmd.Flags().StringVar(&f.user, "user", os.Getenv("NATS_USER"), "user to log in as, when the server asks (default $NATS_USER)")
	cmd.Flags().StringVar(&f.password, "password", os.Getenv("NATS_PASSWORD"), "password of --user (default $NATS_PASSWORD)")
	cmd.Flags().StringVar(&f.tlsCA, "tls-ca", os.Getenv("NATS_CA"), "PEM file of the CA that signed the server's TLS certificate (default $NATS_CA)")
}

// connect opens a connection to the server, with an error that says what to do.
func (f *clientFlags) connect(name string) (*nats.Conn, error) {
	if f.timeout <= 0 {
		return nil, usageError{fmt.Errorf("--timeout %s: want a duration above 0, such as 5s", f.timeout)}
	}
	opts := []nats.Option{nats.Name("presence " + name), nats.Timeout(f.timeout),
		// Refusals arrive asynchronously; the commands report them from
		// LastError, not on the process's stderr.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	user := f.user
	if u, err := url.Parse(f.server); err == nil && u.User != nil && user == "" {
		user = u.User.Username()
	}
	if f.user != "" {
		opts = append(opts, nats.UserInfo(f.user, f.password))
	}
	if user != "" {
		// Each user may receive only on its own inboxes.
		opts = append(opts, nats.CustomInboxPrefix(client.InboxPrefix(user)))
	}
	if f.tlsCA != "" {
		opts = append(opts, nats.RootCAs(f.tlsCA))
	}
	nc, err := nats.Connect(f.server, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %v (is `presence serve` running? --server or $NATS_URL choose another)", f.server, err)
	}
	return nc, nil
}

func (f *clientFlags) client(name string) (*client.Client, *nats.Conn, error) {
	nc, err := f.connect(name)
	if err != nil {
		return nil, nil, err
	}
	c := client.New(nc)
	c.Timeout = f.timeout
	return c, nc, nil
}
