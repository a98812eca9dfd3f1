package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/retry"
)

// StreamOptions shape the streams the engine creates.
type StreamOptions struct {
	// Replicas of each stream when the engine creates it. Zero means 3 where the
	// server is part of a cluster with room for them, else 1.
	Replicas int
	// Duplicates is how long a request_id is remembered: a request retried
	// within it is answered as the first time. It is the log's deduplication
	// window and the lifetime of the answers in events.RequestsBucket. Zero means 2
	// minutes.
	Duplicates time.Duration
	// OwnerTTL is how long the log stays with an owner that stopped without
	// letting go of it (it died, or was cut off from NATS) before another
	// engine takes it over: the TTL of events.OwnersBucket. An owner that
	// stops cleanly hands over at once. Zero means DefaultOwnerTTL.
	OwnerTTL time.Duration
	// Partitions is how many partitions the log has when the engine creates
	// it (events.Partition): each has an owner of its own, and with several
	// each is a stream of its own, whose leaders a cluster spreads over its
	// servers. Fixed once the log exists: zero means whatever it has, or 1
	// when creating it; another count than the log's is refused.
	Partitions int
}

// DefaultOwnerTTL is how long the log stays with an owner that died, unless
// configured: the move then takes this and the new owner's catching up, well
// within 10 seconds. Shorter moves sooner; each engine then also updates its
// key more often (three times a TTL), and a pause of the owner's longer than
// two thirds of it (a long GC or VM pause) costs it the log.
const DefaultOwnerTTL = 6 * time.Second

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	if o.OwnerTTL <= 0 {
		o.OwnerTTL = DefaultOwnerTTL
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	return o
}

// logStreamConfig returns the configuration of the log: file storage, every event
// kept (no limits), deletes and purges refused. Direct gets are off here, and on
// only where the stream is created with one replica: on a cluster followers
// answer them, perhaps from behind, and the writer decides on what it reads of a
// contact's last event. With several partitions (o.Partitions) the log has no
// subjects: it sources each partition's stream (partitionStreamConfig), its
// subjects made the contacts' own again (events.EventSubject).
func logStreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	cfg := partitionStreamConfig(o, 0)
	cfg.Name = events.LogStream
	cfg.Description = "presence: every status change (the truth, invisible included); engine and auditors only"
	if o.Partitions > 1 {
		// No deduplication here: each partition deduplicates its own
		// appends, and a window here would drop a partition's event whose
		// message ID another event had within it.
		cfg.Subjects, cfg.Duplicates = nil, 0
		cfg.Description = fmt.Sprintf("presence: every status change (the truth, invisible included), from its %d partitions; engine and auditors only", o.Partitions)
		for p := range o.Partitions {
			cfg.Sources = append(cfg.Sources, &jetstream.StreamSource{Name: events.PartitionStream(p, o.Partitions),
				SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: events.PartitionFilter(p, o.Partitions), Destination: events.EventsPrefix + "{{wildcard(1)}}"}}})
		}
	}
	return cfg
}

// partitionStreamConfig returns the configuration of partition p's stream:
// with one partition, the log's.
func partitionStreamConfig(o StreamOptions, p int) jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        events.PartitionStream(p, o.Partitions),
		Description: fmt.Sprintf("presence: the status changes of partition %d of %d, appended by its owner; engines only", p, o.Partitions),
		Subjects:    []string{events.PartitionFilter(p, o.Partitions)},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.Duplicates,
		DenyDelete:  true,
		DenyPurge:   true,
		Discard:     jetstream.DiscardNew,
	}
}

// feedStreamConfig returns the configuration of the feed: file storage, every
// entry kept. Its sequences are feed positions, numbered from 1 with no gap:
// where the feed must be derived again (the log recreated, entries of an
// older format), the engine deletes the stream and creates it again with the
// configuration it had, rather than purge it, which would keep the numbering.
// Direct gets are off, as on the log: the feed resumes from what it reads of
// its own last entry.
func feedStreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        events.FeedStream,
		Description: "presence: visible status changes, each with the previous visible status; for subscribers",
		Subjects:    []string{events.ChangesPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.Duplicates,
		DenyDelete:  true,
		Discard:     jetstream.DiscardNew,
	}
}

