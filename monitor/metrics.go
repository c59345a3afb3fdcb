package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the monitor's Prometheus metrics, labelled by log.
type metrics struct {
	treeSize *prometheus.GaugeVec   // the verified tree head's size
	read     *prometheus.GaugeVec   // entries read and checked
	sthAge   *prometheus.GaugeVec   // age of the verified tree head at the last poll
	alerts   *prometheus.CounterVec // alerts, by kind
	polls    *prometheus.CounterVec // polls, by outcome (ok, error)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		treeSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ctstage_monitor_tree_size", Help: "Size of the newest verified tree head, per log."}, []string{"log"}),
		read:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ctstage_monitor_entries_read", Help: "Entries read and hashed into the compact range, per log."}, []string{"log"}),
		sthAge:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ctstage_monitor_sth_age_seconds", Help: "Age of the newest tree head at the last poll, per log."}, []string{"log"}),
		alerts:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ctstage_monitor_alerts_total", Help: "Alerts raised, per log and kind."}, []string{"log", "alert"}),
		polls:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ctstage_monitor_polls_total", Help: "Polls of a log's tree head, by outcome."}, []string{"log", "outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.treeSize, m.read, m.sthAge, m.alerts, m.polls} {
			reg.MustRegister(c)
		}
	}
	return m
}
