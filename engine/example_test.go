package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// runEngine runs an engine on one machine, with its data in a temp directory,
// until stop is called.
func runEngine() (e *engine.Engine, stop func(), err error) {
	dir, err := os.MkdirTemp("", "presence-example-")
	if err != nil {
		return nil, nil, err
	}
	if e, err = engine.Open(dir, engine.Options{Listen: "127.0.0.1:0", Logger: quiet}); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop = func() { cancel(); <-done; e.Close(); os.RemoveAll(dir) }
	if err := e.WaitReady(ctx); err != nil {
		stop()
		return nil, nil, err
	}
	return e, stop, nil
}

// Example runs the engine on one machine, sets a status over NATS as any client
// would, and reads it back as everyone else sees it.
func Example() {
	e, stop, err := runEngine()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx := context.Background()

	nc, err := nats.Connect(e.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	client := engine.NewClient(nc)
	res, err := client.Set(ctx, engine.SetRequest{Contact: "sip:alice@contoso.com", Status: events.Invisible, Name: "Alice"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("set: %s -> %s, changed %v\n", res.Previous, res.Status, res.Changed)

	// Read your own write: min_seq is the set's seq.
	others, _ := client.Status(ctx, "sip:alice@contoso.com", res.Seq)
	self, _ := client.Self(ctx, "sip:alice@contoso.com", res.Seq)
	fmt.Printf("%s to others: %s (online: %v)\n", others.Name, others.Status, others.Status.IsOnline())
	fmt.Printf("%s to herself: %s\n", self.Name, self.Status)
	// Output:
	// set: unknown -> invisible, changed true
	// Alice to others: offline (online: false)
	// Alice to herself: invisible
}

// ExampleSubscriber hands each visible change to a handler, which reads the
// current status: never older than the change.
func ExampleSubscriber() {
	e, stop, err := runEngine()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx := context.Background()
	var last uint64
	for _, st := range []events.Status{events.Online, events.Away, events.Invisible, events.Offline, events.Busy} {
		res, err := e.Writer().Set(ctx, engine.SetRequest{Contact: "sip:bob@contoso.com", Status: st, Name: "Bob"})
		if err != nil {
			fmt.Println(err)
			return
		}
		last = res.Seq
	}
	// A handler reads the status as it is when it reads, at least as new as
	// the change: here, once the projection has every set, always busy.
	if err := e.Projection().WaitApplied(ctx, last); err != nil {
		fmt.Println(err)
		return
	}

	sub, err := engine.NewSubscriber(engine.SubscriberConfig{Conn: e.Conn(), Reader: e.Reader(), Start: engine.StartAll(), Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	subCtx, cancel := context.WithCancel(ctx)
	seen := 0
	err = sub.Run(subCtx, func(ctx context.Context, c engine.Change) error {
		cur, err := c.Current(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("%s: Status Changed EVENT: Old Status-%s New Status:%s\n", c.Name, c.Previous, cur.Status)
		if seen++; seen == 4 { // away -> invisible shows as away -> offline; invisible -> offline is no change
			cancel()
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// Bob: Status Changed EVENT: Old Status-unknown New Status:busy
	// Bob: Status Changed EVENT: Old Status-online New Status:busy
	// Bob: Status Changed EVENT: Old Status-away New Status:busy
	// Bob: Status Changed EVENT: Old Status-offline New Status:busy
}
