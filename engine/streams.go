package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
)

// Stream names.
const (
	LogStream  = "PRESENCE"         // the log: every event, the truth
	FeedStream = "PRESENCE_CHANGES" // the feed: visible changes only
)

// StreamOptions shape the streams the engine creates.
type StreamOptions struct {
	// Replicas of each stream when the engine creates it. Zero means 3 where the
	// server is part of a cluster with room for them, else 1.
	Replicas int
	// Duplicates is the log's deduplication window: a request retried with the
	// same request_id within it is stored once. Zero means 2 minutes.
	Duplicates time.Duration
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	return o
}

// LogStreamConfig returns the configuration of the log: file storage, every event kept
// (no limits), deletes and purges refused, direct gets allowed for the writer's
// reads of a contact's last event.
func LogStreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        LogStream,
		Description: "presence: every status change (the truth, invisible included); engine and auditors only",
		Subjects:    []string{events.EventsPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.Duplicates,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		Discard:     jetstream.DiscardNew,
	}
}

// FeedStreamConfig returns the configuration of the feed: file storage, every entry
// kept. Purges are allowed: the engine re-derives the feed when the log it came
// from was recreated.
func FeedStreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        FeedStream,
		Description: "presence: visible status changes, each with the previous visible status; for subscribers",
		Subjects:    []string{events.ChangesPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.Duplicates,
		DenyDelete:  true,
		AllowDirect: true,
		Discard:     jetstream.DiscardNew,
	}
}

// EnsureStreams creates the log and the feed if they are missing. An existing
// stream is never changed: one whose configuration would break the engine's
// guarantees is reported with an error naming the setting, what it is and what
// is needed; settings that only weaken them (limits that drop old events) are
// logged as warnings.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	for _, want := range []jetstream.StreamConfig{LogStreamConfig(o), FeedStreamConfig(o)} {
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if err := createStream(ctx, js, want, logger); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("look up stream %s: %w", want.Name, err)
		}
		if err := checkStream(s.CachedInfo().Config, want, logger); err != nil {
			return err
		}
	}
	return nil
}

// createStream creates a stream; with Replicas zero it tries 3 and settles for 1
// where the server is alone or the cluster has no room.
func createStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, logger *slog.Logger) error {
	auto := cfg.Replicas == 0
	if auto {
		cfg.Replicas = 3
	}
	_, err := js.CreateStream(ctx, cfg)
	var apiErr *jetstream.APIError
	if auto && errors.As(err, &apiErr) && (apiErr.ErrorCode == 10074 || apiErr.ErrorCode == 10023 || apiErr.ErrorCode == 10005) {
		// 10074: replicas > 1 not supported in non-clustered mode; 10023:
		// insufficient resources; 10005: no suitable peers.
		cfg.Replicas = 1
		_, err = js.CreateStream(ctx, cfg)
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	logger.Info("created stream", "stream", cfg.Name, "replicas", cfg.Replicas)
	return nil
}

// IncompatibleStreamError says which setting of an existing stream breaks the
// engine's guarantees.
type IncompatibleStreamError struct {
	Stream  string
	Setting string
	Have    string
	Want    string
}

func (e *IncompatibleStreamError) Error() string {
	return fmt.Sprintf("stream %s exists with %s %s, but the engine needs %s; it is left unchanged: fix it by hand (nats stream edit) or point the engine at another server",
		e.Stream, e.Setting, e.Have, e.Want)
}

// Is makes errors.Is(err, ErrIncompatibleStream) true.
func (e *IncompatibleStreamError) Is(target error) bool { return target == ErrIncompatibleStream }

func checkStream(have, want jetstream.StreamConfig, logger *slog.Logger) error {
	bad := func(setting string, h, w any) error {
		return &IncompatibleStreamError{Stream: want.Name, Setting: setting, Have: fmt.Sprint(h), Want: fmt.Sprint(w)}
	}
	switch {
	case !slices.Equal(have.Subjects, want.Subjects):
		return bad("subjects", have.Subjects, want.Subjects)
	case have.Storage != want.Storage:
		return bad("storage", have.Storage, want.Storage)
	case have.Retention != want.Retention:
		return bad("retention", have.Retention, want.Retention)
	case have.AllowRollup:
		return bad("allow_rollup_hdrs", true, false)
	case have.Sealed:
		return bad("sealed", true, false)
	case have.Mirror != nil:
		return bad("mirror", have.Mirror.Name, "none")
	case have.MaxMsgsPerSubject > 0 && want.Name == LogStream:
		return bad("max_msgs_per_subject", have.MaxMsgsPerSubject, "-1 (a contact's history is its chain)")
	}
	if have.MaxMsgs > 0 || have.MaxBytes > 0 || have.MaxAge > 0 {
		logger.Warn("stream has limits: events past them are dropped", "stream", want.Name,
			"max_msgs", have.MaxMsgs, "max_bytes", have.MaxBytes, "max_age", have.MaxAge, "discard", have.Discard)
	}
	if want.Replicas != 0 && have.Replicas != want.Replicas {
		logger.Warn("stream has another replica count than configured; left as it is", "stream", want.Name,
			"replicas", have.Replicas, "configured", want.Replicas)
	}
	if want.Name == LogStream && (!have.DenyDelete || !have.DenyPurge) {
		logger.Warn("log allows deletes or purges: an operator can remove audit history", "stream", want.Name)
	}
	return nil
}
