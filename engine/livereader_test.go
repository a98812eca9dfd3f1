package engine

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/presence-engine/presence/events"
)

// countingBatchReader counts what reaches the service.
type countingBatchReader struct {
	BatchReader
	mu    sync.Mutex
	calls int
}

func (c *countingBatchReader) Status(ctx context.Context, contact string, minSeq uint64) (Reply, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.BatchReader.Status(ctx, contact, minSeq)
}

func (c *countingBatchReader) Statuses(ctx context.Context, contacts []string, minSeq uint64) ([]Reply, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.BatchReader.Statuses(ctx, contacts, minSeq)
}

func (c *countingBatchReader) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func newLiveReader(t testing.TB, r *running, fallback BatchReader, wait time.Duration) *LiveReader {
	t.Helper()
	l, err := NewLiveReader(LiveReaderConfig{Conn: r.connect(t), Fallback: fallback, Wait: wait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestLiveReaderReadsAnnouncements runs a subscriber on a live reader while
// writes go on: its reads are never older than their change, invisible never
// shows, and nearly none of them reach the service.
func TestLiveReaderReadsAnnouncements(t *testing.T) {
	r := startEngine(t, "", Options{})
	fallback := &countingBatchReader{BatchReader: r.client(t)}
	live := newLiveReader(t, r, fallback, time.Second)
	var col collector
	ctx, cancel := context.WithCancel(context.Background())
	done := runSubscriber(t, ctx, SubscriberConfig{Conn: r.connect(t), Reader: live, Start: StartAll()},
		func(ctx context.Context, ch Change) error {
			cur, err := ch.Current(ctx)
			if err != nil {
				return err
			}
			col.add(ch, cur)
			return nil
		})
	// One change first, so that the reader has seen an announcement before
	// the ones it is asked about.
	if _, err := r.Writer().Set(ctxT(t), SetRequest{Contact: "warm-up", Status: events.Online}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the warm-up change", func() bool { return col.len() >= 1 })
	before := fallback.count()
	writeRandom(t, r.Writer(), rand.New(rand.NewPCG(17, 18)), 5, 300)
	r.waitFeed(t)
	want := feedSeqs(t, r)
	waitFor(t, "every change", func() bool { return col.len() >= len(want) })
	cancel()
	wait(t, done)
	log := readLog(t, r.jetStream(t))
	bySeq := map[uint64]events.Event{}
	for _, le := range log {
		bySeq[le.Seq] = le.Event
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for i, ch := range col.changes {
		cur := col.reads[i]
		if cur.Seq < ch.Seq {
			t.Errorf("change at seq %d read a status as of seq %d", ch.Seq, cur.Seq)
		}
		if e := bySeq[cur.Seq]; e.Contact != ch.Contact || e.Status.Visible() != cur.Status || cur.Status == events.Invisible {
			t.Errorf("read %+v, but the log's event at seq %d is %+v", cur, cur.Seq, e)
		}
	}
	if calls := fallback.count() - before; calls > len(want)/10 {
		t.Errorf("%d of %d reads went to the service; the announcements should answer nearly all", calls, len(want))
	}
}

// TestLiveReaderFallsBack: what the announcements cannot answer, the fallback
// does: changes from before the reader, and an announcement that never comes.
func TestLiveReaderFallsBack(t *testing.T) {
	r := startEngine(t, "", Options{})
	old, err := r.Writer().Set(ctxT(t), SetRequest{Contact: "old", Status: events.Busy})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Projection().WaitApplied(ctxT(t), old.Seq); err != nil {
		t.Fatal(err)
	}
	fallback := &countingBatchReader{BatchReader: r.client(t)}
	live := newLiveReader(t, r, fallback, 100*time.Millisecond)
	got, err := live.Status(ctxT(t), "old", old.Seq)
	if err != nil || got.Status != events.Busy || fallback.count() != 1 {
		t.Errorf("read of a change older than the reader = %+v, %v, %d service calls; want busy from the service", got, err, fallback.count())
	}
	// Once the reader has seen an announcement, a read it could have had
	// announced but was not waits for it, then asks the service.
	fresh, err := r.Writer().Set(ctxT(t), SetRequest{Contact: "fresh", Status: events.Away})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := live.Status(ctxT(t), "fresh", fresh.Seq); err != nil || got.Status != events.Away {
		t.Fatalf("read of an announced change = %+v, %v", got, err)
	}
	// That read may have gone to the service before the announcement came.
	waitFor(t, "the reader's first announcement", func() bool {
		live.mu.Lock()
		defer live.mu.Unlock()
		return live.firstSeen != 0
	})
	calls := fallback.count()
	start := time.Now()
	got, err = live.Status(ctxT(t), "never-announced", fresh.Seq)
	if err != nil || got.Status != events.Unknown {
		t.Errorf("read of a contact never announced = %+v, %v; want unknown", got, err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond || fallback.count() != calls+1 {
		t.Errorf("waited %s and made %d service calls; want the Wait, then one call", waited, fallback.count()-calls)
	}
}
