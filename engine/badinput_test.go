package engine_test

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

// badCase is one bad request and what its answer must be.
type badCase struct {
	name, subject string
	body          []byte
	code          string // the micro error code wanted
	mention       string // a part of the description that names the problem
}

// readPrefixes are the per-contact read subjects; status and self read the same
// requests.
var readPrefixes = []string{events.StatusPrefix, events.SelfPrefix}

// badTokens are subject tokens that do not decode to a contact ID. They are sent
// as they are: NATS carries any byte but space, tab, CR and LF in a subject.
var badTokens = []struct{ name, token, mention string }{
	{"token with a cut escape", "alice%2", "cut short"},
	{"token with lowercase hex", "alice%2e", "uppercase"},
	{"token escaping a safe byte", "%41lice", "written as itself"},
	{"token decoding to NUL", "a%00b", `'\x00'`},
	{"token decoding to DEL", "a%7Fb", `'\x7f'`},
	{"token decoding to a C1 control", "a%C2%85b", `'\u0085'`},
	{"token decoding to a line separator", "a%E2%80%A8b", `'\u2028'`},
	{"token decoding to a space", "a%20b", "space"},
	{"token decoding to bad UTF-8", "a%FFb", "UTF-8"},
	{"token with a raw NUL", "a\x00b", `'\x00'`},
	{"token with a raw control character", "a\x01b", `'\x01'`},
	{"token with a raw DEL", "a\x7fb", `'\x7f'`},
	{"token with raw bad UTF-8", "a\xffb", "byte 1"},
	{"token that is a wildcard", "*", "byte 0"},
	{"token that is a full wildcard", ">", "byte 0"},
	{"token of 3000 bytes", strings.Repeat("a", 3000), "3000 bytes"},
	{"token of a contact of 257 bytes", strings.Repeat("a", 257), "257 bytes"},
}

// badBody is a body every endpoint refuses, whatever it reads, and a part of
// the description of each refusal: of a set, status or self, and of a statuses
// request, which may be larger.
type badBody struct{ name, body, mention, statusesMention string }

func badBodies(maxPayload int) []badBody {
	hundredKB := `{"colour":"` + strings.Repeat("n", 100<<10) + `"}`
	return []badBody{
		{"not JSON", `nope`, "not a JSON object", ""},
		{"JSON string", `"away"`, "not a JSON object", ""},
		{"JSON null", `null`, "not a JSON object", ""},
		{"JSON array", `[1]`, "not a JSON object", ""},
		{"cut short", `{"min_seq":1`, "unexpected end of JSON input", ""},
		{"invalid UTF-8", "\xff\xfe{}", "UTF-8", ""},
		{"raw NUL", "{\x00}", `invalid character '\x00'`, ""},
		{"unknown field", `{"colour":"red"}`, `"colour"`, ""},
		{"100 KB", hundredKB, fmt.Sprintf("is %d bytes; at most 4096", len(hundredKB)), `"colour"`},
		{"1 MB, the most the server carries", strings.Repeat(" ", maxPayload),
			fmt.Sprintf("is %d bytes; at most 4096", maxPayload), fmt.Sprintf("is %d bytes; at most %d", maxPayload, client.MaxStatusesRequestSize)},
	}
}

