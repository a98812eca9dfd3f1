package engine_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/engine/enginetest"
	"github.com/presence-engine/presence/engine/natstest"
	"github.com/presence-engine/presence/events"
)

func gather(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				out[f.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[f.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestPrometheusMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := enginetest.Start(t, "", engine.Options{Registerer: reg})
	w := r.Writer()
	for _, st := range []events.Status{events.Online, events.Invisible, events.Offline, events.Offline} {
		if _, err := w.Set(natstest.Context(t), client.SetRequest{Contact: "alice", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitFeed(t)
	if err := r.Projection().WaitApplied(natstest.Context(t), 3); err != nil {
		t.Fatal(err)
	}
	got := gather(t, reg)
	want := map[string]float64{
		"presence_ready":                   1,
		"presence_writer_appended_total":   3,
		"presence_writer_unchanged_total":  1,
		"presence_projection_applied_seq":  3,
		"presence_projection_folded_total": 3,
		"presence_feed_position_seq":       3,
		"presence_feed_published_total":    2, // invisible -> offline is not in the feed
		"presence_feed_lag_events":         0,
		"presence_feed_deriving":           1,
		"presence_writer_owner":            1,
		"presence_writer_owned_partitions": 1,
		"presence_writer_partitions":       1,
		"presence_writer_engines":          1,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}
