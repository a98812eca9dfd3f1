package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
)

// jsConsumerAPI is the JetStream API's prefix for consumers: then the op
// (CREATE, INFO, ...), the stream, the consumer's name and, for a creation,
// optionally its filter.
const jsConsumerAPI = "$JS.API.CONSUMER."

// guardedOps are the consumer ops a role's account imports from the
// engine's guard: "$JS.API.CONSUMER.<OP>." is reached there at
// events.ConsumerPrefix, the account, and the op in lower case.
var guardedOps = []string{"CREATE", "INFO", "RESET", "DELETE"}

// guardedSubject is where the account of owner imports the JetStream
// consumer API subject from, if the guard serves it. The account's name is
// in the subject, which the server writes on the way through the import:
// no requester can name another, as it could in a header.
func guardedSubject(subject, owner string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, jsConsumerAPI)
	if !ok {
		return "", false
	}
	op, after, _ := strings.Cut(rest, ".")
	if !slices.Contains(guardedOps, op) {
		return "", false
	}
	return events.ConsumerPrefix + owner + "." + strings.ToLower(op) + "." + after, true
}

// ownerKey is the metadata key of a consumer that names the account that
// created it through the guard.
const ownerKey = "presence.owner"

// maxPullWait is the longest a pull request that names an expiry may wait on
// a consumer the guard creates (max_expires; the server does not bound one
// that names none): its messages reach the requester through the server's
// way back from the import, which lasts two minutes.
const maxPullWait = time.Minute

// consumerGuard creates, reads, resets and deletes consumers on the log and
// the feed for the roles of a server with accounts (docs/access.md). A
// role's account imports the streams' read API from the engine's account,
// but those four ops it imports from events.ConsumerPrefix, where the guard
// looks at what is asked and passes it on to JetStream only if it may be
// done:
//   - a creation only of a pull consumer, not paused: a push consumer would
//     have the server deliver the stream to its deliver subject in the
//     engine's account, whoever may publish there or not (another contact's
//     presence.live subject, another user's inbox), where a pull consumer
//     delivers to its requester's reply subject, which in an account of the
//     requester's own reaches no one else;
//   - each op only on a consumer of the requester's own account, or a new
//     one: the guard writes the account it came from (which its import names
//     in the subject, guardedSubject) into the consumer's metadata. Another
//     account's consumer, or the engine's own, reads as not found, and its
//     name cannot be taken over.
//
// Every engine runs one, in a queue group: a role's request is answered
// once, by any engine. JetStream's answer is handed back as it is, so what
// the role's client sees is what it would see from JetStream itself.
type consumerGuard struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	logger *slog.Logger
	slots  chan struct{}
}

// consumerGuardQueue is the queue group of the engines' guards.
const consumerGuardQueue = "presence-consumer-guard"

// guardTimeout bounds JetStream's answers to what the guard passes on:
// below a client's own wait (nats.go's is 5s), so that it answers first.
const guardTimeout = 4 * time.Second

// guardSlots is how many requests a guard handles at once.
const guardSlots = 64

// startConsumerGuard starts the guard on nc, until nc is drained.
func startConsumerGuard(nc *nats.Conn, logger *slog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("consumer guard: %w", err)
	}
	g := &consumerGuard{nc: nc, js: js, logger: logger, slots: make(chan struct{}, guardSlots)}
	if _, err := nc.QueueSubscribe(events.ConsumerPrefix+">", consumerGuardQueue, g.receive); err != nil {
		return fmt.Errorf("consumer guard: subscribe: %w", err)
	}
	return nil
}

// receive handles m beside the others in flight, up to guardSlots: one slow
// answer of JetStream holds no one else's.
func (g *consumerGuard) receive(m *nats.Msg) {
	g.slots <- struct{}{}
	go func() {
		defer func() { <-g.slots }()
		g.answer(m, g.serve(m))
	}()
}

