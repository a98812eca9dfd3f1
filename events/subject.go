package events

import (
	"strconv"
	"strings"
)

// Stream names: the log, the feed, and the key-value buckets of the engines.
const (
	LogStream  = "PRESENCE"         // the log: every event, the truth; engine and auditors only
	FeedStream = "PRESENCE_CHANGES" // the feed: visible changes only; for subscribers
	// RequestsBucket is the key-value bucket where the writer keeps its answers
	// to request IDs for the deduplication window.
	RequestsBucket = "PRESENCE_REQUESTS"
	// OwnersBucket is the key-value bucket whose key OwnerKey(p) names the
	// engine that owns partition p of the log (the one that appends to it):
	// held by a lease, with the bucket's TTL.
	OwnersBucket = "PRESENCE_OWNERS"
	// EngineBucket is the key-value bucket of what engines share and nobody
	// else may read: its key FeedSealKey holds the key that seals each feed
	// entry's LogRefHeader, drawn by the first engine.
	EngineBucket = "PRESENCE_ENGINE"
	FeedSealKey  = "feed-seal"
)

// LogRefHeader is the header of a feed entry that tells engines which log event
// the entry came from, so that the feed resumes after a restart: the log
// sequence, sealed (AES-GCM, a fresh nonce each entry) under the key in
// EngineBucket. Subscribers read every header of an entry, so it is opaque to
// them: no two entries' refs compare, and none says anything of the log.
const LogRefHeader = "Presence-Log-Ref"

// Subject prefixes of the log and the feed. A contact's subject is the prefix
// followed by its token.
const (
	EventsPrefix  = "presence.events."  // the log, LogStream
	ChangesPrefix = "presence.changes." // the feed, FeedStream
	// LivePrefix is where the engine repeats each feed entry on core NATS once
	// the feed has stored it, for subscribers that follow the feed without a
	// JetStream consumer each.
	LivePrefix = "presence.live."
)

// Subjects of the service. A contact's subject is the prefix followed by its
// token, so that NATS permissions can restrict each user to their own.
const (
	SetPrefix    = "presence.set."
	StatusPrefix = "presence.status."
	SelfPrefix   = "presence.self."
	// A contact's endpoints sign in, heartbeat and sign out on these, each
	// followed by the contact's token (issue 20's endpoints).
	SignInPrefix    = "presence.endpoint.signin."
	HeartbeatPrefix = "presence.endpoint.heartbeat."
	ReportPrefix    = "presence.endpoint.report."
	// A contact's preferred status and settings, followed by its token.
	PreferPrefix   = "presence.prefer."
	SettingsPrefix = "presence.settings."
	SignOutPrefix  = "presence.endpoint.signout."
	// StatusesSubject reads the visible status of many contacts at once.
	StatusesSubject = "presence.statuses"
)

// OwnerSetPrefix is where an engine that does not own a contact's partition
// passes a set on to its owner (OwnerSetSubject): engines only.
const OwnerSetPrefix = "presence.owner.set."

// OwnerEndpointPrefix is where an engine that does not own a contact's
// partition passes an endpoint's request on to its owner
// (OwnerEndpointSubject): engines only.
const OwnerEndpointPrefix = "presence.owner.endpoint."

// OwnerEndpointSubject returns where an endpoint's request op (signin,
// heartbeat, signout) of contact is passed on to the owner of its partition
// p: the op, the partition, then the contact's token.
func OwnerEndpointSubject(op string, p int, contact string) string {
	return OwnerEndpointPrefix + op + "." + strconv.Itoa(p) + "." + Token(contact)
}

// OwnerKey returns the key of OwnersBucket that names partition p's owner.
func OwnerKey(p int) string { return "partition." + strconv.Itoa(p) }

// EngineKey returns the key of OwnersBucket by which the engine id says it can
// own partitions: the engines count each other by these keys, to share the
// partitions out.
func EngineKey(id string) string { return "engine." + id }

// OwnerSetSubject returns where a set of contact is passed on to the owner of
// its partition p: the partition, then the contact's token.
func OwnerSetSubject(p int, contact string) string {
	return OwnerSetPrefix + strconv.Itoa(p) + "." + Token(contact)
}

// Admin subjects: operations on an engine's own projection, for operators.
const (
	AdminPrefix    = "presence.admin."
	DigestSubject  = AdminPrefix + "digest"
	VerifySubject  = AdminPrefix + "verify"
	RebuildSubject = AdminPrefix + "rebuild"
	// ProgressPrefix, then the token (Token) of the reply subject of a verify
	// or rebuild, is where the engine reports its progress while it works:
	// not on the reply subject itself, to which a server may let it answer
	// once only (allow_responses), but on a subject of its own that the
	// requester (an auditor or operator) may subscribe to.
	ProgressPrefix = "presence.progress."
)

// ConsumerPrefix, then an account, an op of the JetStream consumer API in
// lower case (create, info, reset, delete) and what follows
// "$JS.API.CONSUMER.<OP>." (the stream, the consumer's name, its filter), is
// where the engine's guard does that op for a role on a server with
// accounts: roles reach the streams from accounts of their own, whose
// imports map those ops here, each naming its account. The guard creates
// pull consumers only, so that no one can have the server deliver a stream
// where they may not publish, and lets each account touch its own consumers
// only.
const ConsumerPrefix = "presence.consumer."

// NoAccountInfoSubject is what an account of a role imports as
// "$JS.API.INFO", so that the server's own answer (JetStream is not enabled
// in the account) does not answer first the JetStream requests the account
// imports. Nothing answers it: the account's JetStream usage is no role's to
// read, it grows with every event, hidden ones too.
const NoAccountInfoSubject = "presence.jetstream.noinfo"

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
