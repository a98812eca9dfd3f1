package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/internal/retry"
)

// ServiceName is the name of the micro service, as `nats micro ls` shows it.
const ServiceName = "presence"

// Version is the engine's version, as the service reports it.
const Version = "0.1.0"

// serviceConfig configures a Service.
type serviceConfig struct {
	// Conn is the connection the service listens on. Required.
	Conn *nats.Conn
	// Writers handle set, one a partition of the log in partition order.
	// Required.
	Writers []*Writer
	// Reader handles status and self. Required.
	Reader *LocalReader
	// Logger receives what the service notices. Zero means slog.Default().
	Logger *slog.Logger
	// MaxConcurrent bounds the sets handled at once, and apart from them the
	// reads: past it requests are answered 503 at once. Reads and sets have a
	// bound each, so that reads waiting for their min_seq never crowd out sets.
	// Zero means 4096.
	MaxConcurrent int
	// SetTimeout bounds the handling of one set. Zero means 5s.
	SetTimeout time.Duration
	// Stats, when set, is reported as the data of each endpoint's stats.
	Stats func() any
	// Admin, when set, answers the admin endpoints (presence.admin.>).
	Admin operations
}

// Service is the engine's NATS interface, a micro service named "presence":
//
//	presence.set.<token>     {"status","name","request_id","expect_seq","cause"} -> {"contact","status","code","previous","seq","changed"}
//	presence.status.<token>  empty or {"min_seq":N}  -> {"contact","name","status","code","seq"}, the visible status
//	presence.self.<token>    empty or {"min_seq":N}  -> the same, with the contact's own status, invisible included
//	presence.statuses        {"contacts":[...],"min_seq":N} -> {"statuses":[...]}, the visible status of each
//	presence.admin.digest    empty -> projections.Digest of the projection (with serviceConfig.Admin)
//	presence.admin.verify    empty -> progress messages, then audit.VerifyReport
//	presence.admin.rebuild   empty -> progress messages, then RebuildResult
//
// Positions are of two kinds, never mixed. The seq of a set, and self's seq
// and min_seq, are log sequences: the contact's own writes. The seq and
// min_seq of status and statuses are feed positions, which count visible
// changes only: a subscriber handling the feed entry at position F reads with
// min_seq F, and gets the status as of that change or later.
//
// Errors carry the micro error headers: 400 bad input (the description names the
// value and what is accepted), 409 expect_seq mismatch, 429 a contact past its
// bound on sets (TooManyError), 503 not ready or min_seq
// not reached in time, 500 anything else. Its methods are safe for concurrent use.
type service struct {
	cfg     serviceConfig
	logger  *slog.Logger
	started chan struct{} // closed once the endpoints listen

	mu      sync.Mutex // guards stopped against wg.Add after Wait began
	stopped bool
	wg      sync.WaitGroup
}

// withDefaults returns c with its zero fields at their defaults.
func (c serviceConfig) withDefaults() serviceConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 4096
	}
	if c.SetTimeout <= 0 {
		c.SetTimeout = 5 * time.Second
	}
	return c
}

// newService returns a Service; Run starts it.
func newService(cfg serviceConfig) (*service, error) {
	if cfg.Conn == nil || len(cfg.Writers) == 0 || cfg.Reader == nil {
		return nil, errors.New("engine: a service needs a Conn, Writers and a Reader")
	}
	cfg = cfg.withDefaults()
	return &service{cfg: cfg, logger: cfg.Logger, started: make(chan struct{})}, nil
}

// Started returns a channel closed once the service answers requests.
func (s *service) Started() <-chan struct{} { return s.started }

