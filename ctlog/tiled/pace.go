package tiled

import (
	"context"
	"sync"
	"time"
)

// pacer times when entries are handed to Tessera's sequencer, so
// that each checkpoint interval ends with one batch integrated just after
// it, which Tessera publishes at once.
//
// Tessera's POSIX publisher is woken by every integration, skips the
// publication when the checkpoint is younger than the interval, and then
// waits for the next integration or a whole interval more. Entries handed
// over as they come are integrated a batch after the checkpoint that
// answered their submitters, which is too soon: the checkpoint then comes
// an interval after that, and clients that submit again as soon as their
// SCT comes see one checkpoint every interval plus a batch plus the round
// trip (about 126 ms for 100 ms, docs/benchmarks.md). Held back until the
// interval is nearly out, they are integrated as it ends, and each batch
// costs one set of Tessera's file rewrites instead of several.
//
// Tessera's MySQL publisher runs on a ticker of the interval and is woken
// by integrations too, with the same skip; published_at is stamped a
// little after the tick, so the next tick often finds the checkpoint a
// hair younger than the interval and skips it: with everyone waiting,
// nothing wakes the publisher before the tick after, and a cycle took 2
// s. Paced, the integration comes just after the interval and the
// checkpoint at once.
//
// An entry that comes when the checkpoint is older than that (an idle
// log) goes at once: the pacer adds no latency to a lone submission.
type pacer struct {
	interval, batch time.Duration
	// written returns when the newest checkpoint was written, as
	// Tessera's publisher reckons its age (store.published).
	written func() (time.Time, error)

	mu   sync.Mutex
	last time.Time // when the newest checkpoint seen was written (its mtime)
	// opened is when entries began to be handed over for the next
	// checkpoint; zero while none has been since last.
	opened  time.Time
	changed chan struct{} // closed, and replaced, when last changes
}

// paceMargin is how much later than strictly needed entries are handed
// over: an integration that came a hair too soon would cost a whole
// interval.
const paceMargin = time.Millisecond

func newPacer(interval, batch time.Duration, written func() (time.Time, error)) *pacer {
	return &pacer{interval: interval, batch: batch, written: written, changed: make(chan struct{})}
}

// wait returns when an entry may be handed to Tessera: once the newest
// checkpoint is a batch short of the interval old, or within half a batch
// of the first entry handed over since (the same batch then holds it).
// Entries handed over after that wait for the checkpoint that answers
// them and the next interval. Should no checkpoint come (every entry a
// duplicate, an error), they go anyway once one should have.
func (p *pacer) wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		now := time.Now()
		var wake time.Time
		gate := p.last.Add(p.interval - p.batch + paceMargin)
		if gate.Sub(now) > p.interval {
			// A checkpoint written in the future: the clock was set
			// back. Tessera waits for it to age; holding entries here
			// too would only add to that.
			gate = now
		}
		switch {
		case p.opened.IsZero() && !now.Before(gate):
			// A checkpoint the awaiter never saw grow the tree (an idle
			// log's re-signed one) counts as much for Tessera.
			if at, err := p.written(); err == nil && !at.Equal(p.last) {
				p.last = at
				p.mu.Unlock()
				continue
			}
			p.opened = now
			p.mu.Unlock()
			return nil
		case p.opened.IsZero():
			wake = gate
		case now.Sub(p.opened) < p.batch/2:
			p.mu.Unlock()
			return nil
		case now.Sub(p.opened) >= p.interval+p.batch:
			// No checkpoint came of what was handed over.
			p.opened = now
			p.mu.Unlock()
			return nil
		default:
			wake = p.opened.Add(p.interval + p.batch)
		}
		ch := p.changed
		p.mu.Unlock()
		t := time.NewTimer(wake.Sub(now))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// published notes that a larger checkpoint was read. Its file's mtime is
// taken as it is, earlier than the last one's if the clock was set back.
func (p *pacer) published() {
	at, err := p.written()
	if err != nil {
		at = time.Now() // after the write: a later gate, never an early one
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if at.Equal(p.last) {
		return
	}
	p.last, p.opened = at, time.Time{}
	close(p.changed)
	p.changed = make(chan struct{})
}