// badInputCases is the table of TestBadInputIsRefused: every endpoint, every
// kind of bad request.
func badInputCases(maxPayload int) []badCase {
	var cases []badCase
	add := func(name, subject, body, code, mention string) {
		cases = append(cases, badCase{name, subject, []byte(body), code, mention})
	}
	const good = `{"status":"away"}`

	// Subject tokens that do not decode, on every per-contact endpoint.
	for _, tok := range badTokens {
		add("set: "+tok.name, events.SetPrefix+tok.token, good, "400", tok.mention)
		for _, p := range readPrefixes {
			add(strings.TrimSuffix(p[len("presence."):], ".")+": "+tok.name, p+tok.token, ``, "400", tok.mention)
		}
	}
	// Bodies no endpoint takes.
	for _, b := range badBodies(maxPayload) {
		add("set: "+b.name, events.SetPrefix+"alice", b.body, "400", b.mention)
		for _, p := range readPrefixes {
			add(strings.TrimSuffix(p[len("presence."):], ".")+": "+b.name, p+"alice", b.body, "400", b.mention)
		}
		mention := b.mention
		if b.statusesMention != "" {
			mention = b.statusesMention
		}
		add("statuses: "+b.name, events.StatusesSubject, b.body, "400", mention)
	}

	// set: wrong types, statuses that cannot be set, names, sequences.
	set := func(name, body, code, mention string) {
		add("set: "+name, events.SetPrefix+"alice", body, code, mention)
	}
	set("status number out of range", `{"status":65536}`, "400", `"65536"`)
	set("status negative", `{"status":-2}`, "400", `"-2"`)
	set("status not a MISTATUS value", `{"status":3}`, "400", `"3"`)
	set("status fraction", `{"status":2.5}`, "400", "2.5")
	set("status array", `{"status":["away"]}`, "400", "unknown status")
	set("status empty", `{"status":""}`, "400", `""`)
	set("status with a NUL", `{"status":"away\u0000"}`, "400", `\x00`)
	set("unknown status name", `{"status":"MISTATUS_SLEEPING"}`, "400", `"MISTATUS_SLEEPING"`)
	for _, local := range []string{`"local-finding-server"`, `"MISTATUS_LOCAL_CONNECTING_TO_SERVER"`, `768`, `"0x0400"`} {
		set("local-only status "+local, `{"status":`+local+`}`, "400", "local-only")
	}
	for _, unknown := range []string{`"unknown"`, `"MISTATUS_UNKNOWN"`, `0`, `"0x0000"`} {
		set("status unknown as "+unknown, `{"status":`+unknown+`}`, "400", "never-seen")
	}
	set("idle from the user", `{"status":"idle"}`, "400", "idle is automatic")
	set("name with an escaped NUL", `{"status":"away","name":"A\u0000B"}`, "400", "control character")
	set("name with a raw NUL", "{\"status\":\"away\",\"name\":\"A\x00B\"}", "400", `invalid character '\x00' in string literal`)
	set("name with a raw control character", "{\"status\":\"away\",\"name\":\"A\x1bB\"}", "400", `invalid character '\x1b' in string literal`)
	set("name with a C1 control", `{"status":"away","name":"A\u0085B"}`, "400", `'\u0085'`)
	set("name with bad UTF-8", "{\"status\":\"away\",\"name\":\"A\xc3B\"}", "400", "UTF-8")
	set("name of 257 bytes", `{"status":"away","name":"`+strings.Repeat("n", 257)+`"}`, "400", "257 bytes")
	set("name of 100 KB", `{"status":"away","name":"`+strings.Repeat("n", 100<<10)+`"}`, "400", "at most 4096")
	set("name wrong type", `{"status":"away","name":["A"]}`, "400", "want a JSON string")
	set("request_id wrong type", `{"status":"away","request_id":5}`, "400", "request_id")
	set("request_id with a control character", `{"status":"away","request_id":"r\u0007"}`, "400", "request_id")
	set("cause wrong type", `{"status":"away","cause":true}`, "400", "cause")
	set("cause of the engine", `{"status":"offline","cause":"engine"}`, "400", "engine's own")
	set("expect_seq negative", `{"status":"away","expect_seq":-1}`, "400", `"-1"`)
	set("expect_seq minus zero", `{"status":"away","expect_seq":-0}`, "400", `"-0"`)
	set("expect_seq exponent", `{"status":"away","expect_seq":1e3}`, "400", `"1e3"`)
	set("expect_seq past 2^63-1", `{"status":"away","expect_seq":9223372036854775808}`, "400", "9223372036854775808")
	set("expect_seq past 2^64-1", `{"status":"away","expect_seq":18446744073709551616}`, "400", "18446744073709551616")
	set("expect_seq of 400 digits", `{"status":"away","expect_seq":`+strings.Repeat("9", 400)+`}`, "400", "expect_seq")
	set("expect_seq string", `{"status":"away","expect_seq":"1"}`, "400", "expect_seq")
	set("expect_seq never reached", `{"status":"away","expect_seq":9223372036854775807}`, "409", "9223372036854775807")

	// status and self: min_seq.
	for _, p := range readPrefixes {
		ep := strings.TrimSuffix(p[len("presence."):], ".")
		read := func(name, body, code, mention string) { add(ep+": "+name, p+"alice", body, code, mention) }
		read("min_seq negative", `{"min_seq":-5}`, "400", `"-5"`)
		read("min_seq fraction", `{"min_seq":1.5}`, "400", `"1.5"`)
		read("min_seq exponent", `{"min_seq":1e30}`, "400", `"1e30"`)
		read("min_seq past 2^63-1", `{"min_seq":9223372036854775808}`, "400", "9223372036854775808")
		read("min_seq string", `{"min_seq":"5"}`, "400", "min_seq")
		read("min_seq object", `{"min_seq":{}}`, "400", "min_seq")
		read("min_seq never reached", `{"min_seq":9223372036854775807}`, "503", "9223372036854775807")
	}

	// statuses: contacts and min_seq.
	statuses := func(name, body, code, mention string) {
		add("statuses: "+name, events.StatusesSubject, body, code, mention)
	}
	statuses("contacts missing", `{"min_seq":1}`, "400", `"contacts" is required`)
	statuses("contacts null", `{"contacts":null}`, "400", "0 contacts")
	statuses("contacts a number", `{"contacts":7}`, "400", "JSON array")
	statuses("contacts of numbers", `{"contacts":[1,2]}`, "400", "JSON array")
	statuses("a contact with a NUL", `{"contacts":["a\u0000b"]}`, "400", `'\x00'`)
	statuses("a contact with a raw NUL", "{\"contacts\":[\"a\x00b\"]}", "400", `invalid character '\x00'`)
	statuses("a contact with a space", `{"contacts":["alice","a b"]}`, "400", `"a b"`)
	statuses("a contact with bad UTF-8", "{\"contacts\":[\"a\xffb\"]}", "400", "UTF-8")
	statuses("an empty contact", `{"contacts":[""]}`, "400", "empty")
	statuses("a contact of 100 KB", `{"contacts":["`+strings.Repeat("c", 100<<10)+`"]}`, "400", "102400 bytes; at most 256")
	statuses("1001 contacts", `{"contacts":[`+strings.Repeat(`"a",`, 1000)+`"a"]}`, "400", "1001 contacts")
	statuses("min_seq negative", `{"contacts":["alice"],"min_seq":-1}`, "400", `"-1"`)
	statuses("min_seq past 2^63-1", `{"contacts":["alice"],"min_seq":18446744073709551615}`, "400", "18446744073709551615")
	statuses("min_seq never reached", `{"contacts":["alice"],"min_seq":9223372036854775807}`, "503", "9223372036854775807")
	// A request within every limit whose answer is not: 1000 contacts of 256
	// '<', each escaped to \u003c in the reply, make 1.6 MB.
	lt := `"` + strings.Repeat("<", events.MaxContactLen) + `"`
	statuses("a reply past max_payload", `{"contacts":[`+strings.Repeat(lt+",", client.MaxStatuses-1)+lt+`]}`, "400", "ask for fewer contacts")

	// admin: no body.
	for _, subject := range []string{events.DigestSubject, events.VerifySubject, events.RebuildSubject} {
		add(subject+": a body", subject, `{"x":1}`, "400", "takes no body; got 7 bytes")
	}
	return cases
}

