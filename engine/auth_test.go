package engine_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

const (
	alice = "sip:alice@contoso.com"
	bob   = "sip:bob@contoso.com"
)

// roleConn is a client connection of one user, with the asynchronous errors
// the server sent it (permissions violations arrive that way).
type roleConn struct {
	user string
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func connectAs(t *testing.T, url, user string) *roleConn {
	t.Helper()
	c := &roleConn{user: user, errs: make(chan error, 64)}
	c.nc = enginetest.ConnectAs(t, url, user, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case c.errs <- err:
		default:
		}
	}))
	c.js, _ = jetstream.New(c.nc)
	return c
}

// refused waits for the server to refuse what the user did on subject.
func (c *roleConn) refused(t *testing.T, what, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-timeout:
			t.Errorf("%s: %s was not refused with a permissions violation on %q", c.user, what, subject)
			return
		}
	}
}

// publish sends a request-like message and expects it refused.
func (c *roleConn) forbidPublish(t *testing.T, what, subject string, hdr nats.Header, data string) {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Reply: c.nc.NewRespInbox(), Header: hdr, Data: []byte(data)}
	if err := c.nc.PublishMsg(msg); err != nil {
		t.Fatalf("%s: %s: %v", c.user, what, err)
	}
	c.refused(t, what, subject)
}

func (c *roleConn) forbidSubscribe(t *testing.T, what, subject string) {
	t.Helper()
	sub, err := c.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("%s: subscribe %s: %v", c.user, subject, err)
	}
	defer sub.Unsubscribe()
	c.refused(t, what, subject)
}

// feed is the feed as the user reads it (its info, consumers on it).
func (c *roleConn) feed(t *testing.T) jetstream.Stream {
	t.Helper()
	s, err := c.js.Stream(natstest.Context(t), events.FeedStream)
	if err != nil {
		t.Fatalf("%s reads the feed's info: %v", c.user, err)
	}
	return s
}