// Run serves until ctx is done, then stops taking requests, waits for those in
// hand and returns nil.
func (s *service) Run(ctx context.Context) error {
	mcfg := micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "presence engine: set and read contact status (MISTATUS)",
	}
	if s.cfg.Stats != nil {
		mcfg.StatsHandler = func(*micro.Endpoint) any { return s.cfg.Stats() }
	}
	svc, err := micro.AddService(s.cfg.Conn, mcfg)
	if err != nil {
		return fmt.Errorf("start the %s service: %w", ServiceName, err)
	}
	g := svc.AddGroup("presence")
	sets, reads := make(chan struct{}, s.cfg.MaxConcurrent), make(chan struct{}, s.cfg.MaxConcurrent)
	type endpoint struct {
		name, subject string
		handler       func(micro.Request) (work, error)
		slots         chan struct{}
		cancellable   bool // the work ends when the service stops, rather than finishing
	}
	endpoints := []endpoint{
		{"set", "set.*", s.set, sets, false},
		{"status", "status.*", s.status, reads, false},
		{"self", "self.*", s.self, reads, false},
		{"statuses", "statuses", s.statuses, reads, false},
		{"signin", "endpoint.signin.*", s.endpoint(client.OpSignIn), sets, false},
		{"heartbeat", "endpoint.heartbeat.*", s.endpoint(client.OpHeartbeat), sets, false},
		{"report", "endpoint.report.*", s.endpoint(client.OpReport), sets, false},
		{"signout", "endpoint.signout.*", s.endpoint(client.OpSignOut), sets, false},
		{"prefer", "prefer.*", s.endpoint(client.OpPrefer), sets, false},
		{"settings", "settings.*", s.endpoint(client.OpSettings), sets, false},
	}
	if s.cfg.Admin != nil {
		// Verify and rebuild exclude each other (the second is answered 503,
		// naming the first); a few may wait for that answer at once.
		long := make(chan struct{}, 4)
		endpoints = append(endpoints,
			endpoint{"digest", "admin.digest", s.adminDigest, reads, false},
			endpoint{"verify", "admin.verify", s.adminVerify, long, true},
			endpoint{"rebuild", "admin.rebuild", s.adminRebuild, long, true})
	}
	for _, e := range endpoints {
		if err := g.AddEndpoint(e.name, s.dispatch(ctx, e.handler, e.slots, e.cancellable), micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			return fmt.Errorf("add endpoint %s: %w", e.name, err)
		}
	}
	ownerCtx, stopOwner := context.WithCancel(ctx)
	// Sets passed on from other engines have slots of their own: with
	// several partitions every engine both passes sets on and owns, and
	// sharing the slots, each engine's could all be held by sets waiting
	// on the other's owner, which would answer its own "busy".
	passed := make(chan struct{}, s.cfg.MaxConcurrent)
	var owners sync.WaitGroup
	for _, w := range s.cfg.Writers {
		p := strconv.Itoa(w.Partition())
		owners.Go(func() { s.serveOwner(ownerCtx, w, events.OwnerSetPrefix+p+".*", s.dispatch(ctx, s.set, passed, false)) })
		owners.Go(func() {
			s.serveOwner(ownerCtx, w, events.OwnerEndpointPrefix+"*."+p+".*", s.dispatch(ctx, s.endpointPassed, passed, false))
		})
	}
	defer func() { stopOwner(); owners.Wait() }()
	// A round trip makes sure the server has the subscriptions before anyone is
	// told the service is up.
	if err := s.cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		_ = svc.Stop()
		return fmt.Errorf("start the %s service: %w", ServiceName, err)
	}
	close(s.started)
	s.logger.Info("service started", "service", ServiceName, "subjects", "presence.{set,status,self}.<token>, presence.statuses")
	<-ctx.Done()
	err = svc.Stop()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// errStopping: the service takes no more requests; another engine may.
var errStopping = errors.New("the service is stopping")

// work is what is left of a request once it has been read and checked: the part
// that waits on the log or the projection.
type work func(context.Context) (any, error)