// TestBadInputIsRefused sends the running service every kind of bad request on
// every endpoint: each gets a 400 (a 409 or 503 where the request is well formed
// but cannot be met) with a description naming the problem, nothing is appended
// to the log, and the service keeps serving.
func TestBadInputIsRefused(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{ReadTimeout: 100 * time.Millisecond})
	nc := r.Connect(t)
	js := r.JetStream(t)
	set(t, nc, "alice", `{"status":"online"}`)
	before := logMsgs(t, js)

	for _, tt := range badInputCases(int(nc.MaxPayload())) {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := nc.Request(tt.subject, tt.body, 10*time.Second)
			if err != nil {
				t.Fatalf("request of %d bytes to %s: %v, want a %s answer", len(tt.body), events.Quote(tt.subject), err, tt.code)
			}
			checkRefusal(t, msg, tt.code, tt.mention)
		})
	}

	if after := logMsgs(t, js); after != before {
		t.Errorf("bad requests appended: the log went from %d to %d messages", before, after)
	}
	checkServing(t, nc)
}

// checkRefusal checks an error answer: its code and description headers, and a
// body that carries both.
func checkRefusal(t testing.TB, msg *nats.Msg, code, mention string) {
	t.Helper()
	gotCode, desc := msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader)
	if gotCode != code {
		t.Fatalf("code %q (%s), want %s; body %.200s", gotCode, desc, code, msg.Data)
	}
	if !strings.Contains(desc, mention) {
		t.Errorf("description %q does not mention %q", desc, mention)
	}
	if strings.ContainsAny(desc, "\x00\r\n") {
		t.Errorf("description %q holds a raw NUL or line break", desc)
	}
	if !strings.Contains(string(msg.Data), `"code":`+code) || !strings.Contains(string(msg.Data), `"description":`) {
		t.Errorf("error body %.200s does not carry the code and description", msg.Data)
	}
}

