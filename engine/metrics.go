package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metric describes one Prometheus metric read from a Metrics snapshot.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Metrics) float64
}

func newMetric(name, help string, kind prometheus.ValueType, value func(Metrics) float64) metric {
	return metric{desc: prometheus.NewDesc(name, help, nil, nil), kind: kind, value: value}
}

// promCollector exports an engine's Metrics to Prometheus, read at each scrape.
type promCollector struct {
	snapshot func() Metrics
	metrics  []metric
}

func newPromCollector(snapshot func() Metrics) *promCollector {
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	return &promCollector{snapshot: snapshot, metrics: []metric{
		newMetric("presence_ready", "1 once the service answers and the projection has caught up with the log.", g,
			func(m Metrics) float64 { return boolValue(m.Ready) }),
		newMetric("presence_writer_owner", "1 while this engine owns a partition of the log (with one, the log) and appends.", g,
			func(m Metrics) float64 { return boolValue(m.Writer.Owner) }),
		newMetric("presence_writer_owned_partitions", "The partitions of the log this engine owns.", g,
			func(m Metrics) float64 { return float64(m.Writer.Owned) }),
		newMetric("presence_writer_partitions", "The partitions of the log.", g,
			func(m Metrics) float64 { return float64(m.Writer.Partitions) }),
		newMetric("presence_writer_engines", "The engines that can own partitions, as this one counts them (itself included).", g,
			func(m Metrics) float64 { return float64(m.Writer.Engines) }),
		newMetric("presence_writer_takeovers_total", "Times this engine took the log over.", c,
			func(m Metrics) float64 { return float64(m.Writer.Takeovers) }),
		newMetric("presence_writer_passed_on_total", "Sets this engine passed on to the log's owner.", c,
			func(m Metrics) float64 { return float64(m.Writer.PassedOn) }),
		newMetric("presence_writer_realigned_total", "Appends the log took after refusing one sent before them: a contact's chain may be broken (presence verify tells). Never expected.", c,
			func(m Metrics) float64 { return float64(m.Writer.Realigned) }),
		newMetric("presence_writer_appended_total", "Events the writer appended to the log.", c,
			func(m Metrics) float64 { return float64(m.Writer.Appended) }),
		newMetric("presence_writer_unchanged_total", "Sets that changed nothing and appended nothing.", c,
			func(m Metrics) float64 { return float64(m.Writer.Unchanged) }),
		newMetric("presence_writer_conflicts_total", "Appends refused because the log held more than the owner knew (another engine appended).", c,
			func(m Metrics) float64 { return float64(m.Writer.Conflicts) }),
		newMetric("presence_writer_duplicates_total", "Retried requests answered as the first time.", c,
			func(m Metrics) float64 { return float64(m.Writer.Duplicates) }),
		newMetric("presence_writer_limited_total", "Sets refused because their contact went past its bound (429).", c,
			func(m Metrics) float64 { return float64(m.Writer.Limited) }),
		newMetric("presence_projection_applied_seq", "Log sequence up to which the projection has applied the log.", g,
			func(m Metrics) float64 { return float64(m.Projection.Applied) }),
		newMetric("presence_projection_lag_events", "Log events the projection has not applied yet.", g,
			func(m Metrics) float64 { return float64(m.FoldLag) }),
		newMetric("presence_projection_folded_total", "Events folded into the projection.", c,
			func(m Metrics) float64 { return float64(m.Projection.Folded) }),
		newMetric("presence_projection_malformed_total", "Log records skipped by the fold because they are not events.", c,
			func(m Metrics) float64 { return float64(m.Projection.Malformed) }),
		newMetric("presence_projection_batches_total", "Pebble batches the fold committed.", c,
			func(m Metrics) float64 { return float64(m.Projection.Batches) }),
		newMetric("presence_projection_rebuilds_total", "Times the projection found the log did not match it and was folded again.", c,
			func(m Metrics) float64 { return float64(m.Rebuilds) }),
		newMetric("presence_projection_operator_rebuilds_total", "Rebuilds of the projection an operator asked for that switched to the new one.", c,
			func(m Metrics) float64 { return float64(m.OperatorRebuilds) }),
		newMetric("presence_projection_damaged_total", "Times the projection's store was found damaged and rebuilt from the log.", c,
			func(m Metrics) float64 { return float64(m.Damaged) }),
		newMetric("presence_feed_position_seq", "Log sequence up to which the feed holds every visible change.", g,
			func(m Metrics) float64 { return float64(m.Feed.Position) }),
		newMetric("presence_feed_deriving", "1 while this engine derives the feed (it owns partition 0 of the log); the feed's position and lag are the deriver's.", g,
			func(m Metrics) float64 { return boolValue(m.Feed.Deriving) }),
		newMetric("presence_feed_lag_events", "Log events not yet reflected in the feed.", g,
			func(m Metrics) float64 { return float64(m.Feed.Lag) }),
		newMetric("presence_feed_published_total", "Feed entries published.", c,
			func(m Metrics) float64 { return float64(m.Feed.Published) }),
		newMetric("presence_feed_resyncs_total", "Times the feed started again from its last entry.", c,
			func(m Metrics) float64 { return float64(m.Feed.Resyncs) }),
		newMetric("presence_feed_purges_total", "Times the feed was found not to describe the log and derived again.", c,
			func(m Metrics) float64 { return float64(m.Feed.Purges) }),
		newMetric("presence_feed_repeats_dropped_total", "Feed entries not repeated on presence.live because the repeats were too far behind.", c,
			func(m Metrics) float64 { return float64(m.Feed.RepeatsDropped) }),
	}}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Describe implements prometheus.Collector.
func (c *promCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *promCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.snapshot()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(snap))
	}
}
