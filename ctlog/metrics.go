package ctlog

import (
	"errors"

	"github.com/google/trillian/monitoring"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metrics are ctstage's own log metrics, labelled by shard name.
type metrics struct {
	submissions *prometheus.CounterVec
	treeSize    *prometheus.GaugeVec
	sthAge      *prometheus.GaugeVec
	mergeDelay  *prometheus.HistogramVec
	info        *prometheus.GaugeVec
	stalled     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_log_submissions_total",
			Help: "add-chain and add-pre-chain requests by shard, endpoint and outcome (accepted, rejected, error).",
		}, []string{"shard", "endpoint", "outcome"}),
		treeSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ctstage_log_tree_size",
			Help: "Size of the newest signed tree head, by shard.",
		}, []string{"shard"}),
		sthAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ctstage_log_sth_age_seconds",
			Help: "Age of the newest signed tree head, by shard.",
		}, []string{"shard"}),
		mergeDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ctstage_log_integration_delay_seconds",
			Help:    "Time from queueing an entry (its SCT) to its integration into the tree, by shard; a sample of up to 16 entries per shard per second.",
			Buckets: []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 1.5, 2, 5, 10, 30},
		}, []string{"shard"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ctstage_log_info",
			Help: "1 for each shard; tree_id joins with Trillian's logid label.",
		}, []string{"shard", "tree_id", "operator"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ctstage_log_stalled",
			Help: "1 while a shard's sequencer has signed no tree head for 2 x sth_max_age + 5s (entries are not being integrated; /healthz answers 503), else 0.",
		}, []string{"shard"}),
	}
	for _, c := range []prometheus.Collector{m.submissions, m.treeSize, m.sthAge, m.mergeDelay, m.info, m.stalled} {
		register(reg, c)
	}
	return m
}

// register adds c to reg; a collector already there (a second server in one
// process, as in tests) is fine. A nil reg registers nothing.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// NewMetricFactory returns a Trillian monitoring.MetricFactory that
// registers into reg, each name prefixed with prefix; for the storage,
// whose metrics ctlog does not create.
func NewMetricFactory(reg prometheus.Registerer, prefix string) monitoring.MetricFactory {
	return metricFactory{reg: reg, prefix: prefix}
}

// metricFactory gives Trillian and ctfe a monitoring.MetricFactory that
// registers into a prometheus.Registerer instead of the global registry.
type metricFactory struct {
	reg    prometheus.Registerer
	prefix string
}

func (f metricFactory) NewCounter(name, help string, labels ...string) monitoring.Counter {
	v := register(f.reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.prefix + name, Help: help}, labels))
	return counter{v}
}

func (f metricFactory) NewGauge(name, help string, labels ...string) monitoring.Gauge {
	v := register(f.reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.prefix + name, Help: help}, labels))
	return gauge{v}
}

func (f metricFactory) NewHistogram(name, help string, labels ...string) monitoring.Histogram {
	return f.NewHistogramWithBuckets(name, help, prometheus.ExponentialBuckets(0.0005, 2, 16), labels...)
}

func (f metricFactory) NewHistogramWithBuckets(name, help string, buckets []float64, labels ...string) monitoring.Histogram {
	v := register(f.reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: f.prefix + name, Help: help, Buckets: buckets}, labels))
	return histogram{v}
}

type counter struct{ v *prometheus.CounterVec }

func (c counter) Inc(l ...string)            { c.v.WithLabelValues(l...).Inc() }
func (c counter) Add(x float64, l ...string) { c.v.WithLabelValues(l...).Add(x) }
func (c counter) Value(l ...string) float64 {
	return read(c.v.WithLabelValues(l...)).GetCounter().GetValue()
}
func (g gauge) Inc(l ...string)            { g.v.WithLabelValues(l...).Inc() }
func (g gauge) Dec(l ...string)            { g.v.WithLabelValues(l...).Dec() }
func (g gauge) Add(x float64, l ...string) { g.v.WithLabelValues(l...).Add(x) }
func (g gauge) Set(x float64, l ...string) { g.v.WithLabelValues(l...).Set(x) }
func (g gauge) Value(l ...string) float64 {
	return read(g.v.WithLabelValues(l...)).GetGauge().GetValue()
}
func (h histogram) Observe(x float64, l ...string) { h.v.WithLabelValues(l...).Observe(x) }

type gauge struct{ v *prometheus.GaugeVec }
type histogram struct{ v *prometheus.HistogramVec }

func (h histogram) Info(l ...string) (uint64, float64) {
	m := read(h.v.WithLabelValues(l...).(prometheus.Metric)).GetHistogram()
	return m.GetSampleCount(), m.GetSampleSum()
}

func read(m prometheus.Metric) *dto.Metric {
	var out dto.Metric
	m.Write(&out)
	return &out
}
