package projections_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// A contact goes invisible: the projection keeps the truth for the contact and
// shows everyone else offline. WaitApplied is how a reader makes sure its read
// is at least as new as the event it was told about.
func ExampleProjection_View() {
	p, err := projections.Open("projection", projections.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	e := events.Event{
		Contact: "sip:alice@contoso.com", Name: "Alice",
		Status: events.Invisible, Previous: events.Unknown,
		At: time.Date(2026, 11, 24, 5, 25, 57, 0, time.UTC), Cause: events.CauseUser,
	}
	if err := p.Apply([]projections.Record{{Seq: 1, Data: e.Encode()}}); err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.WaitApplied(ctx, 1); err != nil {
		log.Fatal(err)
	}
	view, err := p.View("sip:alice@contoso.com")
	if err != nil {
		log.Fatal(err)
	}
	self, _, err := p.State("sip:alice@contoso.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("others see:", view.Name, view.Status, "at feed position", view.Seq)
	fmt.Println("Alice sees:", self.Status, "at log seq", self.Seq)
	// Output:
	// others see: Alice offline at feed position 1
	// Alice sees: invisible at log seq 1
}
