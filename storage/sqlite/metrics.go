package sqlite

import (
	"strconv"
	"time"

	"github.com/google/trillian/monitoring"
)

const logIDLabel = "logid"

// metrics are the storage's counters and histograms, created per DB from
// Options.MetricFactory. Label values are tree IDs, which are few.
type metrics struct {
	queued         monitoring.Counter
	queuedDup      monitoring.Counter
	dequeued       monitoring.Counter
	queueLatency   monitoring.Histogram
	dequeueLatency monitoring.Histogram
	removeLatency  monitoring.Histogram
	batchLeaves    monitoring.Histogram
	batchRequests  monitoring.Histogram
	commitLatency  monitoring.Histogram
}

// newMetrics creates the metrics; a nil factory means no metrics.
func newMetrics(mf monitoring.MetricFactory) *metrics {
	if mf == nil {
		mf = monitoring.InertMetricFactory{}
	}
	return &metrics{
		queued:         mf.NewCounter("sqlite_queued_leaves", "Number of new leaves queued", logIDLabel),
		queuedDup:      mf.NewCounter("sqlite_queued_dup_leaves", "Number of duplicate leaves queued", logIDLabel),
		dequeued:       mf.NewCounter("sqlite_dequeued_leaves", "Number of leaves dequeued", logIDLabel),
		queueLatency:   mf.NewHistogram("sqlite_queue_leaves_latency", "Latency of QueueLeaves in seconds, including the wait for the group commit", logIDLabel),
		dequeueLatency: mf.NewHistogram("sqlite_dequeue_leaves_latency", "Latency of DequeueLeaves in seconds", logIDLabel),
		removeLatency:  mf.NewHistogram("sqlite_dequeue_leaves_latency_remove", "Latency of removing sequenced leaves from the queue in seconds", logIDLabel),
		batchLeaves:    mf.NewHistogram("sqlite_group_commit_leaves", "Number of leaves written by one group commit"),
		batchRequests:  mf.NewHistogram("sqlite_group_commit_requests", "Number of QueueLeaves calls answered by one group commit"),
		commitLatency:  mf.NewHistogram("sqlite_group_commit_latency", "Latency of one group commit transaction in seconds"),
	}
}

// label formats a tree ID as a label value.
func label(treeID int64) string { return strconv.FormatInt(treeID, 10) }

// observeDequeue records one DequeueLeaves call.
func (m *metrics) observeDequeue(treeID int64, n int, d time.Duration) {
	l := label(treeID)
	m.dequeued.Add(float64(n), l)
	m.dequeueLatency.Observe(d.Seconds(), l)
}

// observeRemove records the removal of sequenced leaves from the queue.
func (m *metrics) observeRemove(treeID int64, d time.Duration) {
	m.removeLatency.Observe(d.Seconds(), label(treeID))
}

// observeBatch records one group commit.
func (m *metrics) observeBatch(requests, leaves int, d time.Duration) {
	m.batchRequests.Observe(float64(requests))
	m.batchLeaves.Observe(float64(leaves))
	m.commitLatency.Observe(d.Seconds())
}

// observeQueued records the outcome of one QueueLeaves call.
func (m *metrics) observeQueued(treeID int64, added, dups int, d time.Duration) {
	l := label(treeID)
	m.queued.Add(float64(added), l)
	m.queuedDup.Add(float64(dups), l)
	m.queueLatency.Observe(d.Seconds(), l)
}