// quickCtx bounds a call that is to be refused: a refused request gets no
// answer, so the deadline is what ends it.
func quickCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// logState is what must not change under forbidden actions.
func logState(t *testing.T, js jetstream.JetStream) (log, feed uint64) {
	t.Helper()
	for _, name := range []string{events.LogStream, events.FeedStream} {
		s, err := js.Stream(natstest.Context(t), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if name == events.LogStream {
			log = s.CachedInfo().State.LastSeq
		} else {
			feed = s.CachedInfo().State.LastSeq
		}
	}
	return log, feed
}

func TestRolesAllowWhatTheyMayDo(t *testing.T) {
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	url := e.ClientURL()
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("a connection without credentials was let in")
	}
	if nc, err := nats.Connect(url, nats.UserInfo("alice", "wrong")); err == nil {
		nc.Close()
		t.Fatal("a connection with a wrong password was let in")
	}

	a := connectAs(t, url, "alice")
	ca := client.New(a.nc)
	first, err := ca.Set(natstest.Context(t), client.SetRequest{Contact: alice, Status: events.Online, Name: "Alice"})
	if err != nil {
		t.Fatalf("alice sets her own status: %v", err)
	}
	if r, err := ca.Self(natstest.Context(t), alice, first.Seq); err != nil || r.Status != events.Online {
		t.Fatalf("alice reads her own self: %+v, %v", r, err)
	}
	crm := connectAs(t, url, "crm")
	// crm follows the feed while alice changes.
	sub, err := client.NewSubscriber(client.SubscriberConfig{Conn: crm.nc, Reader: client.New(crm.nc), Start: client.StartAll()})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan client.Reply, 16)
	sctx, stop := context.WithCancel(natstest.Context(t))
	defer stop()
	go sub.Run(sctx, func(ctx context.Context, c client.Change) error {
		r, err := c.Current(ctx)
		if err != nil {
			return err
		}
		got <- r
		return nil
	})
	res, err := ca.Set(natstest.Context(t), client.SetRequest{Contact: alice, Status: events.Busy})
	if err != nil {
		t.Fatal(err)
	}
	for r := range got { // crm's handler reads each change's current status
		if r.Seq == res.Seq {
			if r.Status != events.Busy {
				t.Errorf("crm's handler read %+v, want busy", r)
			}
			break
		}
	}
	// And durably: the consumer created through the engine's guard, each
	// change acknowledged.
	durable, err := client.NewSubscriber(client.SubscriberConfig{Conn: crm.nc, Reader: client.New(crm.nc), Durable: "crm-main", Start: client.StartAll()})
	if err != nil {
		t.Fatal(err)
	}
	dctx, dstop := context.WithCancel(natstest.Context(t))
	defer dstop()
	handled := make(chan uint64, 16)
	go durable.Run(dctx, func(_ context.Context, c client.Change) error { handled <- c.Seq; return nil })
	for seq := range handled {
		if seq == res.Seq {
			break
		}
	}
	for _, who := range []*roleConn{a, crm} {
		r, err := client.New(who.nc).Status(natstest.Context(t), alice, res.Seq)
		if err != nil || r.Status != events.Busy {
			t.Errorf("%s reads alice's status: %+v, %v", who.user, r, err)
		}
		if _, err := client.New(who.nc).Statuses(natstest.Context(t), []string{alice, bob}, 0); err != nil {
			t.Errorf("%s reads statuses: %v", who.user, err)
		}
	}

	// The auditor reads the log, the truth included, and verifies.
	au := connectAs(t, url, "audit")
	var replayed int
	if _, err := audit.NewLog(au.js, events.LogStream).Replay(natstest.Context(t), audit.Query{}, func(audit.Entry) error { replayed++; return nil }); err != nil || replayed != 2 {
		t.Errorf("auditor replays the log: %d events, %v", replayed, err)
	}
	if r, err := client.New(au.nc).Self(natstest.Context(t), alice, res.Seq); err != nil || r.Status != events.Busy {
		t.Errorf("auditor reads alice's self: %+v, %v", r, err)
	}
	if r, err := engine.NewAdminClient(client.New(au.nc)).Verify(natstest.Context(t), nil); err != nil || !r.OK() {
		t.Errorf("auditor verifies: %+v, %v", r, err)
	}
	// The operator rebuilds.
	ops := connectAs(t, url, "ops")
	if r, err := engine.NewAdminClient(client.New(ops.nc)).Rebuild(natstest.Context(t), nil); err != nil || r.Seq != res.Seq {
		t.Errorf("operator rebuilds: %+v, %v", r, err)
	}
	for _, c := range []*roleConn{a, crm, au, ops} {
		select {
		case err := <-c.errs:
			t.Errorf("%s got an error doing what its role allows: %v", c.user, err)
		default:
		}
	}
	// Her endpoints are hers to sign in, heartbeat and sign out.
	if _, err := ca.SignIn(natstest.Context(t), client.EndpointRequest{Contact: alice, Endpoint: "laptop", Kind: events.KindDesktop}); err != nil {
		t.Fatalf("alice signs her own endpoint in: %v", err)
	}
	if _, err := ca.Heartbeat(natstest.Context(t), alice, "laptop"); err != nil {
		t.Fatalf("alice heartbeats her own endpoint: %v", err)
	}
	if _, err := ca.SignOut(natstest.Context(t), alice, "laptop"); err != nil {
		t.Fatalf("alice signs her own endpoint out: %v", err)
	}
}

