package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/jsonwire"
	"github.com/presence-engine/presence/internal/tail"
	"github.com/presence-engine/presence/projections"
)

// ClockSkew is how far the clock of an engine that stamped events may be from the
// server's: a time-bounded read enters the log this much before its start, by the
// server's timestamps, and leaves it at the first event stamped twice this much
// after its end (two engines' clocks may be that far apart, and an event
// stored later than another is stamped at most that much before it), so that
// no event stamped inside the window is missed.
const ClockSkew = time.Minute

// Log reads the log for audit: the truth, invisible included. Its methods are
// safe for concurrent use.
type Log struct {
	js     jetstream.JetStream
	stream string
}

// NewLog returns a Log on the stream named stream ("" means events.LogStream).
func NewLog(js jetstream.JetStream, stream string) *Log {
	if stream == "" {
		stream = events.LogStream
	}
	return &Log{js: js, stream: stream}
}

// Entry is one event of the log and its sequence.
type Entry struct {
	Seq uint64
	events.Event
}

// textTime writes times of the same zone in as many characters: RFC 3339,
// with every digit of the nanoseconds, so that lines of text line up.
const textTime = "2006-01-02T15:04:05.000000000Z07:00"

// AppendText appends the entry as one line of text: sequence, time, contact,
// quoted friendly name, previous -> new status, and cause.
func (e Entry) AppendText(b []byte) []byte {
	b = strconv.AppendUint(b, e.Seq, 10)
	if e.Contact == "" {
		return append(b, "  (not an event)\n"...)
	}
	b = append(b, "  "...)
	b = e.At.AppendFormat(b, textTime)
	b = append(b, "  "...)
	b = append(b, e.Contact...)
	b = append(b, "  "...)
	b = strconv.AppendQuote(b, e.Name)
	b = append(b, "  "...)
	b = append(b, e.Previous.String()...)
	b = append(b, " -> "...)
	b = append(b, e.Status.String()...)
	b = append(b, "  "...)
	b = append(b, e.Cause...)
	if e.Op != events.OpSet {
		b = append(b, "  "...)
		b = append(b, e.Op...)
	}
	if e.Endpoint != "" {
		b = append(b, "  endpoint "...)
		b = strconv.AppendQuote(b, e.Endpoint)
	}
	if e.Held {
		b = append(b, "  held"...)
	}
	if e.Shown != events.Unknown {
		b = append(b, "  shown was "...)
		b = append(b, e.Shown.String()...)
	}
	return append(b, '\n')
}

// EntryJSON is an entry as AppendJSON writes it.
type EntryJSON struct {
	Seq       uint64        `json:"seq"`
	At        string        `json:"at"`
	Contact   string        `json:"contact"`
	Name      string        `json:"name"`
	Previous  events.Status `json:"previous"`
	Status    events.Status `json:"status"`
	Code      int           `json:"code"`
	Cause     events.Cause  `json:"cause"`
	RequestID string        `json:"request_id,omitempty"`
	Op        events.Op     `json:"op,omitempty"`        // what the event records besides the status (events.Op)
	Endpoint  string        `json:"endpoint,omitempty"`  // the endpoint it came from
	Held      bool          `json:"held,omitempty"`      // held back by the flap window: subscribers were not shown it
	Shown     events.Status `json:"shown,omitempty"`     // what subscribers were last shown, when held changes made it differ from previous
	Malformed bool          `json:"malformed,omitempty"` // the record is not an event
}

