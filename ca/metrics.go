package ca

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	issuances *prometheus.CounterVec   // outcome
	latency   *prometheus.HistogramVec // outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		issuances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_ca_issuances_total",
			Help: "Issuance attempts by outcome: issued, bad_request, lint, mismatch, ct_policy, canceled, error.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ctstage_ca_issuance_seconds",
			Help:    "Time from request to issued certificate (or failure), by outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.issuances, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) issued(outcome string, d time.Duration) {
	m.issuances.WithLabelValues(outcome).Inc()
	m.latency.WithLabelValues(outcome).Observe(d.Seconds())
}