// dispatch reads and checks each request on the endpoint's own goroutine, so
// that bad input is answered at once (and counted as an error in the service's
// stats), and runs the rest on a goroutine of its own, at most MaxConcurrent at
// once, so that a read waiting for its min_seq holds up no other.
func (s *service) dispatch(ctx context.Context, h func(micro.Request) (work, error), slots chan struct{}, cancellable bool) micro.HandlerFunc {
	workCtx := context.WithoutCancel(ctx)
	if cancellable {
		workCtx = ctx
	}
	return func(req micro.Request) {
		w, err := h(req)
		if err != nil {
			s.respondNow(req, err)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			s.respondNow(req, unavailable(fmt.Errorf("busy: %d requests in hand; retry", cap(slots))))
			return
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			<-slots
			s.respondNow(req, unavailable(errStopping))
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		subject, replyTo := req.Subject(), req.Reply()
		go func() {
			defer func() { <-slots; s.wg.Done() }()
			reply, err := w(workCtx)
			s.respondLater(subject, replyTo, reply, err)
		}()
	}
}

// answer builds a reply: the JSON body, and for an error its code and one-line
// description for the micro error headers.
func (s *service) answer(subject string, reply any, err error) (body []byte, code int, desc string) {
	if err == nil {
		body, err = marshalReply(reply)
		if err == nil {
			err = s.fits(subject, body)
		}
		if err == nil {
			return body, 0, ""
		}
	}
	code = errorCode(err)
	if code == 500 {
		s.logger.Error("service: request failed", "subject", subject, "err", err)
	}
	desc = oneLine(err.Error())
	var owners *client.ServiceError
	if errors.As(err, &owners) {
		desc = owners.Description // the owner's answer, passed on as it was
	}
	body, _ = json.Marshal(map[string]any{"error": map[string]any{"code": code, "description": desc}})
	return body, code, desc
}

// marshalReply writes a reply. The client's wire types marshal themselves
// (client/replyjson.go), compact and HTML-safe, byte for byte as encoding/json
// writes their JSON forms: going through json.Marshal would only scan and copy
// each reply again (~3% of the CPU of a fan-out run, on statuses replies of 256).
func marshalReply(reply any) ([]byte, error) {
	if m, ok := reply.(json.Marshaler); ok {
		return m.MarshalJSON()
	}
	return json.Marshal(reply)
}

// fits checks that a reply is no larger than the server carries (its
// max_payload): one that is not could not be sent, and the requester would wait
// for nothing. A statuses reply that is too large is a 400: the requester can ask
// for fewer contacts at once (1000 contacts of 256 '<' each, escaped in JSON,
// make 1.6 MB).
func (s *service) fits(subject string, body []byte) error {
	limit := s.cfg.Conn.MaxPayload()
	if limit <= 0 || int64(len(body)) <= limit {
		return nil
	}
	err := fmt.Errorf("the reply is %d bytes, more than the %d bytes the NATS server carries (max_payload)", len(body), limit)
	if subject == events.StatusesSubject {
		return badRequest(fmt.Errorf("%w; ask for fewer contacts at once", err))
	}
	return err
}

// respondNow answers an error from the endpoint's own goroutine, through micro,
// which counts it in the service's stats.
func (s *service) respondNow(req micro.Request, err error) {
	body, code, desc := s.answer(req.Subject(), nil, err)
	if err := req.Error(strconv.Itoa(code), desc, body); err != nil {
		s.logger.Debug("service: error reply failed", "subject", req.Subject(), "err", err)
	}
}

// respondLater answers from a goroutine of its own. It publishes the reply itself:
// micro's Request records its response for the stats after the handler returns,
// and may not be touched once it has.
func (s *service) respondLater(subject, replyTo string, reply any, err error) {
	if replyTo == "" {
		return
	}
	body, code, desc := s.answer(subject, reply, err)
	msg := &nats.Msg{Subject: replyTo, Data: body}
	if code != 0 {
		msg.Header = nats.Header{micro.ErrorHeader: {desc}, micro.ErrorCodeHeader: {strconv.Itoa(code)}}
	}
	if err := s.cfg.Conn.PublishMsg(msg); err != nil {
		s.logger.Debug("service: reply failed", "subject", subject, "err", err)
	}
}

// errorCode maps an error to the service's status code: 400, 409, 429, 503 or 500.
func errorCode(err error) int {
	var passed *client.ServiceError
	if errors.As(err, &passed) {
		return passed.Code
	}
	switch {
	case errors.Is(err, client.ErrBadRequest),
		errors.Is(err, events.ErrInvalidContact), errors.Is(err, events.ErrInvalidToken),
		errors.Is(err, events.ErrUnknownStatus), errors.Is(err, events.ErrNotSettable):
		return 400
	case errors.Is(err, client.ErrConflict):
		return 409
	case errors.Is(err, client.ErrTooMany):
		return 429
	case errors.Is(err, client.ErrUnavailable):
		return 503
	}
	return 500
}

// oneLine keeps an error description fit for a header.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

func (s *service) set(req micro.Request) (work, error) {
	prefix := events.SetPrefix
	passedOn := strings.HasPrefix(req.Subject(), events.OwnerSetPrefix)
	if passedOn {
		// presence.owner.set.<partition>.<token>
		p, _, _ := strings.Cut(strings.TrimPrefix(req.Subject(), events.OwnerSetPrefix), ".")
		prefix = events.OwnerSetPrefix + p + "."
	}
	contact, err := contactOf(req.Subject(), prefix)
	if err != nil {
		return nil, err
	}
	sr, err := client.DecodeSetRequest(contact, req.Data())
	if err != nil {
		return nil, err
	}
	return s.toOwner(contact, req.Data(), passedOn, events.OwnerSetSubject, func(ctx context.Context, w *Writer) (any, error) {
		return w.Set(ctx, sr)
	}), nil
}

// toOwner returns the work of a request of contact: call on the writer of its
// partition, within SetTimeout; where another engine owns the partition, the
// request (body) passed on to it over subject(partition, contact), unless it
// was passed on to this engine already.
func (s *service) toOwner(contact string, body []byte, passedOn bool, subject func(int, string) string,
	call func(context.Context, *Writer) (any, error)) work {
	w := s.cfg.Writers[events.Partition(contact, len(s.cfg.Writers))]
	return func(ctx context.Context) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.SetTimeout)
		defer cancel()
		res, err := call(ctx, w)
		if passedOn || !errors.Is(err, errNotOwner) {
			return res, err
		}
		w.passedOn.Add(1)
		return s.passOn(ctx, subject(w.Partition(), contact), body)
	}
}

