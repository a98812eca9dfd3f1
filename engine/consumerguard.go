package engine

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-engine/presence/events"
)

// jsConsumerCreate is the JetStream API's prefix for creating a consumer:
// then the stream, the consumer's name and, optionally, its filter.
const jsConsumerCreate = "$JS.API.CONSUMER.CREATE."

// consumerGuard creates consumers on the log and the feed for the roles of a
// server with accounts (docs/access.md). A role's account imports the
// streams' read API from the engine's account, but not the creation of a
// consumer: that it imports from events.ConsumerCreatePrefix, where this
// guard looks at what is asked and passes it on to JetStream only if it is a
// pull consumer. A push consumer would have the server deliver the stream
// to its deliver subject in the engine's account, whoever may publish there
// or not (another contact's presence.live subject, another user's inbox);
// a pull consumer delivers to its requester's reply subject, which in an
// account of the requester's own reaches no one else.
//
// Every engine runs one, in a queue group: a role's request is answered
// once, by any engine. JetStream's answer is handed back as it is, so what
// the role's client sees is what it would see from JetStream itself.
type consumerGuard struct {
	nc     *nats.Conn
	logger *slog.Logger
}

// consumerGuardQueue is the queue group of the engines' guards.
const consumerGuardQueue = "presence-consumer-guard"

// consumerCreateTimeout bounds JetStream's answer to a creation passed on.
const consumerCreateTimeout = 10 * time.Second

// startConsumerGuard starts the guard on nc, until nc is drained.
func startConsumerGuard(nc *nats.Conn, logger *slog.Logger) error {
	g := &consumerGuard{nc: nc, logger: logger}
	if _, err := nc.QueueSubscribe(events.ConsumerCreatePrefix+">", consumerGuardQueue, g.create); err != nil {
		return fmt.Errorf("consumer guard: subscribe: %w", err)
	}
	return nil
}

// create answers one request for a consumer: JetStream's answer if the
// consumer is one a role may have, a refusal naming what it may not
// otherwise.
func (g *consumerGuard) create(m *nats.Msg) {
	rest := strings.TrimPrefix(m.Subject, events.ConsumerCreatePrefix)
	if err := checkConsumerRequest(rest, m.Data); err != nil {
		g.answer(m, refusal(400, err.Error()))
		return
	}
	resp, err := g.nc.RequestMsg(&nats.Msg{Subject: jsConsumerCreate + rest, Header: m.Header, Data: m.Data}, consumerCreateTimeout)
	if err != nil {
		g.logger.Warn("consumer guard: JetStream did not answer a consumer's creation", "subject", jsConsumerCreate+rest, "err", err)
		g.answer(m, refusal(503, fmt.Sprintf("the engine could not reach JetStream: %v; retry", err)))
		return
	}
	g.answer(m, resp.Data)
}

func (g *consumerGuard) answer(m *nats.Msg, data []byte) {
	if err := m.Respond(data); err != nil {
		g.logger.Debug("consumer guard: answer failed", "err", err)
	}
}

// checkConsumerRequest says why a role may not create the consumer asked
// for on subject (what follows "$JS.API.CONSUMER.CREATE."), if it may not:
// one on a stream other than the log and the feed, or that is not a pull
// consumer, or created paused.
func checkConsumerRequest(subject string, data []byte) error {
	stream, _, _ := strings.Cut(subject, ".")
	if stream != events.FeedStream && stream != events.LogStream {
		return fmt.Errorf("stream %q: the engine creates consumers on %s and %s only", stream, events.FeedStream, events.LogStream)
	}
	var req struct {
		Config struct {
			DeliverSubject string     `json:"deliver_subject"`
			DeliverGroup   string     `json:"deliver_group"`
			PauseUntil     *time.Time `json:"pause_until"`
		} `json:"config"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return fmt.Errorf("consumer of %s: the request is not a consumer's creation: %v", stream, err)
	}
	switch c := req.Config; {
	case c.DeliverSubject != "" || c.DeliverGroup != "":
		return fmt.Errorf("consumer of %s: deliver_subject %q: consumers are pull consumers here; create one without a deliver subject and fetch from it", stream, c.DeliverSubject)
	case c.PauseUntil != nil:
		return fmt.Errorf("consumer of %s: pause_until %s: a consumer is not created paused here", stream, c.PauseUntil.Format(time.RFC3339))
	}
	return nil
}

// refusal is a JetStream API error answer, which JetStream clients read as
// they read JetStream's own.
func refusal(code int, description string) []byte {
	var resp struct {
		Type  string `json:"type"`
		Error struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	resp.Type = "io.nats.jetstream.api.v1.consumer_create_response"
	resp.Error.Code, resp.Error.Description = code, description
	data, _ := json.Marshal(resp)
	return data
}