// AppendJSON appends the entry as one line of JSON (EntryJSON).
func (e Entry) AppendJSON(b []byte) []byte {
	if e.Contact == "" {
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
		return append(b, ",\"malformed\":true}\n"...)
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"at":"`...)
	b = e.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","contact":`...)
	b = jsonwire.AppendString(b, e.Contact)
	b = append(b, `,"name":`...)
	b = jsonwire.AppendString(b, e.Name)
	b = append(b, `,"previous":"`...)
	b = append(b, e.Previous.String()...)
	b = append(b, `","status":"`...)
	b = append(b, e.Status.String()...)
	b = append(b, `","code":`...)
	b = strconv.AppendInt(b, int64(e.Status.Code()), 10)
	b = append(b, `,"cause":`...)
	b = jsonwire.AppendString(b, string(e.Cause))
	if e.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = jsonwire.AppendString(b, e.RequestID)
	}
	if e.Op != events.OpSet {
		b = append(b, `,"op":`...)
		b = jsonwire.AppendString(b, string(e.Op))
	}
	if e.Endpoint != "" {
		b = append(b, `,"endpoint":`...)
		b = jsonwire.AppendString(b, e.Endpoint)
	}
	if e.Held {
		b = append(b, `,"held":true`...)
	}
	if e.Shown != events.Unknown {
		b = append(b, `,"shown":"`...)
		b = append(b, e.Shown.String()...)
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// Query selects events of the log. Times are the events' own (when the engine
// accepted the change); bounds are inclusive; zero fields do not restrict.
type Query struct {
	Contacts []string  // only these contacts; each is read from its own subject
	FromSeq  uint64    // from this log sequence on
	ToSeq    uint64    // up to this log sequence
	Since    time.Time // events at or after this time
	Until    time.Time // events at or before this time

	// Progress, when set, is called after each batch read with the records read
	// and, as far as known, to read.
	Progress func(projections.Progress)
}

// Validate checks the query, with errors naming the bad value.
func (q Query) Validate() error {
	for _, c := range q.Contacts {
		if err := events.ValidateContact(c); err != nil {
			return err
		}
	}
	if q.ToSeq != 0 && q.FromSeq > q.ToSeq {
		return badQuery("from seq %d is after to seq %d", q.FromSeq, q.ToSeq)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Since.After(q.Until) {
		return badQuery("since %s is after until %s", q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano))
	}
	return nil
}

// Replay calls fn with every event the query selects, in log order, as the log
// stood when Replay started, until fn returns an error (which Replay returns).
// It reads only the subjects of the contacts asked for, and holds at most a few
// thousand events in memory whatever the size of the log. A record that is not
// an event is handed over with its sequence and an Event of zero value, and
// counted in the returned Stats.
func (l *Log) Replay(ctx context.Context, q Query, fn func(Entry) error) (Stats, error) {
	var stats Stats
	if err := q.Validate(); err != nil {
		return stats, err
	}
	stream, err := l.js.Stream(ctx, l.stream)
	if err != nil {
		return stats, fmt.Errorf("open log %q: %w", l.stream, err)
	}
	end := stream.CachedInfo().State.LastSeq
	if q.ToSeq != 0 && q.ToSeq < end {
		end = q.ToSeq
	}
	cfg := tail.Config{From: q.FromSeq, Subjects: subjectsOf(q.Contacts), Buffer: 4096}
	if q.FromSeq == 0 && !q.Since.IsZero() {
		cfg.Since = q.Since.Add(-ClockSkew)
	}
	if end == 0 || (q.FromSeq > end) {
		return stats, nil
	}
	reader, err := tail.Start(ctx, stream, cfg)
	if err != nil {
		return stats, err
	}
	defer reader.Stop()
	var (
		batch []tail.Record
		read  uint64
	)
	for read < reader.Pending() {
		batch, err = reader.Next(ctx, batch, 1024)
		if err != nil {
			return stats, err
		}
		for _, r := range batch {
			read++
			if r.Seq > end {
				return stats, nil
			}
			e, err := events.DecodeEvent(r.Data)
			if err != nil {
				stats.Malformed++
				if err := fn(Entry{Seq: r.Seq}); err != nil {
					return stats, err
				}
				continue
			}
			if !q.Until.IsZero() && e.At.After(q.Until) {
				if e.At.After(q.Until.Add(2 * ClockSkew)) {
					return stats, nil // past the window, whatever the engines' clocks
				}
				continue
			}
			if !q.Since.IsZero() && e.At.Before(q.Since) {
				continue
			}
			stats.Events++
			if err := fn(Entry{Seq: r.Seq, Event: e}); err != nil {
				return stats, err
			}
		}
		if q.Progress != nil {
			q.Progress(projections.Progress{Done: read, Total: reader.Pending()})
		}
		if r := batch[len(batch)-1]; r.Seq >= end || reader.Last() == r.Seq {
			return stats, nil // the end, or nothing more for now (some were removed)
		}
	}
	return stats, nil
}

// Stats counts what a read of the log went through.
type Stats struct {
	Events    uint64 `json:"events"`    // events handed over
	Malformed uint64 `json:"malformed"` // records that are not events
}

func subjectsOf(contacts []string) []string {
	if len(contacts) == 0 {
		return []string{events.EventsPrefix + ">"}
	}
	seen := make(map[string]bool, len(contacts))
	var out []string
	for _, c := range contacts {
		s := events.EventSubject(c)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Point is a point in the log's history: a log sequence or a time (one of them).
type Point struct {
	Seq  uint64    // after the event at this log sequence
	Time time.Time // as of this time: events at or before it
}

func (p Point) String() string {
	if p.Seq != 0 {
		return fmt.Sprintf("seq %d", p.Seq)
	}
	return p.Time.UTC().Format(time.RFC3339Nano)
}

// At returns the state a contact had at a point of the log's history: the truth
// in Status, what everyone else saw in Visible. seen is false when the contact
// had no event yet (it then reads Unknown). It reads the contact's own subject,
// from its first event to the point; Visible.Seq is the feed position of the
// contact's last visible change, as a status reply gives it (the number of
// visible changes the log holds up to it), which it counts by reading every
// subject of the log up to that change.
func (l *Log) At(ctx context.Context, contact string, at Point) (st projections.State, seen bool, err error) {
	if err := events.ValidateContact(contact); err != nil {
		return st, false, err
	}
	if (at.Seq == 0) == at.Time.IsZero() {
		return st, false, badQuery("give a log sequence or a time, one of them")
	}
	// The log answers for what it holds: past its end, or after now, what
	// the contact's status is is not known yet.
	if !at.Time.IsZero() {
		if err := notFuture("", at.Time); err != nil {
			return st, false, err
		}
	} else {
		stream, err := l.js.Stream(ctx, l.stream)
		if err != nil {
			return st, false, fmt.Errorf("open log %q: %w", l.stream, err)
		}
		if last := stream.CachedInfo().State.LastSeq; at.Seq > last {
			return st, false, badQuery("seq %d is past the end of the log, at seq %d", at.Seq, last)
		}
	}
	st = projections.State{Contact: contact, Visible: projections.View{Contact: contact}}
	q := Query{Contacts: []string{contact}, ToSeq: at.Seq}
	var lastVisible uint64 // log sequence of the contact's last visible change
	_, err = l.Replay(ctx, q, func(e Entry) error {
		if e.Contact == "" {
			return nil // not an event
		}
		if !at.Time.IsZero() && e.At.After(at.Time) {
			return errStop
		}
		st.Fold(e.Event, e.Seq, 0)
		if e.Visible() {
			lastVisible = e.Seq
		}
		seen = true
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err != nil || lastVisible == 0 {
		return st, seen, err
	}
	st.Visible.Seq, err = l.FeedPosition(ctx, lastVisible)
	return st, seen, err
}

// FeedPosition returns the feed position of the event at log sequence seq: the
// number of visible changes (events.ChangeOf) the log holds up to and
// including it, from its first event, as the projection and the feed count
// them. It reads every subject of the log up to seq.
func (l *Log) FeedPosition(ctx context.Context, seq uint64) (uint64, error) {
	var n uint64
	_, err := l.Replay(ctx, Query{ToSeq: seq}, func(e Entry) error {
		if e.Contact != "" && e.Visible() {
			n++
		}
		return nil
	})
	return n, err
}

var errStop = errors.New("stop")

// notFuture refuses a time after now, beyond ClockSkew: what the log holds
// says nothing yet of what happens then. what names the time in the message
// ("since "), or is empty. At and Report take this one rule.
func notFuture(what string, t time.Time) error {
	if now := time.Now(); t.After(now.Add(ClockSkew)) {
		return badQuery("%s%s is in the future (it is %s): want a time up to now, or up to %s ahead for clocks apart",
			what, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ClockSkew)
	}
	return nil
}