func TestRolesRefuseWhatTheyMayNotDo(t *testing.T) {
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	url := e.ClientURL()
	ops := connectAs(t, url, "ops")
	ca := client.New(connectAs(t, url, "alice").nc)
	if _, err := ca.Set(natstest.Context(t), client.SetRequest{Contact: alice, Status: events.Invisible}); err != nil {
		t.Fatal(err)
	}
	e.WaitFeed(t)
	logBefore, feedBefore := logState(t, ops.js)

	event := events.Event{Contact: bob, Status: events.Online, At: time.Now().UTC(), Cause: events.CauseUser}
	forbiddenToAll := func(t *testing.T, c *roleConn) {
		t.Helper()
		c.forbidPublish(t, "setting bob's status", events.SetPrefix+events.Token(bob), nil, `{"status":"busy"}`)
		c.forbidPublish(t, "signing an endpoint of bob's in", events.SignInPrefix+events.Token(bob), nil, `{"endpoint":"x","kind":"web"}`)
		c.forbidPublish(t, "signing an endpoint of bob's out", events.SignOutPrefix+events.Token(bob), nil, `{"endpoint":"x"}`)
		c.forbidPublish(t, "setting bob's preferred status", events.PreferPrefix+events.Token(bob), nil, `{"status":"busy"}`)
		c.forbidPublish(t, "setting bob's settings", events.SettingsPrefix+events.Token(bob), nil, `{"transmit_idle":false}`)
		c.forbidPublish(t, "appending to the log", events.EventSubject(bob), nil, string(event.Encode()))
		c.forbidPublish(t, "appending with Nats-Rollup", events.EventSubject(alice),
			nats.Header{"Nats-Rollup": {"sub"}}, string(event.Encode()))
		c.forbidPublish(t, "appending with a forged Nats-Msg-Id", events.EventSubject(alice),
			nats.Header{"Nats-Msg-Id": {"forged"}}, string(event.Encode()))
		c.forbidPublish(t, "forging a feed entry", events.ChangeSubject(bob), nil, `{"v":1}`)
		c.forbidPublish(t, "forging a feed entry on core NATS", events.LivePrefix+events.Token(bob), nil, `{}`)
		c.forbidPublish(t, "deleting the log", "$JS.API.STREAM.DELETE."+events.LogStream, nil, "")
		c.forbidPublish(t, "purging the log", "$JS.API.STREAM.PURGE."+events.LogStream, nil, "")
		c.forbidPublish(t, "purging the feed", "$JS.API.STREAM.PURGE."+events.FeedStream, nil, "")
		c.forbidPublish(t, "deleting a log message", "$JS.API.STREAM.MSG.DELETE."+events.LogStream, nil, `{"seq":1}`)
		c.forbidPublish(t, "changing the feed's configuration", "$JS.API.STREAM.UPDATE."+events.FeedStream, nil, "{}")
		c.forbidPublish(t, "deleting the feed", "$JS.API.STREAM.DELETE."+events.FeedStream, nil, "")
		c.forbidPublish(t, "rebuilding", events.RebuildSubject, nil, "")
		// Consumers: their names are no one's to list (a durable's name
		// would then be no secret), and no one's to pause (the engine's own
		// stall without a word).
		for _, stream := range []string{events.FeedStream, events.LogStream} {
			c.forbidPublish(t, "listing the consumer names of "+stream, "$JS.API.CONSUMER.NAMES."+stream, nil, "")
			c.forbidPublish(t, "listing the consumers of "+stream, "$JS.API.CONSUMER.LIST."+stream, nil, "")
			c.forbidPublish(t, "pausing a consumer of "+stream, "$JS.API.CONSUMER.PAUSE."+stream+".x", nil, `{"pause_until":"2099-01-01T00:00:00Z"}`)
		}
		c.forbidSubscribe(t, "reading other users' replies", "_INBOX.>")
		if _, err := c.js.Stream(quickCtx(t), events.LogStream); err == nil {
			if err := c.js.DeleteStream(quickCtx(t), events.LogStream); err == nil {
				t.Errorf("%s deleted the log", c.user)
			}
		}
	}
	// The key that seals the feed's log references is the engines' alone:
	// with it, each entry's log sequence would read.
	kvStream := "KV_" + events.EngineBucket
	forbiddenTheKey := func(t *testing.T, c *roleConn) {
		t.Helper()
		c.forbidPublish(t, "a direct get of the seal key", "$JS.API.DIRECT.GET."+kvStream+".$KV."+events.EngineBucket+"."+events.FeedSealKey, nil, "")
		c.forbidPublish(t, "a get from the engines' bucket", "$JS.API.STREAM.MSG.GET."+kvStream, nil, `{"last_by_subj":"$KV.`+events.EngineBucket+`.`+events.FeedSealKey+`"}`)
		c.forbidPublish(t, "a consumer on the engines' bucket", "$JS.API.CONSUMER.CREATE."+kvStream, nil, "{}")
		c.forbidSubscribe(t, "subscribing to the engines' bucket", "$KV."+events.EngineBucket+".>")
		if kv, err := c.js.KeyValue(quickCtx(t), events.EngineBucket); err == nil {
			if _, err := kv.Get(quickCtx(t), events.FeedSealKey); err == nil {
				t.Errorf("%s read the seal key", c.user)
			}
		}
	}
	forbiddenToReaders := func(t *testing.T, c *roleConn) {
		t.Helper()
		c.forbidSubscribe(t, "subscribing to the log's subjects", events.EventsPrefix+">")
		c.forbidPublish(t, "creating a consumer on the log", "$JS.API.CONSUMER.CREATE."+events.LogStream+".x."+events.EventsPrefix+">", nil, "{}")
		c.forbidPublish(t, "a direct get from the log", "$JS.API.DIRECT.GET."+events.LogStream, nil, `{"seq":1}`)
		c.forbidPublish(t, "a get from the log", "$JS.API.STREAM.MSG.GET."+events.LogStream, nil, `{"seq":1}`)
		c.forbidPublish(t, "verifying", events.VerifySubject, nil, "")
		// The account's storage grows with every event, hidden ones too.
		c.forbidPublish(t, "reading the account's JetStream usage", "$JS.API.INFO", nil, "")
		if _, err := audit.NewLog(c.js, events.LogStream).Replay(quickCtx(t), audit.Query{}, func(audit.Entry) error { return nil }); err == nil {
			t.Errorf("%s replayed the log", c.user)
		}
	}

	t.Run("user", func(t *testing.T) {
		c := connectAs(t, url, "alice")
		forbiddenToAll(t, c)
		forbiddenToReaders(t, c)
		forbiddenTheKey(t, c)
		c.forbidPublish(t, "reading bob's self", events.SelfPrefix+events.Token(bob), nil, "")
	})
	t.Run("subscriber", func(t *testing.T) {
		c := connectAs(t, url, "crm")
		forbiddenToAll(t, c)
		forbiddenToReaders(t, c)
		forbiddenTheKey(t, c)
		c.forbidPublish(t, "setting alice's status", events.SetPrefix+events.Token(alice), nil, `{"status":"busy"}`)
		c.forbidPublish(t, "reading alice's self", events.SelfPrefix+events.Token(alice), nil, "")
	})
	t.Run("auditor", func(t *testing.T) {
		c := connectAs(t, url, "audit")
		forbiddenToAll(t, c)
		forbiddenTheKey(t, c)
		c.forbidPublish(t, "setting alice's status", events.SetPrefix+events.Token(alice), nil, `{"status":"busy"}`)
	})
	t.Run("operator", func(t *testing.T) {
		forbiddenTheKey(t, connectAs(t, url, "ops"))
	})

	// Nothing changed: no event, no feed entry, the streams are there.
	if logAfter, feedAfter := logState(t, ops.js); logAfter != logBefore || feedAfter != feedBefore {
		t.Errorf("after the forbidden actions the log ends at %d (was %d), the feed at %d (was %d)", logAfter, logBefore, feedAfter, feedBefore)
	}
	if r, err := client.New(ops.nc).Self(natstest.Context(t), alice, 0); err != nil || r.Status != events.Invisible {
		t.Errorf("alice after the forbidden actions: %+v, %v", r, err)
	}
}

