package client

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// What the tests of package client_test reach inside the package.

// DropRepeats makes s lose the repeats of the feed entries drop returns true
// for, as a slow connection would.
func (s *Subscriber) DropRepeats(drop func(feedSeq uint64) bool) { s.dropLive = drop }

// SetFeedWindow shortens how long a feed that looks as if it went back is
// read again before that counts.
func (s *Subscriber) SetFeedWindow(d time.Duration) { s.feed.window = d }

// WrapJetStream makes s reach the feed through wrap(its JetStream).
func (s *Subscriber) WrapJetStream(wrap func(jetstream.JetStream) jetstream.JetStream) {
	s.js = wrap(s.js)
}

// SetLookEvery sets how often a subscription reading a consumer looks at the
// feed on its own.
func (s *Subscriber) SetLookEvery(d time.Duration) { s.lookEvery = d }
