package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// What the writer reads of the log itself: only where what it knows cannot
// settle a set (an append whose acknowledgement was lost, a request ID given
// again whose answer was not kept).

// stored returns the log sequence of o's append if the log holds it, 0 if not.
// It expected the log's last sequence at o.expect: stored, it is the next.
func (w *Writer) stored(ctx context.Context, o *op) (uint64, error) {
	stream, err := w.log(ctx)
	if err != nil {
		return 0, err
	}
	msg, err := stream.GetMsg(ctx, o.expect+1)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(fmt.Errorf("read the log at seq %d: %w", o.expect+1, err))
	}
	if msg.Subject == w.subject(o.req.Contact) && bytes.Equal(msg.Data, o.data) {
		return msg.Sequence, nil
	}
	return 0, nil
}

// mayHold reports whether the log's duplicate window may hold a request of
// the contact whose last event is cur (read from the log): not if it has none,
// nor if that event is older than the window, as the request's would be (by
// the server's clock, which may differ from the writer's, Now: a minute is
// allowed).
func (w *Writer) mayHold(ctx context.Context, cur last) bool {
	if cur.seq == 0 {
		return false
	}
	stream, err := w.log(ctx)
	if err != nil || cur.at.IsZero() {
		return true
	}
	window := stream.CachedInfo().Config.Duplicates
	return window <= 0 || w.cfg.Now().Sub(cur.at) < window+time.Minute
}

// probeLastMsgID is the expected last message ID of appendedBefore's appends
// to a log of one replica: none the log can have, its events' IDs all holding
// a '/'.
const probeLastMsgID = "presence:none"

// appendedBefore returns the log sequence of the event of req's request ID if
// the log's duplicate window holds one, 0 if not. It asks the log itself, with
// an append of the request's message ID that the server refuses either way: as
// a duplicate (answering with the original's sequence), or else for a check
// that comes after the deduplication and that the append cannot pass. Nothing
// is stored. Which check comes after differs: on a server alone, the last
// message ID (the contact's last sequence is checked before); on a cluster, the
// contact's last sequence (checked, like the deduplication, before the append
// is proposed to the others, where the last message ID is checked only as it
// is applied, and failing there holds up the stream).
func (w *Writer) appendedBefore(ctx context.Context, req client.SetRequest) (uint64, error) {
	stream, err := w.log(ctx)
	if err != nil {
		return 0, err
	}
	// A stream with a Raft group (one of several replicas) takes the
	// cluster's steps; one without (a server alone, or one replica on a
	// cluster) the other's. Read afresh, as its replicas may have changed:
	// the wrong probe on a cluster would fail as it is applied.
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, unavailable(fmt.Errorf("look up request %s in the log: %w", events.Quote(req.RequestID), err))
	}
	clustered := info.Cluster != nil && info.Cluster.RaftGroup != ""
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(w.streamName()), jetstream.WithMsgID(msgID(req.Contact, req.RequestID))}
	if clustered {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(math.MaxUint64))
	} else {
		opts = append(opts, jetstream.WithExpectLastMsgID(probeLastMsgID))
	}
	ack, err := w.js.PublishMsg(ctx, &nats.Msg{Subject: w.subject(req.Contact)}, opts...)
	var apiErr *jetstream.APIError
	switch {
	case err == nil && ack.Duplicate:
		return ack.Sequence, nil
	case clustered && isWrongLastSequence(err), !clustered && errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeWrongLastMsgID:
		return 0, nil
	case err == nil:
		w.logger.Error("writer: the log stored the empty record that asked after a request; it is not an event: the fold and the feed skip it, "+
			"but a set that reads it as the contact's last event fails, and an audit reports it",
			"contact", req.Contact, "request_id", req.RequestID, "seq", ack.Sequence)
		return 0, unavailable(fmt.Errorf("look up request %s in the log: the log stored the question at seq %d", events.Quote(req.RequestID), ack.Sequence))
	}
	return 0, unavailable(fmt.Errorf("look up request %s in the log: %w", events.Quote(req.RequestID), err))
}

// jsErrCodeWrongLastMsgID is the server's error code for an append whose
// expected last message ID is not the log's.
const jsErrCodeWrongLastMsgID jetstream.ErrorCode = 10070

// msgID scopes a request ID to its contact: the log deduplicates across the whole
// stream, and two contacts may well use the same request IDs. The token holds no
// '/', so the pair is unambiguous.
func msgID(contact, requestID string) string {
	return events.Token(contact) + "/" + requestID
}

// original answers a request whose event the log already holds at seq.
func (w *Writer) original(ctx context.Context, req client.SetRequest, seq uint64) (client.SetResult, error) {
	stream, err := w.log(ctx)
	if err != nil {
		return client.SetResult{}, err
	}
	msg, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return client.SetResult{}, unavailable(fmt.Errorf("read the log at seq %d: %w", seq, err))
	}
	e, err := events.DecodeEvent(msg.Data)
	if err != nil {
		return client.SetResult{}, fmt.Errorf("the log holds a malformed event at seq %d: %w", seq, err)
	}
	if e.Contact != req.Contact || e.RequestID != req.RequestID {
		return client.SetResult{}, fmt.Errorf("the log's event at seq %d is not request %q of %q", seq, req.RequestID, req.Contact)
	}
	return client.SetResult{Contact: req.Contact, Status: e.Status, Previous: e.Previous, Seq: seq, Changed: true}, nil
}

// log returns the log's stream, looked up on first use.
func (w *Writer) log(ctx context.Context) (jetstream.Stream, error) {
	if s := w.stream.Load(); s != nil {
		return *s, nil
	}
	s, err := w.js.Stream(ctx, w.streamName())
	if err != nil {
		return nil, unavailable(fmt.Errorf("open the log: %w", err))
	}
	w.stream.Store(&s)
	return s, nil
}

// ambiguous reports whether an append that failed with err may have been
// stored all the same: anything but an answer of the server's (an API error),
// which says it was not.
func ambiguous(err error) bool {
	var apiErr *jetstream.APIError
	return !errors.As(err, &apiErr)
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
