package main

import (
	"fmt"

	"github.com/presence-engine/presence/projections"
)

// contactText is a contact as the commands print it for people: the friendly
// name and the contact ("Alice <sip:alice@contoso.com>"), or the contact alone
// when it has no name.
func contactText(contact, name string) string {
	if name == "" {
		return contact
	}
	return name + " <" + contact + ">"
}

// count is n and the noun that goes with it, one or many: "1 contact",
// "0 contacts", "2 feed entries". Every count the commands print goes through it.
func count[N ~int | ~int64 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// digestText is a projection's digest as the commands print it:
// "seq 3, 1 contact, sha256:...".
func digestText(d projections.Digest) string {
	return fmt.Sprintf("seq %d, %s, %s", d.Seq, count(d.Contacts, "contact", "contacts"), d.Sum)
}
