package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

// Example runs the engine on one machine, sets a status over NATS as any client
// would, and reads it back as everyone else sees it.
func Example() {
	dir, err := os.MkdirTemp("", "presence-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	e, err := engine.Open(dir, engine.Options{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := e.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	nc, err := nats.Connect(e.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	svc := client.New(nc)
	res, err := svc.Set(ctx, client.SetRequest{Contact: "sip:alice@contoso.com", Status: events.Invisible, Name: "Alice"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("set: %s -> %s, changed %v\n", res.Previous, res.Status, res.Changed)

	// Read your own write: self's min_seq is the set's seq, a log sequence.
	// What others see then needs none: the projection has the set. (Their
	// min_seq is a feed position, which a subscriber has from a change.)
	self, _ := svc.Self(ctx, "sip:alice@contoso.com", res.Seq)
	others, _ := svc.Status(ctx, "sip:alice@contoso.com", 0)
	fmt.Printf("%s to others: %s (online: %v)\n", others.Name, others.Status, others.Status.IsOnline())
	fmt.Printf("%s to herself: %s\n", self.Name, self.Status)
	// Output:
	// set: unknown -> invisible, changed true
	// Alice to others: offline (online: false)
	// Alice to herself: invisible
}
