package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/presence-engine/presence/events"
)

// Client talks to the presence service over NATS. It implements BatchReader,
// so that a subscriber's handler reads the current status through it from any
// process. It is safe for concurrent use.
type Client struct {
	nc *nats.Conn
	// Timeout bounds each request, within its context's deadline. Zero means
	// 5s for a request whose context has no deadline, and no other bound.
	Timeout time.Duration
}

// New returns a Client on nc.
func New(nc *nats.Conn) *Client { return &Client{nc: nc} }

// Set asks the service to set a contact's status.
//
// A 400, 409 or 429 says the set was not applied. Any other error (no answer in
// time, the connection lost on the way, a 503) leaves it unknown whether it was:
// give the request a RequestID and retry it with the same one, which within 2
// minutes is answered as the first time and never appended twice. While the
// connection is down nothing is sent, and Set fails at once.
func (c *Client) Set(ctx context.Context, req SetRequest) (SetResult, error) {
	if err := events.ValidateContact(req.Contact); err != nil {
		return SetResult{}, badRequest(err)
	}
	var res SetResult
	err := c.Request(ctx, events.SetPrefix+events.Token(req.Contact), EncodeSetRequest(req), &res)
	return res, err
}

// Status returns the contact as everyone else sees it, from a projection that
// has applied the feed at least up to the feed position minSeq (a Change's
// Seq; 0: no minimum). The reply's Seq is the feed position of the contact's
// last visible change.
func (c *Client) Status(ctx context.Context, contact string, minSeq uint64) (Reply, error) {
	return c.read(ctx, events.StatusPrefix, contact, minSeq)
}

// Self returns the contact's own status, invisible included, from a
// projection that has applied the log at least up to the log sequence minSeq
// (a SetResult's Seq; 0: no minimum). The reply's Seq is the log sequence of
// the contact's last event.
func (c *Client) Self(ctx context.Context, contact string, minSeq uint64) (Reply, error) {
	return c.read(ctx, events.SelfPrefix, contact, minSeq)
}

// Statuses returns the contacts as everyone else sees them, in the order given,
// in one request, from a projection that has applied the feed at least up to
// the feed position minSeq. More than MaxStatuses contacts are split into several requests.
func (c *Client) Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]Reply, error) {
	out := make([]Reply, 0, len(contacts))
	for len(contacts) > 0 {
		n := min(len(contacts), MaxStatuses)
		r := StatusesReply{asked: contacts[:n]}
		if err := c.Request(ctx, events.StatusesSubject, EncodeStatusesRequest(contacts[:n], minSeq), &r); err != nil {
			return nil, err
		}
		if len(r.Statuses) != n {
			return nil, fmt.Errorf("statuses reply holds %d statuses for %d contacts", len(r.Statuses), n)
		}
		out = append(out, r.Statuses...)
		contacts = contacts[n:]
	}
	return out, nil
}

func (c *Client) read(ctx context.Context, prefix, contact string, minSeq uint64) (Reply, error) {
	if err := events.ValidateContact(contact); err != nil {
		return Reply{}, badRequest(err)
	}
	r := Reply{Contact: contact} // read into: the reply's contact is this one
	if err := c.Request(ctx, prefix+events.Token(contact), EncodeReadRequest(minSeq), &r); err != nil {
		return Reply{}, err
	}
	return r, nil
}

// Request sends body to subject and reads the service's answer into reply
// (JSON), or returns its error reply as a *ServiceError. The methods above are
// built on it, as are the engine's admin requests.
func (c *Client) Request(ctx context.Context, subject string, body []byte, reply any) error {
	// Disconnected, nats.go would keep the request in its reconnect buffer and
	// send it once connected again, maybe long after this caller gave up: a set
	// the caller saw fail would then be applied. Send nothing instead.
	if !c.nc.IsConnected() {
		return unavailable(fmt.Errorf("not connected to NATS (%s): nothing was sent; retry", c.nc.Status()))
	}
	if _, ok := ctx.Deadline(); !ok || c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout())
		defer cancel()
	}
	sent := time.Now()
	msg, err := c.nc.RequestWithContext(ctx, subject, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return c.noService(subject)
	}
	if err != nil {
		if denied := c.refused(subject); denied != nil {
			return denied
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Said in full: a caller that waits less than the service does
			// (a min_seq read waits up to 2s) hears nothing else.
			return unavailable(fmt.Errorf("request %s: no answer within %s: %w", subject,
				time.Since(sent).Round(time.Millisecond), err))
		}
		return unavailable(fmt.Errorf("request %s: %w", subject, err))
	}
	return decodeReply(subject, msg, reply)
}