// TestNoOneHasTheServerDeliverForThem: a user cannot have the server deliver
// where she may not publish herself: no push consumer on the feed (to
// another contact's presence.live subject, to another user's inbox), none
// created paused; and an answer to a request of hers, a pull request's
// messages, a direct get's, reach no one else whatever reply subject she
// names. Each user has an account of its own: before, all were in one, and
// the server delivered there.
func TestNoOneHasTheServerDeliverForThem(t *testing.T) {
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	url := e.ClientURL()
	crm := connectAs(t, url, "crm")
	live, err := crm.nc.SubscribeSync(events.LivePrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	crmInbox := client.InboxPrefix("crm") + ".spoofed"
	inbox, err := crm.nc.SubscribeSync(crmInbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := crm.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	a := connectAs(t, url, "alice")
	ca := client.New(a.nc)
	if _, err := ca.Set(natstest.Context(t), client.SetRequest{Contact: alice, Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	e.WaitFeed(t)
	feed := a.feed(t)
	bobLive := events.LivePrefix + events.Token(bob)
	for _, deliver := range []string{bobLive, crmInbox} {
		_, err := feed.CreateConsumer(natstest.Context(t), jetstream.ConsumerConfig{DeliverSubject: deliver, AckPolicy: jetstream.AckNonePolicy})
		if err == nil || !strings.Contains(err.Error(), `deliver_subject "`+deliver+`"`) || !strings.Contains(err.Error(), "pull consumers") {
			t.Errorf("alice creates a push consumer on the feed delivering to %s: %v; want it refused, naming the deliver subject", deliver, err)
		}
	}
	// Nor a key JetStream reads as deliver_subject that the guard would not.
	evil := `{"stream_name":"` + events.FeedStream + `","config":{"name":"evil","deliver_subject":"` + bobLive + `","Deliver_subject":"","ack_policy":"none"}}`
	resp, err := a.nc.Request("$JS.API.CONSUMER.CREATE."+events.FeedStream+".evil", []byte(evil), 5*time.Second)
	if err != nil {
		t.Fatalf("alice's creation with a key in two cases: %v", err)
	}
	if !strings.Contains(string(resp.Data), `key \"Deliver_subject\"`) {
		t.Errorf("alice creates a push consumer with its deliver subject's key in two cases: %s; want it refused", resp.Data)
	}
	paused := time.Now().Add(time.Hour)
	if _, err := feed.CreateConsumer(natstest.Context(t), jetstream.ConsumerConfig{PauseUntil: &paused}); err == nil || !strings.Contains(err.Error(), "pause_until") {
		t.Errorf("alice creates a paused consumer: %v; want it refused, naming pause_until", err)
	}
	// A pull consumer of her own is hers to create and read.
	cons, err := feed.CreateConsumer(natstest.Context(t), jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute})
	if err != nil {
		t.Fatalf("alice creates a pull consumer: %v", err)
	}
	if batch, err := cons.FetchNoWait(10); err != nil {
		t.Fatalf("alice fetches from her consumer: %v", err)
	} else if m := <-batch.Messages(); m == nil {
		t.Fatalf("alice's consumer delivers nothing: %v", batch.Error())
	}

	// Requests whose answers would go to crm.
	for _, r := range []struct{ subject, reply, data string }{
		{events.StatusPrefix + events.Token(bob), bobLive, ""},
		{"$JS.API.CONSUMER.MSG.NEXT." + events.FeedStream + "." + cons.CachedInfo().Name, bobLive, `{"batch":10}`},
		{"$JS.API.DIRECT.GET." + events.FeedStream, crmInbox, `{"seq":1}`},
		{events.StatusPrefix + events.Token(bob), crmInbox, ""},
	} {
		if err := a.nc.PublishRequest(r.subject, r.reply, []byte(r.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Alice's next change is repeated on core NATS after all that: until it
	// comes, crm is handed nothing else.
	if _, err := ca.Set(natstest.Context(t), client.SetRequest{Contact: alice, Status: events.Busy}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := live.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("crm waits for alice's change: %v", err)
		}
		if m.Subject != events.LivePrefix+events.Token(alice) {
			t.Fatalf("crm was handed %q on %s, where alice had it delivered", m.Data, m.Subject)
		}
		if c, err := events.DecodeChange(m.Data); err == nil && c.Previous == events.Online {
			break
		}
	}
	if m, err := inbox.NextMsg(0); err == nil {
		t.Errorf("crm's inbox was handed %q, where alice had it delivered", m.Data)
	}
}

// TestTheGuardCreatesPullConsumersOnly: what the engine's guard refuses to
// create for a role, each refusal naming the value and what is accepted.
func TestTheGuardCreatesPullConsumersOnly(t *testing.T) {
	feed := events.FeedStream + ".c1"
	for _, c := range []struct{ subject, body, want string }{
		{feed, `{"config":{"ack_policy":"none"}}`, ""},
		{events.LogStream + ".c1." + events.EventsPrefix + ">", `{"config":{"filter_subject":"presence.events.>"}}`, ""},
		{"KV_" + events.EngineBucket + ".c1", `{"config":{}}`, `stream "KV_PRESENCE_ENGINE": the engine creates consumers on PRESENCE_CHANGES and PRESENCE only`},
		{feed, `{"config":{"deliver_subject":"_INBOX_crm.x"}}`, `deliver_subject "_INBOX_crm.x": consumers are pull consumers here`},
		{feed, `{"config":{"deliver_group":"g"}}`, `consumers are pull consumers here`},
		{feed, `{"config":{"pause_until":"2099-01-01T00:00:00Z"}}`, `pause_until 2099-01-01T00:00:00Z: a consumer is not created paused here`},
		{feed, `not json`, "not a consumer's creation"},
		// JetStream would read both, and the second would win.
		{feed, `{"config":{}}{"config":{"deliver_subject":"_INBOX_crm.x"}}`, "more than one JSON object"},
		{feed, `{"config":{},"config":{"deliver_subject":"_INBOX_crm.x"}}`, `deliver_subject "_INBOX_crm.x"`},
		// JetStream matches keys whatever their case, the last one winning.
		{feed, `{"config":{"deliver_subject":"_INBOX_crm.x","Deliver_subject":""}}`, `key "Deliver_subject"`},
		{feed, `{"config":{"max_expires":1000000000,"max_expireſ":3600000000000}}`, `key "max_expireſ"`},
		{feed, `{"Config":{"deliver_subject":"_INBOX_crm.x"},"config":{}}`, `key "Config"`},
		{feed, `{"action":"create"}`, "no config"},
	} {
		err := engine.CheckConsumerRequest(c.subject, []byte(c.body))
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s %s: %v; want %q", c.subject, c.body, err, c.want)
		}
	}
}

// TestEachAccountTouchesItsOwnConsumers: a consumer created through the
// engine's guard is its creator's account's: another reads it as not found,
// and can neither take its name, change it (headers only would have its
// subscriber step over every change), reset it nor delete it.
func TestEachAccountTouchesItsOwnConsumers(t *testing.T) {
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	url := e.ClientURL()
	crm, a := connectAs(t, url, "crm"), connectAs(t, url, "alice")
	ctx := natstest.Context(t)
	theirs, mine := crm.feed(t), a.feed(t)
	if _, err := theirs.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "crm-main", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatalf("crm creates its durable: %v", err)
	}
	if _, err := mine.Consumer(ctx, "crm-main"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("alice reads crm's durable: %v; want not found", err)
	}
	if _, err := mine.UpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "crm-main", AckPolicy: jetstream.AckExplicitPolicy, HeadersOnly: true}); err == nil || !strings.Contains(err.Error(), "another account's") {
		t.Errorf("alice changes crm's durable: %v; want it refused", err)
	}
	if _, err := mine.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "crm-main", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Second}); err == nil || !strings.Contains(err.Error(), "another account's") {
		t.Errorf("alice creates a consumer of crm's durable's name: %v; want it refused", err)
	}
	if _, err := mine.ResetConsumer(ctx, "crm-main"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("alice resets crm's durable: %v; want not found", err)
	}
	if err := mine.DeleteConsumer(ctx, "crm-main"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("alice deletes crm's durable: %v; want not found", err)
	}
	if _, err := mine.UpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "nosuch", AckPolicy: jetstream.AckExplicitPolicy}); !errors.Is(err, jetstream.ErrConsumerDoesNotExist) {
		t.Errorf("alice updates a consumer that does not exist: %v; want it does not exist", err)
	}
	cons, err := theirs.Consumer(ctx, "crm-main")
	if err != nil {
		t.Fatalf("crm reads its durable: %v", err)
	}
	cfg := cons.CachedInfo().Config
	if cfg.HeadersOnly || cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.Metadata["presence.owner"] != "crm" || cfg.MaxRequestExpires != time.Minute {
		t.Errorf("crm's durable after alice: %+v; want it as crm made it, owned by crm, pull requests of a minute at most", cfg)
	}
	if err := theirs.DeleteConsumer(ctx, "crm-main"); err != nil {
		t.Errorf("crm deletes its durable: %v", err)
	}
}

