package engine

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// What the tests of package engine_test reach inside the engine.

var (
	ConflictWait     = conflictWait
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

const LockFile = lockFile

// SetClock sets the clock of the writer's event times.
func (w *Writer) SetClock(now func() time.Time) { w.cfg.Now = now }

// Repairing reports whether a repair of a damaged projection runs.
func (e *Engine) Repairing() bool { return e.repairing.Load() }

// Server is the embedded nats-server, nil with an external one.
func (e *Engine) Server() *server.Server { return e.server }