// serve answers one request: JetStream's answer if the op may be done, a
// refusal in JetStream's form, naming what may not, otherwise.
func (g *consumerGuard) serve(m *nats.Msg) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	owner, rest, _ := strings.Cut(strings.TrimPrefix(m.Subject, events.ConsumerPrefix), ".")
	op, rest, _ := strings.Cut(rest, ".")
	op = strings.ToUpper(op)
	if !slices.Contains(guardedOps, op) {
		return refusal(400, 0, fmt.Sprintf("%s: the guard does %s only", m.Subject, strings.ToLower(strings.Join(guardedOps, ", "))))
	}
	stream, after, _ := strings.Cut(rest, ".")
	name, _, _ := strings.Cut(after, ".")
	if err := checkConsumerStream(stream); err != nil {
		return refusal(400, 0, err.Error())
	}
	if name == "" {
		return refusal(400, 0, fmt.Sprintf("%s: no consumer named; want %s.<consumer>", m.Subject, m.Subject))
	}
	var create map[string]any // a creation's request, as it is passed on
	if op == "CREATE" {
		var err error
		if create, err = creation(stream, m.Data); err != nil {
			return refusal(400, 0, err.Error())
		}
	}
	info, exists, err := g.lookUp(ctx, stream, name)
	if err != nil {
		return refusal(503, 0, err.Error())
	}
	theirs := !exists || consumerOwner(info) == owner
	data := m.Data
	switch {
	case op == "CREATE":
		if !theirs {
			return refusal(400, 0, fmt.Sprintf("consumer %q of %s: the name is another account's; choose another", name, stream))
		}
		if !exists && create["action"] == "update" {
			return refusal(400, jsConsumerDoesNotExist, "consumer does not exist")
		}
		if !exists {
			if err := g.roomFor(ctx, stream, owner); err != nil {
				return refusal(429, 0, err.Error())
			}
		}
		if data, err = guardedCreate(stream, create, owner, exists); err != nil {
			return refusal(400, 0, err.Error())
		}
	case !theirs || !exists:
		return refusal(404, jsConsumerNotFound, "consumer not found")
	case op == "INFO":
		return info
	}
	resp, err := g.nc.RequestWithContext(ctx, jsConsumerAPI+op+"."+rest, data)
	if err != nil {
		level := slog.LevelWarn
		if g.nc.IsClosed() || g.nc.IsDraining() { // the engine is stopping
			level = slog.LevelDebug
		}
		g.logger.Log(ctx, level, "consumer guard: JetStream did not answer", "subject", jsConsumerAPI+op+"."+rest, "err", err)
		return refusal(503, 0, fmt.Sprintf("the engine could not reach JetStream: %v; retry", err))
	}
	return resp.Data
}

// The consumers the guard lets roles have on a stream: each account so many,
// and all of them so many, below the server's default of 1000 a stream
// (JetStream's own), so that no account can take every consumer and the
// engine keeps room for its own.
var (
	accountConsumers = 32
	roleConsumers    = 900
)

// roomFor says why owner may not have one more consumer on stream, if it
// may not: its account has accountConsumers there, or roles have
// roleConsumers in all. Past accountConsumers consumers on the stream it
// reads every consumer's info: a creation is rare next to what it serves.
func (g *consumerGuard) roomFor(ctx context.Context, stream, owner string) error {
	s, err := g.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("the engine could not read %s: %v; retry", stream, err)
	}
	if s.CachedInfo().State.Consumers < min(accountConsumers, roleConsumers) {
		return nil // fewer in all than either limit
	}
	mine, all := 0, 0
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if o := info.Config.Metadata[ownerKey]; o != "" {
			all++
			if o == owner {
				mine++
			}
		}
	}
	switch {
	case list.Err() != nil:
		return fmt.Errorf("the engine could not count the consumers of %s: %v; retry", stream, list.Err())
	case mine >= accountConsumers:
		return fmt.Errorf("account %s has %d consumers of %s, the most one account may have: delete one it no longer uses (a durable stays until deleted; an ordered one goes after minutes unread)", owner, mine, stream)
	case all >= roleConsumers:
		return fmt.Errorf("%s has %d consumers of its users, the most the engine lets them have: retry once some have gone", stream, all)
	}
	return nil
}

func (g *consumerGuard) answer(m *nats.Msg, data []byte) {
	if err := m.Respond(data); err != nil {
		g.logger.Debug("consumer guard: answer failed", "err", err)
	}
}