// TestTurningAuthOnAndOffKeepsTheLog: with --auth the engine's streams are in
// an account of its own, without it in the server's global account, each a
// directory of its own in the store: the embedded server's streams move
// along, and each run appends to the log the one before left. A store with
// streams in both is refused, naming both.
func TestTurningAuthOnAndOffKeepsTheLog(t *testing.T) {
	dir := t.TempDir()
	set := func(opts engine.Options, st events.Status) client.SetResult {
		t.Helper()
		r := enginetest.Start(t, dir, opts)
		defer r.Stop(t)
		res, err := r.Writer().Set(natstest.Context(t), client.SetRequest{Contact: alice, Status: st})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	set(engine.Options{}, events.Online)
	if res := set(engine.Options{Auth: enginetest.Users}, events.Busy); res.Seq != 2 || res.Previous != events.Online {
		t.Errorf("with --auth after a run without: %+v; want the log of that run continued (seq 2, previous online)", res)
	}
	if res := set(engine.Options{}, events.Away); res.Seq != 3 || res.Previous != events.Busy {
		t.Errorf("without --auth after a run with: %+v; want the log of that run continued (seq 3, previous busy)", res)
	}

	both := t.TempDir()
	for _, account := range []string{"$G", engine.EngineAccount} {
		if err := os.MkdirAll(filepath.Join(both, "jetstream", account, "streams", events.LogStream), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.Open(both, engine.Options{Listen: "127.0.0.1:0", Logger: natstest.Logger(t)})
	if err == nil {
		e.Close()
		t.Fatal("an engine opened a store with streams in two accounts")
	}
	if !strings.Contains(err.Error(), filepath.Join(both, "jetstream", "$G")) || !strings.Contains(err.Error(), filepath.Join(both, "jetstream", engine.EngineAccount)) {
		t.Errorf("a store with streams in two accounts: %v; want both named", err)
	}
}

// TestNoAccountTakesEveryConsumer: the server lets a stream have 1000
// consumers; were one account to take them all, no subscriber could read the
// feed, nor the engine fold the log. The guard lets each account have so
// many, and all roles so many fewer than the server's limit. (Limits made
// small for the test: 3 an account, 5 in all.)
func TestNoAccountTakesEveryConsumer(t *testing.T) {
	t.Cleanup(engine.SetConsumerLimits(3, 5))
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	url := e.ClientURL()
	ctx := natstest.Context(t)
	create := func(c *roleConn, name string) error {
		t.Helper()
		_, err := c.feed(t).CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy})
		return err
	}
	a, crm, aud := connectAs(t, url, "alice"), connectAs(t, url, "crm"), connectAs(t, url, "audit")
	for i := range 3 {
		if err := create(a, fmt.Sprintf("a%d", i)); err != nil {
			t.Fatalf("alice's consumer %d: %v", i, err)
		}
	}
	if err := create(a, "a3"); err == nil || !strings.Contains(err.Error(), "account alice has 3 consumers of PRESENCE_CHANGES, the most one account may have") {
		t.Errorf("alice's fourth consumer: %v; want it refused, naming her count", err)
	}
	if err := create(a, "a0"); err != nil {
		t.Errorf("alice creates one she has again: %v", err)
	}
	for i := range 2 {
		if err := create(crm, fmt.Sprintf("c%d", i)); err != nil {
			t.Fatalf("crm's consumer %d: %v", i, err)
		}
	}
	if err := create(aud, "x"); err == nil || !strings.Contains(err.Error(), "has 5 consumers of its users") {
		t.Errorf("a consumer past all roles' limit: %v; want it refused", err)
	}
}

// TestTheGuardKnowsWhoAsksFromTheSubject: which account asks is in the
// subject its import maps a request to, not in a header a client can forge
// or have the server's swallowed (a header block ending in one CRLF, or a
// line ending in a bare LF, which nats.go still reads as a line).
func TestTheGuardKnowsWhoAsksFromTheSubject(t *testing.T) {
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	url := e.ClientURL()
	crm := connectAs(t, url, "crm")
	ctx := natstest.Context(t)
	theirs := crm.feed(t)
	if _, err := theirs.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "crm-main", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	api := "$JS.API.CONSUMER."
	rawRequest(t, url, "alice", api+"DELETE."+events.FeedStream+".crm-main", "NATS/1.0\nNats-Request-Info: {\"acc\":\"crm\"}\r\n\r\n", "")
	rawRequest(t, url, "alice", api+"DELETE."+events.FeedStream+".crm-main", "NATS/1.0\r\nX: a\r\n", "")
	if _, err := theirs.Consumer(ctx, "crm-main"); err != nil {
		t.Errorf("crm's durable after alice's deletes with a forged and a swallowed header: %v", err)
	}
	long := `{"stream_name":"` + events.FeedStream + `","config":{"name":"long","ack_policy":"none","max_expires":3600000000000,"inactive_threshold":60000000000}}`
	rawRequest(t, url, "alice", api+"CREATE."+events.FeedStream+".long", "NATS/1.0\r\nX: a\r\n", long)
	cons, err := connectAs(t, url, "alice").feed(t).Consumer(ctx, "long")
	if err != nil {
		t.Fatalf("alice's consumer: %v", err)
	}
	if cfg := cons.CachedInfo().Config; cfg.MaxRequestExpires != time.Minute || cfg.Metadata["presence.owner"] != "alice" {
		t.Errorf("alice's consumer created with a swallowed header: max_expires %v, owner %q; want a minute, alice", cfg.MaxRequestExpires, cfg.Metadata["presence.owner"])
	}
}

// rawRequest sends a request as user over the NATS protocol itself, with
// the header block hdr as it is, and waits for its answer.
func rawRequest(t *testing.T, url, user, subject, hdr, body string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(natstest.Timeout)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		t.Fatal(err)
	}
	inbox := client.InboxPrefix(user) + ".raw"
	fmt.Fprintf(c, "CONNECT {\"user\":%q,\"pass\":%q,\"headers\":true,\"verbose\":false,\"protocol\":1}\r\nSUB %s 1\r\n", user, user+"-pw", inbox)
	fmt.Fprintf(c, "HPUB %s %s %d %d\r\n%s%s\r\n", subject, inbox, len(hdr), len(hdr)+len(body), hdr, body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: no answer to %s: %v", user, subject, err)
		}
		if strings.HasPrefix(line, "MSG ") || strings.HasPrefix(line, "HMSG ") {
			return
		}
	}
}

func TestLoadAuthRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{`{"users":[]}`, "no users"},
		{`{"users":[{"name":"a b","password":"x","role":"user","contact":"c"}]}`, `name "a b"`},
		{`{"users":[{"name":"presence-engine","password":"x","role":"operator"}]}`, "the engine's own"},
		{`{"users":[{"name":"PRESENCE","password":"x","role":"operator"}]}`, "the engine's own"},
		{`{"users":[{"name":"a","password":"x\u0007","role":"subscriber"}]}`, "control character"},
		{`{"users":[{"name":"a","password":"x\u2028","role":"subscriber"}]}`, "line or paragraph separator"},
		{`{"users":[{"name":"a","password":"","role":"subscriber"}]}`, "no password"},
		{`{"users":[{"name":"a","password":"x","role":"admin"}]}`, `role "admin"`},
		{`{"users":[{"name":"a","password":"x","role":"user"}]}`, "needs the contact"},
		{`{"users":[{"name":"a","password":"x","role":"auditor","contact":"c"}]}`, "has no contact"},
		{`{"users":[{"name":"a","password":"x","role":"subscriber"},{"name":"a","password":"y","role":"subscriber"}]}`, "given twice"},
		{`{"users":[{"name":"a","password":"x","role":"subscriber","extra":1}]}`, "unknown field"},
		{`not json`, "invalid character"},
	} {
		path := filepath.Join(dir, "auth.json")
		if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := engine.LoadAuth(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadAuth(%s) = %v, want an error with %q", c.body, err, c.want)
		}
	}
}