// checkServing checks that the service still answers good requests: a set that
// changes alice's status and reads of it.
func checkServing(t testing.TB, nc *nats.Conn) {
	t.Helper()
	cur := statusJSON(t, nc, events.SelfPrefix, "alice", 0)["status"]
	next := `{"status":"busy"}`
	if cur == "busy" {
		next = `{"status":"away"}`
	}
	res := set(t, nc, "alice", next)
	if !res.Changed {
		t.Fatalf("a good set after the bad requests = %+v, want a change", res)
	}
	if got := statusJSON(t, nc, events.StatusPrefix, "alice", res.Seq)["status"]; got != res.Status.String() {
		t.Errorf("status of alice after the bad requests = %v, want %v", got, res.Status)
	}
	data, code, desc := request(t, nc, events.StatusesSubject, string(client.EncodeStatusesRequest([]string{"alice"}, res.Seq)))
	if code != "" || !strings.Contains(string(data), `"status":"`+res.Status.String()+`"`) {
		t.Errorf("statuses after the bad requests = %s (%s %s), want alice %v", data, code, desc, res.Status)
	}
}

// logMsgs returns how many messages the log holds.
func logMsgs(t testing.TB, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(natstest.Context(t), events.LogStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(natstest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestOversizedMessagesAreRefusedByTheServer sends what the NATS server itself
// refuses before the engine sees it: a payload past max_payload and a subject
// past the longest protocol line. The client is told, and the engine is unaffected.
func TestOversizedMessagesAreRefusedByTheServer(t *testing.T) {
	r := enginetest.Start(t, "", engine.Options{})
	nc := r.Connect(t)
	js := r.JetStream(t)
	set(t, nc, "alice", `{"status":"online"}`)
	before := logMsgs(t, js)
	tenMB := make([]byte, 10<<20)

	t.Run("10 MB through the client", func(t *testing.T) {
		// nats.go knows the server's max_payload and refuses at publish.
		for _, subject := range []string{events.SetPrefix + "alice", events.StatusPrefix + "alice", events.SelfPrefix + "alice", events.StatusesSubject} {
			if _, err := nc.Request(subject, tenMB, 10*time.Second); !errors.Is(err, nats.ErrMaxPayload) {
				t.Errorf("10 MB request to %s: %v, want %v", subject, err, nats.ErrMaxPayload)
			}
		}
	})

	t.Run("10 MB on the wire", func(t *testing.T) {
		// A client that does not check: the server refuses the PUB on its
		// announced size and closes the connection.
		line := rawPublish(t, r.ClientURL(), "PUB "+events.SetPrefix+"alice _INBOX.raw "+fmt.Sprint(len(tenMB))+"\r\n")
		if !strings.Contains(line, "Maximum Payload Violation") {
			t.Errorf("server answered a 10 MB PUB with %q, want -ERR 'Maximum Payload Violation'", line)
		}
	})

	t.Run("subject of 100 KB", func(t *testing.T) {
		// Past max_control_line (4 KB): the server refuses the line and closes
		// the connection; the client reports it as its last error.
		asyncErr := make(chan error, 1)
		own, err := nats.Connect(r.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case asyncErr <- err:
			default:
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		_, err = own.Request(events.SetPrefix+strings.Repeat("a", 100<<10), []byte(`{"status":"away"}`), 10*time.Second)
		if err == nil {
			t.Fatal("a request on a subject of 100 KB was answered, want the server to refuse it")
		}
		select {
		case got := <-asyncErr:
			if !strings.Contains(got.Error(), "maximum control line exceeded") {
				t.Errorf("client was told %v, want maximum control line exceeded (request: %v)", got, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("client was not told why (request: %v, last error: %v)", err, own.LastError())
		}
	})

	if after := logMsgs(t, js); after != before {
		t.Errorf("oversized messages appended: the log went from %d to %d messages", before, after)
	}
	checkServing(t, nc)
}

// rawPublish speaks the NATS protocol itself: CONNECT, then line, and returns
// the server's first answer after the INFO.
func rawPublish(t *testing.T, clientURL, line string) string {
	t.Helper()
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	if info, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("server greeting %q, %v; want INFO", info, err)
	}
	if _, err := conn.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	if pong, err := rd.ReadString('\n'); err != nil || pong != "PONG\r\n" {
		t.Fatalf("server answered CONNECT and PING with %q, %v; want PONG", pong, err)
	}
	if _, err := conn.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	for {
		answer, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("no answer to %q: %v", line, err)
		}
		if strings.HasPrefix(answer, "INFO ") { // the server's news, not an answer
			continue
		}
		return strings.TrimSpace(answer)
	}
}

// TestFloodIsRefusedAndMemoryStaysBounded sends thousands of requests at once to
// an engine that takes few at a time: bad ones, reads waiting for a min_seq the
// log never reaches, sets that expect a sequence the contact never had. Every
// one is answered (400, 409 or 503 naming why), nothing is appended, the
// service keeps serving, and the heap after the flood is about what it was
// before, twice over.
func TestFloodIsRefusedAndMemoryStaysBounded(t *testing.T) {
	const (
		clients = 8
		slack   = 64 << 20 // generous: the heap is ~6-10 MiB before, ~20 MiB after
	)
	r := enginetest.Start(t, "", engine.Options{MaxConcurrent: 16, ReadTimeout: 500 * time.Millisecond})
	nc := r.Connect(t)
	js := r.JetStream(t)
	set(t, nc, "alice", `{"status":"online"}`)
	before := logMsgs(t, js)
	conns := make([]*nats.Conn, clients)
	for i := range conns {
		conns[i] = r.Connect(t)
	}
	oneMB := `{"status":"away","name":"` + strings.Repeat("n", 1<<20-64) + `"}`

	// What the flood sends, in turn.
	kinds := []floodKind{
		{"bad set", events.SetPrefix + "alice", `{"status":"local-finding-server"}`, []string{"400"}, []string{"local-only"}},
		{"bad token", events.SetPrefix + "a%00b", `{"status":"away"}`, []string{"400"}, []string{`'\x00'`}},
		{"bad read", events.StatusPrefix + "alice", `{"min_seq":-1}`, []string{"400"}, []string{`"-1"`}},
		{"bad statuses", events.StatusesSubject, `{"contacts":["a b"]}`, []string{"400"}, []string{`"a b"`}},
		{"waiting status", events.StatusPrefix + "alice", `{"min_seq":9223372036854775807}`, []string{"503", "503"}, []string{"busy", "9223372036854775807"}},
		{"waiting self", events.SelfPrefix + "alice", `{"min_seq":9223372036854775807}`, []string{"503", "503"}, []string{"busy", "9223372036854775807"}},
		{"waiting statuses", events.StatusesSubject, `{"contacts":["alice","bob"],"min_seq":9223372036854775807}`, []string{"503", "503"}, []string{"busy", "9223372036854775807"}},
		// One contact each, so that no contact's own bound on sets is reached.
		{"set expecting the impossible", events.SetPrefix + "flood-%d", `{"status":"away","expect_seq":9223372036854775807}`, []string{"409", "503"}, []string{"9223372036854775807", "busy"}},
	}

	heapBefore, heapFirst := heapInUse(), uint64(math.MaxUint64)
	goroutinesBefore := runtime.NumGoroutine()
	for round := range 2 { // twice: what the first leaves behind, the second must not add to
		counts := flood(t, conns, round, kinds, oneMB)
		if after := logMsgs(t, js); after != before {
			t.Errorf("the flood appended: the log went from %d to %d messages", before, after)
		}
		checkServing(t, nc) // which appends one
		before = logMsgs(t, js)

		// Every request has its answer; the goroutines that sent the last ones
		// may still be on their way out.
		natstest.WaitFor(t, "the flood's goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutinesBefore+32 })
		heapAfter := heapInUse()
		t.Logf("flood %d: requests answered %v; heap in use %d MiB before the floods, %d MiB after",
			round+1, counts, heapBefore>>20, heapAfter>>20)
		if heapAfter > heapBefore+slack {
			t.Errorf("heap in use after flood %d is %d MiB, before the floods %d MiB: more than %d MiB kept",
				round+1, heapAfter>>20, heapBefore>>20, slack>>20)
		}
		if round > 0 && heapAfter > heapFirst+slack/2 {
			t.Errorf("heap in use after flood %d is %d MiB, after the first %d MiB: it grows with each flood",
				round+1, heapAfter>>20, heapFirst>>20)
		}
		heapFirst = min(heapFirst, heapAfter)
	}
}

// floodKind is one kind of request of a flood, with the codes it may be
// answered and, for each, a part of the description that names why.
type floodKind struct {
	name, subject, body string // a %d in subject is the request's number
	codes               []string
	mention             []string
}

// flood sends perFloodConn requests for each connection, of the kinds in turn,
// all at once, each on a connection picked at random, and a set of a megabyte
// every perFloodConn/4; it checks every answer and returns how many of each code
// came back.
func flood(t *testing.T, conns []*nats.Conn, round int, kinds []floodKind, oneMB string) map[string]int {
	t.Helper()
	type outcome struct {
		kind int // -1 for a megabyte
		msg  *nats.Msg
		err  error
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []outcome
	)
	send := func(kind int, subject, body string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := conns[rand.IntN(len(conns))].Request(subject, []byte(body), 30*time.Second)
			mu.Lock()
			results = append(results, outcome{kind, msg, err})
			mu.Unlock()
		}()
	}
	for n := range len(conns) * perFloodConn {
		k := n % len(kinds)
		subject := kinds[k].subject
		if strings.Contains(subject, "%d") {
			subject = fmt.Sprintf(subject, round*len(conns)*perFloodConn+n)
		}
		send(k, subject, kinds[k].body)
		if n%(perFloodConn/4) == 0 {
			send(-1, events.SetPrefix+"alice", oneMB)
		}
	}
	wg.Wait()

	counts := map[string]int{}
	failures := 0
	for _, o := range results {
		if failures > 10 {
			t.Fatal("more than 10 answers of the flood were wrong; not checking the rest")
		}
		if o.err != nil {
			failures++
			t.Errorf("a request of the flood was not answered: %v", o.err)
			continue
		}
		code, desc := o.msg.Header.Get(micro.ErrorCodeHeader), o.msg.Header.Get(micro.ErrorHeader)
		counts[code]++
		if o.kind < 0 {
			if code != "400" || !strings.Contains(desc, "at most 4096") {
				failures++
				t.Errorf("a 1 MB set in the flood: %s %s, want 400 naming the size", code, desc)
			}
			continue
		}
		k := kinds[o.kind]
		ok := false
		for i, want := range k.codes {
			if code == want && strings.Contains(desc, k.mention[i]) {
				ok = true
			}
		}
		if !ok {
			failures++
			t.Errorf("%s in the flood: %q %q, want one of %v naming one of %q", k.name, code, desc, k.codes, k.mention)
		}
	}
	return counts
}

// perFloodConn is how many requests a flood sends on each connection, beside
// a megabyte every perFloodConn/4.
const perFloodConn = 750

// heapInUse returns the bytes of heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
