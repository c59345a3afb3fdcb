package tiled

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one tiled log's, labelled with its shard name.
type metrics struct {
	submissions *prometheus.CounterVec // endpoint, outcome
	sequencing  prometheus.Histogram   // submission to SCT, seconds
}

// newMetrics registers the log's metrics on reg (none when nil):
// ctstage_tiled_submissions_total{shard,endpoint,outcome},
// ctstage_tiled_sct_seconds{shard} (submission to SCT: sequencing and
// publication included), ctstage_tiled_checkpoint_size{shard} and
// ctstage_tiled_checkpoint_age_seconds{shard}.
func (l *Log) newMetrics(reg prometheus.Registerer, shard string) (*metrics, error) {
	labels := prometheus.Labels{"shard": shard}
	m := &metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_tiled_submissions_total", Help: "Submissions to a tiled shard, by endpoint and outcome (accepted, rejected, error).",
			ConstLabels: labels,
		}, []string{"endpoint", "outcome"}),
		sequencing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ctstage_tiled_sct_seconds", Help: "Time from an accepted submission to its SCT: sequencing and checkpoint publication.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
	}
	if reg == nil {
		return m, nil
	}
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ctstage_tiled_checkpoint_size", Help: "Tree size of the tiled shard's published checkpoint.", ConstLabels: labels,
	}, func() float64 { n, _ := l.checkpointState(); return float64(n) })
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ctstage_tiled_checkpoint_age_seconds", Help: "Age of the tiled shard's published checkpoint.", ConstLabels: labels,
	}, func() float64 {
		_, ts := l.checkpointState()
		if ts.IsZero() {
			return 0
		}
		return l.opts.Now().Sub(ts).Seconds()
	})
	for _, c := range []prometheus.Collector{m.submissions, m.sequencing, size, age} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// checkpointState is the published checkpoint's size and signing time,
// zero when there is none.
func (l *Log) checkpointState() (uint64, time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return 0, time.Time{}
	}
	size, err := checkpointSize(cp, l.opts.Origin)
	if err != nil {
		return 0, time.Time{}
	}
	_, sigs, _ := strings.Cut(string(cp), "\n\n")
	for _, line := range strings.Split(sigs, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] != l.opts.Origin {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(f[2])
		if err == nil && len(sig) >= 12 {
			return size, time.UnixMilli(int64(binary.BigEndian.Uint64(sig[4:12])))
		}
	}
	return size, time.Time{}
}
