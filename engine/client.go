package engine

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

// Client talks to the presence service over NATS. It implements Reader, so a
// subscriber's handler can read through it from any process. It is safe for
// concurrent use.
type Client struct {
	nc *nats.Conn
	// Timeout bounds each request, within its context's deadline. Zero means
	// 5s for a request whose context has no deadline, and no other bound.
	Timeout time.Duration
}

// NewClient returns a Client on nc.
func NewClient(nc *nats.Conn) *Client { return &Client{nc: nc} }

// ServiceError is an error reply of the service.
type ServiceError struct {
	Code        int    // 400, 409, 503 or 500
	Description string // what went wrong, naming the bad value
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s (%d)", e.Description, e.Code)
}

// Unwrap maps the code to ErrBadRequest, ErrConflict or ErrUnavailable.
func (e *ServiceError) Unwrap() error {
	switch e.Code {
	case 400:
		return ErrBadRequest
	case 409:
		return ErrConflict
	case 429:
		return ErrTooMany
	case 503:
		return ErrUnavailable
	}
	return nil
}

func (c *Client) request(ctx context.Context, subject string, body []byte, reply any) error {
	// Disconnected, nats.go would keep the request in its reconnect buffer and
	// send it once connected again, maybe long after this caller gave up: a set
	// the caller saw fail would then be applied. Send nothing instead.
	if !c.nc.IsConnected() {
		return unavailable(fmt.Errorf("not connected to NATS (%s): nothing was sent; retry", c.nc.Status()))
	}
	if _, ok := ctx.Deadline(); !ok || c.Timeout > 0 {
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	sent := time.Now()
	msg, err := c.nc.RequestWithContext(ctx, subject, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return unavailable(fmt.Errorf("no presence service answers on %s at %s", subject, c.nc.ConnectedUrlRedacted()))
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

// refused returns an error saying the server refused a publish to subject, when
// that is what the connection last heard: a refused request is never answered,
// and the refusal comes asynchronously.
func (c *Client) refused(subject string) error {
	err := c.nc.LastError()
	if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
		return fmt.Errorf("%w: the server refused a request to %s for this connection's user (%v)", ErrForbidden, subject, err)
	}
	return nil
}

// decodeReply reads a reply of the service: an error, or the answer into reply.
func decodeReply(subject string, msg *nats.Msg, reply any) error {
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		n, _ := strconv.Atoi(code)
		return &ServiceError{Code: n, Description: msg.Header.Get(micro.ErrorHeader)}
	}
	// The replies read themselves (fast, falling back to encoding/json); going
	// through json.Unmarshal would first scan the whole reply once more.
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
	err := c.request(ctx, SetPrefix+events.Token(req.Contact), EncodeSetRequest(req), &res)
	return res, err
}

// Status returns the contact as everyone else sees it, from a projection that
// has applied the log at least up to minSeq.
func (c *Client) Status(ctx context.Context, contact string, minSeq uint64) (Reply, error) {
	return c.read(ctx, StatusPrefix, contact, minSeq)
}

// Self returns the contact's own status, invisible included.
func (c *Client) Self(ctx context.Context, contact string, minSeq uint64) (Reply, error) {
	return c.read(ctx, SelfPrefix, contact, minSeq)
}

// Statuses returns the contacts as everyone else sees them, in the order given,
// in one request, from a projection that has applied the log at least up to
// minSeq. More than MaxStatuses contacts are split into several requests.
func (c *Client) Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]Reply, error) {
	out := make([]Reply, 0, len(contacts))
	for len(contacts) > 0 {
		n := min(len(contacts), MaxStatuses)
		r := statusesReply{asked: contacts[:n]}
		if err := c.request(ctx, StatusesSubject, EncodeStatusesRequest(contacts[:n], minSeq), &r); err != nil {
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
	if err := c.request(ctx, prefix+events.Token(contact), EncodeReadRequest(minSeq), &r); err != nil {
		return Reply{}, err
	}
	return r, nil
}
