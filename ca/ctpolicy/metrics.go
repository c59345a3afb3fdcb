package ctpolicy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the submissions. Log labels are log descriptions, bounded by
// the log list.
type metrics struct {
	sctLatency *prometheus.HistogramVec // log
	failures   *prometheus.CounterVec   // log, kind
	finals     *prometheus.CounterVec   // outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sctLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ctstage_ca_sct_latency_seconds",
			Help:    "Time a CT log took to return a valid SCT for a precertificate.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"log"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_ca_log_failures_total",
			Help: "Submissions to a CT log that gave no valid SCT, by kind of failure.",
		}, []string{"log", "kind"}),
		finals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_ca_final_submissions_total",
			Help: "Submissions of final certificates to CT logs, by outcome.",
		}, []string{"outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sctLatency, m.failures, m.finals} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) latency(l *Log, d time.Duration) {
	m.sctLatency.WithLabelValues(l.Description).Observe(d.Seconds())
}

func (m *metrics) failure(l *Log, kind string) { m.failures.WithLabelValues(l.Description, kind).Inc() }

func (m *metrics) final(err error) {
	if err != nil {
		m.finals.WithLabelValues("error").Inc()
		return
	}
	m.finals.WithLabelValues("ok").Inc()
}
