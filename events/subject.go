package events

import "strings"

// Subject prefixes of the log and the feed. A contact's subject is the prefix
// followed by its token.
const (
	EventsPrefix  = "presence.events."  // the log, PRESENCE
	ChangesPrefix = "presence.changes." // the feed, PRESENCE_CHANGES
)

// EventSubject returns the log subject of a contact.
func EventSubject(contact string) string { return EventsPrefix + Token(contact) }

// ChangeSubject returns the feed subject of a contact.
func ChangeSubject(contact string) string { return ChangesPrefix + Token(contact) }

// ContactOf returns the contact ID of a subject made of prefix and one token.
func ContactOf(subject, prefix string) (string, error) {
	token, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return "", &ValueError{Field: "subject", Value: quote(subject), Err: ErrInvalidToken,
			Reason: "it does not start with " + quote(prefix)}
	}
	return ParseToken(token)
}
