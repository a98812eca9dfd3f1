package events_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/presence-engine/presence/events"
)

func ExampleParseStatus() {
	for _, in := range []string{"away", "MISTATUS_BE_RIGHT_BACK", "mistatus_on_the_phone", "0x0072", "18", "lunch"} {
		s, err := events.ParseStatus(in)
		if errors.Is(err, events.ErrUnknownStatus) {
			fmt.Printf("%-22s -> not a status\n", in)
			continue
		}
		fmt.Printf("%-22s -> %s, %s, 0x%04X\n", in, s, s.Constant(), s.Code())
	}
	// Output:
	// away                   -> away, MISTATUS_AWAY, 0x0022
	// MISTATUS_BE_RIGHT_BACK -> be-right-back, MISTATUS_BE_RIGHT_BACK, 0x000E
	// mistatus_on_the_phone  -> on-the-phone, MISTATUS_ON_THE_PHONE, 0x0032
	// 0x0072                 -> do-not-disturb, MISTATUS_DO_NOT_DISTURB, 0x0072
	// 18                     -> idle, MISTATUS_IDLE, 0x0012
	// lunch                  -> not a status
}

func ExampleStatus_Settable() {
	for _, s := range []events.Status{events.Away, events.Idle, events.Unknown, events.LocalFindingServer} {
		fmt.Printf("%s: user %v, endpoint %v\n", s,
			s.Settable(events.CauseUser) == nil, s.Settable(events.CauseEndpoint) == nil)
	}
	// Output:
	// away: user true, endpoint true
	// idle: user false, endpoint true
	// unknown: user false, endpoint false
	// local-finding-server: user false, endpoint false
}

func ExampleStatus_Visible() {
	for _, s := range []events.Status{events.Online, events.Invisible, events.Offline, events.Idle, events.Unknown} {
		fmt.Printf("%-9s reads as %-7s online: %v\n", s, s.Visible(), s.IsOnline())
	}
	// Output:
	// online    reads as online  online: true
	// invisible reads as offline online: false
	// offline   reads as offline online: false
	// idle      reads as idle    online: true
	// unknown   reads as unknown online: false
}

func ExampleStatus_IsOnline() {
	// Every connected state has bit 0x2 set, except that invisible is offline to
	// others.
	for _, s := range []events.Status{events.Busy, events.Away, events.Invisible, events.LocalConnectingToServer} {
		fmt.Printf("%s (0x%04X): %v\n", s, s.Code(), s.IsOnline())
	}
	// Output:
	// busy (0x000A): true
	// away (0x0022): true
	// invisible (0x0006): false
	// local-connecting-to-server (0x0200): false
}

func ExampleToken() {
	fmt.Println(events.Token("sip:alice@contoso.com"))
	fmt.Println(events.EventSubject("sip:alice@contoso.com"))
	fmt.Println(events.ChangeSubject("sip:zoë@example.com"))
	// Output:
	// sip:alice@contoso%2Ecom
	// presence.events.sip:alice@contoso%2Ecom
	// presence.changes.sip:zo%C3%AB@example%2Ecom
}

func ExampleParseToken() {
	id, err := events.ParseToken("sip:alice@contoso%2Ecom")
	fmt.Println(id, err)

	// Only the one spelling Token writes is accepted.
	for _, token := range []string{"sip:alice@contoso%2ecom", "%61lice", "sip:alice@contoso.com"} {
		_, err := events.ParseToken(token)
		fmt.Println(token, errors.Is(err, events.ErrInvalidToken))
	}
	// Output:
	// sip:alice@contoso.com <nil>
	// sip:alice@contoso%2ecom true
	// %61lice true
	// sip:alice@contoso.com true
}

func ExampleChangeOf() {
	at := time.Date(2026, 11, 24, 5, 25, 57, 0, time.UTC)
	log := []events.Event{
		{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: events.Unknown, Status: events.Online, At: at, Cause: events.CauseUser},
		{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: events.Online, Status: events.Invisible, At: at, Cause: events.CauseUser},
		{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: events.Invisible, Status: events.Offline, At: at, Cause: events.CauseEngine},
		{Contact: "sip:alice@contoso.com", Name: "Alice", Previous: events.Offline, Status: events.Away, At: at, Cause: events.CauseUser},
	}
	// The feed position of an entry counts the visible changes: the log's
	// sequence counts the hidden one too.
	var feed uint64
	for i, e := range log {
		seq := uint64(i + 1)
		c, ok := events.ChangeOf(e)
		if !ok {
			fmt.Printf("log seq %d: %s -> %s: not in the feed\n", seq, e.Previous, e.Status)
			continue
		}
		feed++
		fmt.Printf("log seq %d: %s -> %s: feed position %d: %s\n", seq, e.Previous, e.Status, feed, c.Encode())
	}
	// Output:
	// log seq 1: unknown -> online: feed position 1: {"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"unknown","at":"2026-11-24T05:25:57Z"}
	// log seq 2: online -> invisible: feed position 2: {"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"online","at":"2026-11-24T05:25:57Z"}
	// log seq 3: invisible -> offline: not in the feed
	// log seq 4: offline -> away: feed position 3: {"v":2,"contact":"sip:alice@contoso.com","name":"Alice","previous":"offline","at":"2026-11-24T05:25:57Z"}
}