func TestTLSClientConnections(t *testing.T) {
	certFile, keyFile := natstest.SelfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users, TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	url := e.ClientURL()
	// Plain text is refused; TLS with the CA is let in (and still asks who).
	if nc, err := nats.Connect(url, nats.UserInfo("crm", "crm-pw")); err == nil {
		nc.Close()
		t.Fatal("a connection without TLS was let in")
	}
	if nc, err := nats.Connect(url, nats.UserInfo("crm", "crm-pw"), nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12})); err == nil {
		nc.Close()
		t.Fatal("a TLS connection that does not trust the certificate was let in")
	}
	nc, err := nats.Connect(url, nats.UserInfo("crm", "crm-pw"), nats.RootCAs(certFile), nats.CustomInboxPrefix(client.InboxPrefix("crm")))
	if err != nil {
		t.Fatalf("TLS connection with the CA: %v", err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("the connection does not use TLS")
	}
	if r, err := client.New(nc).Status(natstest.Context(t), alice, 0); err != nil || r.Status != events.Unknown {
		t.Errorf("status over TLS: %+v, %v", r, err)
	}
}

func TestClientSaysWhenRefused(t *testing.T) {
	e := enginetest.Start(t, "", engine.Options{Auth: enginetest.Users})
	c := client.New(connectAs(t, e.ClientURL(), "alice").nc)
	c.Timeout = 500 * time.Millisecond
	_, err := c.Set(context.Background(), client.SetRequest{Contact: bob, Status: events.Busy})
	if !errors.Is(err, client.ErrForbidden) || !strings.Contains(err.Error(), events.SetPrefix+events.Token(bob)) {
		t.Errorf("alice setting bob: %v; want ErrForbidden naming the subject", err)
	}
	if _, err := engine.NewAdminClient(c).Rebuild(context.Background(), nil); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("alice rebuilding: %v; want ErrForbidden", err)
	}
}
