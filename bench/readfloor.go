package bench

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The floor of a remote fan-out with reads asks for statuses on this subject,
// readBatch contacts a request, with up to readsAhead requests in flight per
// subscriber: as a client.Subscriber catching up does.
const (
	floorReadSubject = "bench.floor.statuses"
	readBatch        = 256
	readsAhead       = 3
)

// fanoutReadFloor is the floor of a remote fan-out with reads: the least the
// design has the server carry for M subscribers catching up, each reading the
// current status of every change it is handed, with plain NATS calls and none
// of the engine's code. It is fanoutOrdered with, for each consumer, one
// request per batch of up to readBatch messages naming their contacts (the
// next batches' requests travelling while one is awaited), answered by a
// responder on a connection of its own with a reply the size of the engine's
// statuses reply (each status taken from a map: no store). A delivery counts
// once the reply of its batch is in. started, if not nil, is called as the
// timing starts.
func fanoutReadFloor(ctx context.Context, url string, m, n, contacts int, started func()) (float64, error) {
	ids := make([]string, contacts)
	for i := range ids {
		ids[i] = contactID(i)
	}
	stop, err := serveFloorReads(url, ids)
	if err != nil {
		return 0, err
	}
	defer stop()
	return fanoutConsumers(ctx, url, m, n, func(ctx context.Context, nc *nats.Conn, count func(int), fail func(error)) func(jetstream.Msg) {
		return floorReads(ctx, nc, ids, n, count, fail)
	}, started)
}

// serveFloorReads answers the floor's status requests (contact IDs, one a
// line) with a statuses reply shaped as the engine's, on a connection of its
// own and as many subscriptions of one queue group as there are CPUs.
func serveFloorReads(url string, ids []string) (stop func(), err error) {
	statuses := make(map[string][]byte, len(ids))
	for i, id := range ids {
		statuses[id] = fmt.Appendf(nil, `{"contact":%q,"name":"User %d","status":"online","code":2,"seq":%d}`, id, i, 1_000_000+i)
	}
	unknown := []byte(`{"contact":"","name":"","status":"unknown","code":0,"seq":0}`)
	nc, err := nats.Connect(url, nats.Name("bench floor of reads"))
	if err != nil {
		return nil, err
	}
	answer := func(msg *nats.Msg) {
		out := append(make([]byte, 0, len(msg.Data)*4), `{"statuses":[`...)
		for i, id := range bytes.Split(msg.Data, []byte{'\n'}) {
			if i > 0 {
				out = append(out, ',')
			}
			st, ok := statuses[string(id)]
			if !ok {
				st = unknown
			}
			out = append(out, st...)
		}
		_ = msg.Respond(append(out, "]}"...))
	}
	for range runtime.GOMAXPROCS(0) {
		sub, err := nc.QueueSubscribe(floorReadSubject, "floor", answer)
		if err != nil {
			nc.Close()
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, -1)
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	return nc.Close, nil
}

// floorReads is one floor subscriber's reads: it batches the contacts of the
// messages taken (up to readBatch, what is waiting), sends a request per batch
// with up to readsAhead in flight, and counts the batch's deliveries when its
// reply is in.
func floorReads(ctx context.Context, nc *nats.Conn, ids []string, n int, count func(int), fail func(error)) func(jetstream.Msg) {
	in := make(chan string, readBatch)
	go func() {
		slots := make(chan struct{}, readsAhead)
		var body []byte
		contactOf := func(subject string) string {
			return ids[rawIndex(subject)%len(ids)]
		}
		for taken := 0; taken < n; {
			var subject string
			select {
			case subject = <-in:
			case <-ctx.Done():
				return
			}
			body = append(body[:0], contactOf(subject)...)
			k := 1
		batch:
			for k < readBatch && taken+k < n {
				select {
				case subject = <-in:
					body = append(append(body, '\n'), contactOf(subject)...)
					k++
				default:
					break batch
				}
			}
			taken += k
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func(req []byte, k int) {
				defer func() { <-slots }()
				reply, err := nc.Request(floorReadSubject, req, 10*time.Second)
				if err != nil {
					fail(fmt.Errorf("floor of reads: %w", err))
					return
				}
				if len(reply.Data) < len(req) {
					fail(fmt.Errorf("floor of reads: a reply of %d bytes to a request of %d", len(reply.Data), len(req)))
					return
				}
				count(k)
			}(bytes.Clone(body), k)
		}
	}()
	return func(msg jetstream.Msg) {
		select {
		case in <- msg.Subject():
		case <-ctx.Done():
		}
	}
}