// ProgressHeader marks a progress message of a long request, which the
// service sends before its answer while it works; and on the request, it
// names the key of the subject it sends them to (events.ProgressPrefix and
// the key): letters, digits, - and _, at most 64.
const ProgressHeader = "Presence-Progress"

// RequestWithProgress is Request for an operation that answers after a while
// (the engine's verify and rebuild): it hands the body of each progress
// message to progress (if not nil) as it comes, and gives up when ctx is done
// or when nothing came for the client's Timeout (zero: 5s).
func (c *Client) RequestWithProgress(ctx context.Context, subject string, progress func(data []byte), reply any) error {
	// The answer comes on the inbox, the progress on events.ProgressPrefix
	// and a key of the inbox's (its last token, random), or, from an engine
	// older than the key, the inbox's token: all to one channel.
	inbox := c.nc.NewRespInbox()
	key := inbox[strings.LastIndexByte(inbox, '.')+1:]
	msgs := make(chan *nats.Msg, 64)
	for _, subj := range []string{inbox, events.ProgressPrefix + key, events.ProgressPrefix + events.Token(inbox)} {
		sub, err := c.nc.ChanSubscribe(subj, msgs)
		if err != nil {
			return unavailable(fmt.Errorf("request %s: %w", subject, err))
		}
		defer sub.Unsubscribe()
	}
	if err := c.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Header: nats.Header{ProgressHeader: {key}}}); err != nil {
		return unavailable(fmt.Errorf("request %s: %w", subject, err))
	}
	idle := c.timeout()
	quiet := time.NewTimer(idle)
	defer quiet.Stop()
	for {
		var msg *nats.Msg
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-quiet.C:
			if denied := c.refused(subject); denied != nil {
				return denied
			}
			return unavailable(fmt.Errorf("request %s: no word from the engine for %s", subject, idle))
		case msg = <-msgs:
		}
		quiet.Reset(idle)
		if status := msg.Header.Get("Status"); status == strconv.Itoa(503) && len(msg.Data) == 0 {
			return c.noService(subject)
		}
		if msg.Header.Get(ProgressHeader) != "" {
			if progress != nil {
				progress(msg.Data)
			}
			continue
		}
		return decodeReply(subject, msg, reply)
	}
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 5 * time.Second
	}
	return c.Timeout
}

func (c *Client) noService(subject string) error {
	return unavailable(fmt.Errorf("no presence service answers on %s at %s", subject, c.nc.ConnectedUrlRedacted()))
}

// refused returns an error saying the server refused a publish to subject, when
// that is what the connection last heard: a refused request is never answered,
// and the refusal comes asynchronously.
func (c *Client) refused(subject string) error {
	err := c.nc.LastError()
	if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
		return &KindError{Kind: ErrForbidden, Err: fmt.Errorf("the server refused a request to %s for this connection's user (%v)", subject, err)}
	}
	return nil
}

// decodeReply reads a reply of the service: an error, or the answer into reply.
func decodeReply(subject string, msg *nats.Msg, reply any) error {
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		n, _ := strconv.Atoi(code)
		return &ServiceError{Code: n, Description: msg.Header.Get(micro.ErrorHeader)}
	}
	// The replies read themselves (replyjson.go), which json.Unmarshal would
	// only do after scanning the whole reply once more.
	var err error
	if u, ok := reply.(json.Unmarshaler); ok {
		err = u.UnmarshalJSON(msg.Data)
	} else {
		err = json.Unmarshal(msg.Data, reply)
	}
	if err != nil {
		return fmt.Errorf("reply of %s is not understood: %w", subject, err)
	}
	return nil
}

// InboxPrefix is the inbox prefix a user's connection must use
// (nats.CustomInboxPrefix) on an engine that authenticates its users: each user
// may receive only on its own inboxes, so that nobody reads the replies meant
// for another.
func InboxPrefix(user string) string { return "_INBOX_" + user }
