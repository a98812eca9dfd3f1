package engine

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/presence-engine/presence/events"
)

// What the tests of package engine_test reach inside the engine.

var (
	ErrorCode        = errorCode
	StartServer      = startServer
	LogStreamConfig  = logStreamConfig
	FeedStreamConfig = feedStreamConfig
	NewFeed          = newFeed
	NewSealer        = newSealer
)

// SetConsumerLimits sets how many consumers the guard lets each account and
// all roles have on a stream, and returns a func that puts them back.
func SetConsumerLimits(account, roles int) func() {
	a, r := accountConsumers, roleConsumers
	accountConsumers, roleConsumers = account, roles
	return func() { accountConsumers, roleConsumers = a, r }
}

// CheckConsumerRequest is the guard's check of a consumer's creation asked
// for on subject, what follows "$JS.API.CONSUMER.CREATE.", by an account
// through an import.
func CheckConsumerRequest(subject string, data []byte) error {
	stream, _, _ := strings.Cut(subject, ".")
	if err := checkConsumerStream(stream); err != nil {
		return err
	}
	req, err := creation(stream, data)
	if err != nil {
		return err
	}
	_, err = guardedCreate(stream, req, "someone", false)
	return err
}

// Seal and Open are the sealer's seal and open.
func (s *sealer) Seal(logSeq uint64, data []byte) (string, error) { return s.seal(logSeq, data) }
func (s *sealer) Open(ref string, data []byte) (uint64, error)    { return s.open(ref, data) }

type (
	ServerConfig = serverConfig
	FeedConfig   = feedConfig
)

const (
	LockFile = lockFile
	IDFile   = idFile
)

// Hook has the owner's decider set the clock of its event times (if now is
// not nil) and reach the log through wrap(its JetStream) (if wrap is not nil),
// from its next set on. It fails while this engine does not own the log.
func (w *Writer) Hook(now func() time.Time, wrap func(jetstream.JetStream) jetstream.JetStream) error {
	o := &op{done: make(chan struct{}), hook: func() {
		if now != nil {
			w.cfg.Now = now
		}
		if wrap != nil {
			w.js = wrap(w.js)
		}
	}}
	w.ops <- o
	<-o.done
	return o.err
}

var RequestKey = requestKey

// OpenLogRef opens the log reference of a feed entry (its
// events.LogRefHeader and its data) under the key the engines on js share.
func OpenLogRef(ctx context.Context, js jetstream.JetStream, ref string, data []byte) (uint64, error) {
	s, err := SealOf(ctx, js)
	if err != nil {
		return 0, err
	}
	return s.open(ref, data)
}

// SealLogRef seals logSeq as the log reference of the feed entry data, under
// the key the engines on js share.
func SealLogRef(ctx context.Context, js jetstream.JetStream, logSeq uint64, data []byte) (string, error) {
	s, err := SealOf(ctx, js)
	if err != nil {
		return "", err
	}
	return s.seal(logSeq, data)
}

// SealOf returns the sealer of the engines on js.
func SealOf(ctx context.Context, js jetstream.JetStream) (*sealer, error) {
	kv, err := js.KeyValue(ctx, events.EngineBucket)
	if err != nil {
		return nil, err
	}
	key, err := sealKey(ctx, kv, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return newSealer(key)
}

// Repairing reports whether a repair of a damaged projection runs.
func (e *Engine) Repairing() bool { return e.repairing.Load() }

// Server is the embedded nats-server, nil with an external one.
func (e *Engine) Server() *server.Server { return e.server }

// SetMissingPartitionWait sets how long an engine looks again for a missing
// partition stream of a log that exists, and returns the setting it replaced.
func SetMissingPartitionWait(d time.Duration) time.Duration {
	was := missingPartitionWait
	missingPartitionWait = d
	return was
}

// SetProgressEvery sets how often a verify or rebuild reports its
// progress, and returns the setting it replaced.
func SetProgressEvery(d time.Duration) time.Duration {
	was := progressEvery
	progressEvery = d
	return was
}

// ExpiryChecks returns how many times the owner looked for leases that
// ended: a test that moved its clock waits for two more to know the owner
// looked at the new time.
func (w *Writer) ExpiryChecks() uint64 { return w.expiryChecks.Load() }