// endpoint returns the handler of an endpoint's request op, on
// presence.endpoint.<op>.<token>. A request another engine passed on comes on
// presence.owner.endpoint.<op>.<partition>.<token>, answered by endpointPassed.
func (s *service) endpoint(op string) func(micro.Request) (work, error) {
	prefix := map[string]string{client.OpSignIn: events.SignInPrefix, client.OpHeartbeat: events.HeartbeatPrefix,
		client.OpReport: events.ReportPrefix, client.OpSignOut: events.SignOutPrefix, client.OpPrefer: events.PreferPrefix,
		client.OpSettings: events.SettingsPrefix}[op]
	return func(req micro.Request) (work, error) {
		contact, err := contactOf(req.Subject(), prefix)
		if err != nil {
			return nil, err
		}
		return s.endpointWork(contact, op, req.Data(), false)
	}
}

// endpointPassed handles an endpoint's request another engine passed on to
// this one, the owner of its contact's partition.
func (s *service) endpointPassed(req micro.Request) (work, error) {
	// presence.owner.endpoint.<op>.<partition>.<token>
	rest := strings.TrimPrefix(req.Subject(), events.OwnerEndpointPrefix)
	op, rest, _ := strings.Cut(rest, ".")
	p, _, _ := strings.Cut(rest, ".")
	contact, err := contactOf(req.Subject(), events.OwnerEndpointPrefix+op+"."+p+".")
	if err != nil {
		return nil, err
	}
	return s.endpointWork(contact, op, req.Data(), true)
}

func (s *service) endpointWork(contact, op string, body []byte, passedOn bool) (work, error) {
	er, err := client.DecodeEndpointRequest(contact, op, body)
	if err != nil {
		return nil, err
	}
	subject := func(p int, contact string) string { return events.OwnerEndpointSubject(op, p, contact) }
	return s.toOwner(contact, body, passedOn, subject, func(ctx context.Context, w *Writer) (any, error) {
		return w.Endpoint(ctx, er)
	}), nil
}

// passOn passes a request on to the engine that owns its contact's
// partition, on subject, and returns its answer as it is. While no engine owns
// it (one is taking it over, or the owner is stopping), it asks again until
// ctx is done.
func (s *service) passOn(ctx context.Context, subject string, body []byte) (any, error) {
	backoff := retry.Backoff{First: 20 * time.Millisecond, Max: 500 * time.Millisecond}
	for {
		msg, err := s.cfg.Conn.RequestWithContext(ctx, subject, body)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			// No owner yet: asked again below.
		case err != nil && ctx.Err() != nil:
			return nil, unavailable(errors.New("the log's owner did not answer in time: the set may yet be stored; " +
				"retry with the same request_id to find out"))
		case err != nil:
			return nil, unavailable(fmt.Errorf("pass the set on to the log's owner: %w", err))
		case msg.Header.Get(micro.ErrorCodeHeader) == "":
			if !json.Valid(msg.Data) {
				return nil, fmt.Errorf("the owner's answer is not understood: %q", msg.Data)
			}
			return json.RawMessage(msg.Data), nil
		default:
			desc := msg.Header.Get(micro.ErrorHeader)
			if desc != errNotOwner.Error() && desc != errStopping.Error() {
				code, _ := strconv.Atoi(msg.Header.Get(micro.ErrorCodeHeader))
				return nil, &client.ServiceError{Code: code, Description: desc}
			}
			// The owner stepped down or is stopping, with the set
			// untouched: the next one answers.
		}
		if !backoff.Wait(ctx) {
			return nil, unavailable(errors.New("no engine owns the contact's partition of the log at the moment (one is taking it over); retry"))
		}
	}
}