// JetStream's error codes for a consumer not found, and for an update of a
// consumer that does not exist, which its clients read as such.
const (
	jsConsumerNotFound     = 10014
	jsConsumerDoesNotExist = 10149
)

// lookUp asks JetStream for the consumer's info: its answer, and whether
// the consumer exists.
func (g *consumerGuard) lookUp(ctx context.Context, stream, name string) ([]byte, bool, error) {
	resp, err := g.nc.RequestWithContext(ctx, jsConsumerAPI+"INFO."+stream+"."+name, nil)
	if err != nil {
		return nil, false, fmt.Errorf("the engine could not reach JetStream: %v; retry", err)
	}
	var r struct {
		Error *struct {
			Code    int `json:"code"`
			ErrCode int `json:"err_code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, false, fmt.Errorf("JetStream's answer about consumer %q: %v", name, err)
	}
	if r.Error != nil {
		if r.Error.ErrCode == jsConsumerNotFound {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("JetStream's answer about consumer %q: %s", name, resp.Data)
	}
	return resp.Data, true, nil
}

// consumerOwner is the owner a consumer's info names.
func consumerOwner(info []byte) string {
	var r struct {
		Config struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"config"`
	}
	_ = json.Unmarshal(info, &r)
	return r.Config.Metadata[ownerKey]
}

// checkConsumerStream says why the guard does nothing on stream, if it
// does not.
func checkConsumerStream(stream string) error {
	if stream != events.FeedStream && stream != events.LogStream {
		return fmt.Errorf("stream %q: the engine creates consumers on %s and %s only", stream, events.FeedStream, events.LogStream)
	}
	return nil
}

// creation reads a consumer's creation, refusing any key of the request and
// of its config that is not in lower case: JetStream matches keys without
// regard to case and takes the last of those that match, so that
// "Deliver_subject" beside "deliver_subject" would pass a check of one and
// reach JetStream as the other.
func creation(stream string, data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // sequences and durations stay exact
	var req map[string]any
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("consumer of %s: the request is not a consumer's creation: %v", stream, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("consumer of %s: the request is not a consumer's creation: more than one JSON object", stream)
	}
	cfg, ok := req["config"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("consumer of %s: the request has no config", stream)
	}
	for _, m := range []map[string]any{req, cfg} {
		for k := range m {
			if !apiKey.MatchString(k) {
				return nil, fmt.Errorf("consumer of %s: key %q: want the JetStream API's own, in lower case", stream, k)
			}
		}
	}
	return req, nil
}

// apiKey is the form of every key of the JetStream API's requests.
var apiKey = regexp.MustCompile(`^[a-z0-9_]+$`)

// checkConsumerRequest says why a role may not create the consumer asked
// for on stream, if it may not: one that is not a pull consumer, or created
// paused. It reads data as JetStream does.
func checkConsumerRequest(stream string, data []byte) error {
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

// guardedCreate returns what the guard passes on to JetStream of a creation
// (as creation read it), once checked as JetStream will read it: the
// consumer's metadata names its owner, a pull request waits at most
// maxPullWait, and a consumer that did not exist is created only if it
// still does not, so that no other account takes its name meanwhile.
func guardedCreate(stream string, req map[string]any, owner string, exists bool) ([]byte, error) {
	cfg := req["config"].(map[string]any) // creation made sure
	meta, _ := cfg["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta[ownerKey] = owner
	cfg["metadata"] = meta
	n, _ := cfg["max_expires"].(json.Number)
	if wait, _ := n.Int64(); wait <= 0 || wait > int64(maxPullWait) {
		cfg["max_expires"] = int64(maxPullWait)
	}
	if !exists {
		req["action"] = "create"
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return data, checkConsumerRequest(stream, data)
}

// refusal is a JetStream API error answer, which JetStream clients read as
// they read JetStream's own.
func refusal(code, errCode int, description string) []byte {
	var resp struct {
		Type  string `json:"type"`
		Error struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code,omitempty"`
			Description string `json:"description"`
		} `json:"error"`
	}
	resp.Type = "io.nats.jetstream.api.v1.consumer_create_response"
	resp.Error.Code, resp.Error.ErrCode, resp.Error.Description = code, errCode, description
	data, _ := json.Marshal(resp)
	return data
}