// requestsConfig returns the configuration of the bucket of answers to request
// IDs: each kept for the deduplication window.
func requestsConfig(o StreamOptions) jetstream.KeyValueConfig {
	o = o.withDefaults()
	return bucketConfig(o, events.RequestsBucket, "presence: the writer's answers to request IDs, for retries", o.Duplicates, false)
}

// engineConfig returns the configuration of the engines' own bucket, which
// holds the key that seals the feed's log references: one value a key, kept
// until deleted. Only engines may read it (Permissions gives no role access).
func engineConfig(o StreamOptions) jetstream.KeyValueConfig {
	o = o.withDefaults()
	return bucketConfig(o, events.EngineBucket, "presence: what engines share and nobody else reads (the feed's seal key)", 0, false)
}

// ownersConfig returns the configuration of the bucket of the log's owner: its
// key removed OwnerTTL after its holder last updated it, with a marker that
// tells the others at once.
func ownersConfig(o StreamOptions) jetstream.KeyValueConfig {
	o = o.withDefaults()
	return bucketConfig(o, events.OwnersBucket, "presence: which engine owns the log, held by a lease", o.OwnerTTL, true)
}

// bucketConfig is the configuration of one of the engine's buckets: file
// storage, one value a key, each removed ttl after it was written (0: kept),
// with a marker telling watchers it was if marker is set.
func bucketConfig(o StreamOptions, name, description string, ttl time.Duration, marker bool) jetstream.KeyValueConfig {
	cfg := jetstream.KeyValueConfig{Bucket: name, Description: description, History: 1, TTL: ttl,
		Storage: jetstream.FileStorage, Replicas: o.Replicas}
	if marker {
		cfg.LimitMarkerTTL = ttl
	}
	return cfg
}

// EnsureStreams creates the log, the feed and the buckets (of answers to
// request IDs, of the log's owner, of the engines' own) if they are missing. An existing
// stream is never changed: one whose configuration would break the engine's
// guarantees is reported with an error naming the setting, what it is and what
// is needed; settings that only weaken them (limits that drop old events) are
// logged as warnings.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	if o.Partitions != 0 {
		if err := events.ValidatePartitions(o.Partitions); err != nil {
			return err
		}
	}
	have, err := LogPartitions(ctx, js)
	switch {
	case err != nil && !errors.Is(err, jetstream.ErrStreamNotFound):
		return err
	case err == nil && o.Partitions != 0 && o.Partitions != have:
		return fmt.Errorf("partitions %d: the log has %d, fixed when it was created; start without --partitions to use the log as it is",
			o.Partitions, have)
	case err == nil:
		o.Partitions = have
	}
	logExists := err == nil
	var wants []jetstream.StreamConfig
	if o.Partitions > 1 {
		// The partitions first: the log sources them.
		for p := range o.Partitions {
			wants = append(wants, partitionStreamConfig(o, p))
		}
	}
	for _, want := range append(wants, logStreamConfig(o), feedStreamConfig(o)) {
		s, err := answered(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, want.Name) })
		if logExists && len(want.Sources) == 0 && want.Name != events.FeedStream {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				s, err = missingPartition(ctx, js, want.Name)
			}
		} else if errors.Is(err, jetstream.ErrStreamNotFound) {
			if err := createStream(ctx, js, want, logger); err != nil {
				return err
			}
			// Created here or, in a race, by another engine: look at it either
			// way. Until the cluster has placed it, a server may still say it
			// is not found.
			s, err = answered(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, want.Name) },
				jetstream.ErrStreamNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up stream %s: %w", want.Name, err)
		}
		if err := checkStream(s.CachedInfo().Config, want, o.withDefaults(), logger); err != nil {
			return err
		}
	}
	// The owners' and the engines' buckets are newer than the log: made on
	// the first start of an engine on a log written before them too.
	for _, kv := range []jetstream.KeyValueConfig{requestsConfig(o), ownersConfig(o), engineConfig(o)} {
		if _, err := openBucket(ctx, js, kv.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			err = withReplicas(kv.Replicas, func(replicas int) error {
				cfg := kv
				cfg.Replicas = replicas
				_, err := answered(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, cfg) })
				return err
			})
			if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
				return fmt.Errorf("create bucket %s: %w", kv.Bucket, err)
			}
		} else if err != nil {
			return fmt.Errorf("look up bucket %s: %w", kv.Bucket, err)
		}
	}
	return nil
}

