package engine

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-io/nats-server/v2/server"
)

// What the tests of package engine_test reach inside the engine.

var (
	ErrorCode        = errorCode
	StartServer      = startServer
	LogStreamConfig  = logStreamConfig
	FeedStreamConfig = feedStreamConfig
	NewFeed          = newFeed
)

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

// Repairing reports whether a repair of a damaged projection runs.
func (e *Engine) Repairing() bool { return e.repairing.Load() }

// Server is the embedded nats-server, nil with an external one.
func (e *Engine) Server() *server.Server { return e.server }
