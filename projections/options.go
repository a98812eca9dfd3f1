package projections

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/presence-engine/presence/events"
)

// Options configure a Projection. The zero value is usable.
type Options struct {
	// FS is the filesystem Pebble stores in. Zero means the OS filesystem; tests
	// use vfs.NewMem or vfs.NewCrashableMem.
	FS vfs.FS
	// Logger receives the projection's and Pebble's messages. Zero means
	// slog.Default().
	Logger *slog.Logger
	// CacheSize is Pebble's block cache in bytes. Zero means Pebble's default (8 MiB).
	CacheSize int64
	// StateCache is how many contacts' states are kept in memory for reads
	// (about 200 bytes each, beside the contact ID and name): the states read
	// last, kept current by the fold (at least 64). Zero means 65536;
	// negative, none.
	StateCache int
	// EventListener is told what happens to the projection.
	EventListener EventListener
	// DisableWAL skips Pebble's write-ahead log: for a store that is thrown away
	// after a crash anyway, such as the fresh fold of a verify.
	DisableWAL bool

	errorIfNotExists bool // reopening a store that must be there
}

// EventListener holds the functions a projection calls as things happen to
// it, each optional, as Pebble's EventListener does. They are called on the
// goroutine where it happened, and must not block.
type EventListener struct {
	// Folded is called with every event the fold applies and its log
	// sequence, in log order, before the batch holding it commits: an audit
	// sees the events the projection is made of.
	Folded func(seq uint64, e events.Event)
	// Corrupt is called when a read or the fold finds the store damaged (the
	// error wraps ErrCorrupt): whoever set it rebuilds the store. The read
	// fails all the same, and the Follower tries the fold again after a pause
	// rather than stop. Unset, the Follower stops with the error.
	Corrupt func(error)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.StateCache == 0 {
		o.StateCache = 1 << 16
	}
	return o
}

// pebbleLogger sends Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

// PebbleLogger sends the messages of a Pebble store to l, as the projection's
// own go: what Pebble says to inform at Debug, its errors at Error. It is for
// stores kept beside a projection, such as the benchmark's.
func PebbleLogger(l *slog.Logger) pebble.Logger { return pebbleLogger{l} }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble when it cannot go on; Pebble expects it not to
// return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.l.Error(msg)
	panic(msg)
}