// createStream creates the stream want describes, with its replicas (zero:
// as withReplicas says). Created by another engine first is as good.
func createStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, logger *slog.Logger) error {
	err := withReplicas(want.Replicas, func(replicas int) error {
		cfg := want
		cfg.Replicas = replicas
		// With one replica, direct gets are answered by the leader
		// itself, and are much cheaper than the API's.
		cfg.AllowDirect = replicas == 1
		_, err := answered(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.CreateStream(ctx, cfg) })
		if err == nil {
			logger.Info("created stream", "stream", cfg.Name, "replicas", replicas)
		}
		return err
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", want.Name, err)
	}
	return nil
}

// openBucket opens a key-value bucket, once the cluster answers (other than
// notYet, as answered says).
func openBucket(ctx context.Context, js jetstream.JetStream, name string, notYet ...error) (jetstream.KeyValue, error) {
	return answered(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, name) }, notYet...)
}

// answered calls op with a few seconds to answer, again and again while the
// server does not answer in time, or answers one of notYet, until ctx is
// done: on a cluster, a stream or bucket just made by another engine has no
// leader for a moment, and the requests made of it meanwhile go unanswered
// (or, until the cluster has placed it, are answered "not found"), as they do
// while the cluster has no meta leader yet.
func answered[T any](ctx context.Context, op func(context.Context) (T, error), notYet ...error) (T, error) {
	pause := retry.Backoff{First: 100 * time.Millisecond, Max: time.Second}
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := op(actx)
		cancel()
		again := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
		for _, e := range notYet {
			again = again || errors.Is(err, e)
		}
		if !again || ctx.Err() != nil || !pause.Wait(ctx) {
			return v, err
		}
	}
}

// withReplicas creates something with the given replicas; zero tries 3 and
// settles for 1 where the server is alone or the cluster has no room.
func withReplicas(replicas int, create func(replicas int) error) error {
	if replicas != 0 {
		return create(replicas)
	}
	err := create(3)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == 10074 || apiErr.ErrorCode == 10023 || apiErr.ErrorCode == 10005) {
		// 10074: replicas > 1 not supported in non-clustered mode; 10023:
		// insufficient resources; 10005: no suitable peers.
		return create(1)
	}
	return err
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

