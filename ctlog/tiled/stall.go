package tiled

import (
	"sync"
	"time"
)

// A tiled log is stalled when a submission has waited longer than a
// bound for its entry to be sequenced and published, and the published
// checkpoint has not grown for as long: Tessera's integration has stopped
// (a storage fault, a lock held by another process). The signal is the
// age of the oldest waiting submission, so a stall under load shows in
// seconds, and an idle log, with none waiting, never raises a false
// alarm. A log under a publication hold (no_publish) is held on purpose
// and never counts.

// waitSet is the start times of the submissions in flight.
type waitSet struct {
	mu    sync.Mutex
	next  uint64
	start map[uint64]time.Time
}

// add records a submission begun at t; the returned func ends it.
func (w *waitSet) add(t time.Time) func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.start == nil {
		w.start = map[uint64]time.Time{}
	}
	id := w.next
	w.next++
	w.start[id] = t
	return func() {
		w.mu.Lock()
		delete(w.start, id)
		w.mu.Unlock()
	}
}

// oldest is the start of the oldest submission in flight, zero if none.
func (w *waitSet) oldest() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var o time.Time
	for _, t := range w.start {
		if o.IsZero() || t.Before(o) {
			o = t
		}
	}
	return o
}

// Stalled reports whether the log is stalled at now: a submission has
// waited longer than bound and the published checkpoint has not grown
// for as long. The duration is how long it has gone without progress.
func (l *Log) Stalled(now time.Time, bound time.Duration) (bool, time.Duration) {
	if l.holding() {
		return false, 0
	}
	oldest := l.waits.oldest()
	if oldest.IsZero() {
		return false, 0
	}
	if grew := time.Unix(0, l.grew.Load()); grew.After(oldest) {
		oldest = grew
	}
	since := now.Sub(oldest)
	return since > bound, since
}