// serveOwner answers the requests passed on to this engine on subject while
// it owns w's partition, through dispatch as the service's own endpoints are.
func (s *service) serveOwner(ctx context.Context, w *Writer, subject string, handle micro.HandlerFunc) {
	var sub *nats.Subscription
	defer func() {
		leave(s.cfg.Conn, sub)
	}()
	for {
		changed := w.Changed()
		switch owning := w.Owning(); {
		case owning && sub == nil:
			var err error
			// A queue group: should a former owner still listen for a
			// moment, each request still reaches one engine only.
			sub, err = s.cfg.Conn.QueueSubscribe(subject, "owner", func(m *nats.Msg) { handle(passedOn{m}) })
			if err != nil {
				s.logger.Error("service: cannot take the sets passed on to the owner; other engines' sets wait", "err", err)
			}
		case !owning && sub != nil:
			leave(s.cfg.Conn, sub)
			sub = nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// leave ends a subscription to the sets passed on to an owner. Drained while
// connected, not dropped: a set the server handed over before it heard of the
// unsubscription is still answered (errNotOwner, or errStopping), and its
// sender asks again, where a dropped one would leave it waiting for its
// timeout. Dropped while not connected: nothing arrives then, and a
// subscription draining at the reconnection would be made again.
func leave(nc *nats.Conn, sub *nats.Subscription) {
	switch {
	case sub == nil:
	case nc.IsConnected():
		_ = sub.Drain()
	default:
		_ = sub.Unsubscribe()
	}
}

// passedOn is a set passed on by another engine, as a micro.Request.
type passedOn struct{ msg *nats.Msg }

func (p passedOn) Respond(data []byte, _ ...micro.RespondOpt) error { return p.msg.Respond(data) }
func (p passedOn) RespondJSON(v any, _ ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return p.msg.Respond(b)
}
func (p passedOn) Error(code, desc string, data []byte, _ ...micro.RespondOpt) error {
	return p.msg.RespondMsg(&nats.Msg{Data: data, Header: nats.Header{micro.ErrorHeader: {desc}, micro.ErrorCodeHeader: {code}}})
}
func (p passedOn) Data() []byte           { return p.msg.Data }
func (p passedOn) Headers() micro.Headers { return micro.Headers(p.msg.Header) }
func (p passedOn) Subject() string        { return p.msg.Subject }
func (p passedOn) Reply() string          { return p.msg.Reply }

func (s *service) status(req micro.Request) (work, error) {
	contact, err := contactOf(req.Subject(), events.StatusPrefix)
	if err != nil {
		return nil, err
	}
	minSeq, err := client.DecodeReadRequest(req.Data())
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (any, error) {
		return s.cfg.Reader.Status(ctx, contact, minSeq)
	}, nil
}

func (s *service) statuses(req micro.Request) (work, error) {
	contacts, minSeq, err := client.DecodeStatusesRequest(req.Data())
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (any, error) {
		replies, err := s.cfg.Reader.Statuses(ctx, contacts, minSeq)
		if err != nil {
			return nil, err
		}
		return client.StatusesReply{Statuses: replies}, nil
	}, nil
}

func (s *service) self(req micro.Request) (work, error) {
	contact, err := contactOf(req.Subject(), events.SelfPrefix)
	if err != nil {
		return nil, err
	}
	minSeq, err := client.DecodeReadRequest(req.Data())
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (any, error) {
		return s.cfg.Reader.Self(ctx, contact, minSeq)
	}, nil
}

// contactOf decodes the contact of a service subject; a bad token is a 400.
func contactOf(subject, prefix string) (string, error) {
	c, err := events.ContactOf(subject, prefix)
	if err != nil {
		return "", badRequest(err)
	}
	return c, nil
}
