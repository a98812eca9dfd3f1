package client_test

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/events"
)

// Example is what a backend service does: connect, set a status, subscribe
// to the changes, and read the contact's current status in the handler.
func Example() {
	url, stop, err := enginetest.Background() // an engine, as `presence serve` runs one
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx := context.Background()

	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	svc := client.New(nc)

	// Subscribe from now on. Each change carries the previous visible status
	// only, as OnContactStatusChange does; the handler reads the current one,
	// which is never older than the change.
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: nc, Reader: svc})
	if err != nil {
		fmt.Println(err)
		return
	}
	subCtx, cancel := context.WithCancel(ctx)
	seen, done := make(chan string), make(chan error, 1)
	go func() {
		done <- sub.Run(subCtx, func(ctx context.Context, c client.Change) error {
			cur, err := c.Current(ctx)
			if err != nil {
				return err // handed over again, after a pause
			}
			seen <- fmt.Sprintf("%s: %s -> %s (online: %v)", c.Name, c.Previous, cur.Status, cur.Status.IsOnline())
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	<-sub.Ready()

	// Set busy, then invisible, which everyone else sees as offline. A request
	// ID makes a retry safe: it is answered as the first time.
	for _, st := range []events.Status{events.Busy, events.Invisible} {
		res, err := svc.Set(ctx, client.SetRequest{Contact: "sip:alice@contoso.com", Status: st, Name: "Alice", RequestID: "alice-" + st.String()})
		if err != nil {
			fmt.Println(err)
			return
		}
		// Read your own write: the set's seq as min_seq.
		self, _ := svc.Self(ctx, res.Contact, res.Seq)
		fmt.Printf("set %s; Alice sees herself %s\n", res.Status, self.Status)
		fmt.Println(<-seen)
	}
	// Output:
	// set busy; Alice sees herself busy
	// Alice: unknown -> busy (online: true)
	// set invisible; Alice sees herself invisible
	// Alice: busy -> offline (online: false)
}

// ExampleSubscriber hands each visible change, from the start of the feed, to
// a handler that reads the current status: never older than the change, and
// here, once every set is in, the last one.
func ExampleSubscriber() {
	url, stop, err := enginetest.Background()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx := context.Background()
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	svc := client.New(nc)
	var last uint64
	for _, st := range []events.Status{events.Online, events.Away, events.Invisible, events.Offline, events.Busy} {
		res, err := svc.Set(ctx, client.SetRequest{Contact: "sip:bob@contoso.com", Status: st, Name: "Bob"})
		if err != nil {
			fmt.Println(err)
			return
		}
		last = res.Seq
	}
	// A set's seq is a log sequence: Self reads your own write with it.
	if _, err := svc.Self(ctx, "sip:bob@contoso.com", last); err != nil { // every set is in
		fmt.Println(err)
		return
	}

	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: nc, Reader: svc, Start: client.StartAll()})
	if err != nil {
		fmt.Println(err)
		return
	}
	subCtx, cancel := context.WithCancel(ctx)
	seen := 0
	err = sub.Run(subCtx, func(ctx context.Context, c client.Change) error {
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
