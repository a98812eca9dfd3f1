package bench

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
)

// memory sets every one of MemoryContacts contacts once, then makes MemorySets
// random sets over them in ten steps, and samples the engine's resident memory
// after each step: past the first, only events are added, and memory should stay
// within the engine's caches and JetStream's per-subject index.
func (r *runner) memory(ctx context.Context) error {
	cfg := r.cfg
	cfg.Contacts = cfg.MemoryContacts
	steps := 10
	per := max(cfg.MemorySets/steps, 1)
	r.step("memory run: every one of %d contacts once, then %d sets over them, in %d steps", cfg.MemoryContacts, cfg.MemorySets, steps)
	sets := 0
	for i := range steps + 1 {
		r.seed++
		n := per
		if i == 0 {
			n = cfg.MemoryContacts // every contact once: what follows only adds events
		}
		wr, err := writeContacts(ctx, r.eng.url, cfg, writeSpec{n: n, acks: newAckTimes(0, 0), seed: r.seed, sequential: i == 0})
		if err != nil {
			return err
		}
		sets += wr.sets
		last, err := r.lastLogSeq(ctx)
		if err != nil {
			return err
		}
		runtime.GC()
		rss := r.eng.rss()
		r.res.Memory = append(r.res.Memory, MemorySample{Sets: sets, Events: last, RSS: rss,
			Rate: wr.appendRate()})
		r.step("memory run: step %d: %d sets, %d events in the log, engine RSS %s", i, sets, last, bytesText(rss))
	}
	if cfg.HeapProfile != "" {
		f, err := os.Create(cfg.HeapProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.WriteHeapProfile(f)
	}
	return nil
}