func checkStream(have, want jetstream.StreamConfig, o StreamOptions, logger *slog.Logger) error {
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
	case have.NoAck:
		return bad("no_ack", true, "false (appends wait for their acknowledgement)")
	case have.AllowRollup:
		return bad("allow_rollup_hdrs", true, false)
	case have.Sealed:
		return bad("sealed", true, false)
	case have.Mirror != nil:
		return bad("mirror", have.Mirror.Name, "none")
	case !sameSources(have.Sources, want.Sources):
		return bad("sources", sourceNames(have.Sources), fmt.Sprintf("%v (only the engine writes the log, each partition by its owner)", sourceNames(want.Sources)))
	case have.AllowMsgTTL:
		return bad("allow_msg_ttl", true, "false (no message may expire on its own)")
	case have.MaxMsgsPerSubject > 0 && want.Name != events.FeedStream:
		return bad("max_msgs_per_subject", have.MaxMsgsPerSubject, "-1 (a contact's history is its chain)")
	case have.MaxAge > 0 && want.Name == events.FeedStream:
		// Emptied, the feed reads as one purged, whose numbering no longer
		// starts at 1: it would be derived again from the log's start, and
		// every change would come a second time.
		return bad("max_age", have.MaxAge, "0 (a feed whose entries all aged out would be derived again from the log's start)")
	case len(want.Sources) > 0 && have.Duplicates != 0:
		return bad("duplicate_window", have.Duplicates, "0 (each partition deduplicates its own appends; a window on the log would drop events)")
	case want.Name != events.FeedStream && len(want.Sources) == 0 && have.Duplicates < o.Duplicates:
		return bad("duplicate_window", have.Duplicates, fmt.Sprintf("at least %s, the window in which request IDs are deduplicated", o.Duplicates))
	}
	if have.MaxMsgs > 0 || have.MaxBytes > 0 || have.MaxAge > 0 {
		logger.Warn("stream has limits: events past them are dropped", "stream", want.Name,
			"max_msgs", have.MaxMsgs, "max_bytes", have.MaxBytes, "max_age", have.MaxAge, "discard", have.Discard)
	}
	if want.Replicas != 0 && have.Replicas != want.Replicas {
		logger.Warn("stream has another replica count than configured; left as it is", "stream", want.Name,
			"replicas", have.Replicas, "configured", want.Replicas)
	}
	if have.AllowDirect && have.Replicas > 1 {
		logger.Warn("stream allows direct gets, which followers may answer from behind; the engine reads it through the leader only if allow_direct is false",
			"stream", want.Name, "replicas", have.Replicas)
	}
	if want.Name != events.FeedStream && (!have.DenyDelete || !have.DenyPurge) {
		logger.Warn("log allows deletes or purges: an operator can remove audit history", "stream", want.Name)
	}
	return nil
}

// sameSources reports whether a stream sources the streams want names.
func sameSources(have, want []*jetstream.StreamSource) bool {
	return slices.Equal(sourceNames(have), sourceNames(want))
}

// sourceNames returns the names of the streams sources name, sorted.
func sourceNames(sources []*jetstream.StreamSource) []string {
	var names []string
	for _, s := range sources {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// LogPartitions returns how many partitions the log has: 1 if it has
// subjects of its own, else as many as the partition streams it sources. The
// error wraps jetstream.ErrStreamNotFound if there is no log yet.
func LogPartitions(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := answered(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, events.LogStream) })
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", events.LogStream, err)
	}
	sources := s.CachedInfo().Config.Sources
	if len(sources) == 0 {
		return 1, nil
	}
	n := len(sources)
	if events.ValidatePartitions(n) != nil || !sameSources(sources, logStreamConfig(StreamOptions{Partitions: n}).Sources) {
		return 0, &IncompatibleStreamError{Stream: events.LogStream, Setting: "sources", Have: fmt.Sprint(sourceNames(sources)),
			Want: fmt.Sprintf("none, or the streams %s0 to %s%d of its partitions", events.PartitionPrefix, events.PartitionPrefix, n-1)}
	}
	return n, nil
}

// missingPartitionWait is how long missingPartition looks again.
var missingPartitionWait = 10 * time.Second

// missingPartition looks again, for a few seconds, for the stream of a
// partition of a log that exists: one just made by another engine may not be
// known to every server yet. One still missing is not made anew: its events
// are gone, and a new stream numbered from 1 would not match what the log and
// the projections hold of it.
func missingPartition(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	wctx, cancel := context.WithTimeout(ctx, missingPartitionWait)
	defer cancel()
	s, err := answered(wctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, name) }, jetstream.ErrStreamNotFound)
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		// The wait ran out, perhaps in the middle of a look: one more,
		// whose answer stands.
		s, err = answered(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, name) })
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s, a partition of the log %s, is missing: its events are not in the log's partition any more; "+
			"restore it from a backup of the server's JetStream store rather than start on a log without it", name, events.LogStream)
	}
	return s, err
}
