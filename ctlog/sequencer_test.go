package ctlog

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian/log"
)

// countingPass is a sequencer operation that integrates n leaves a pass
// and counts its passes.
type countingPass struct {
	n      int
	passes int
}

func (c *countingPass) ExecutePass(context.Context, int64, *log.OperationInfo) (int, error) {
	c.passes++
	return c.n, nil
}

type queueGen struct{ atomic.Uint64 }

func (q *queueGen) QueueGeneration(int64) uint64 { return q.Load() }

func TestIdlePassesSkipped(t *testing.T) {
	ctx := t.Context()
	normal, held := &countingPass{}, &countingPass{}
	q := &queueGen{}
	h := &heldSequencer{normal: normal, held: map[int64]log.Operation{}, queued: q, idleRecheck: time.Hour}
	pass := func() { h.ExecutePass(ctx, 1, nil) }

	pass()
	pass()
	pass()
	if normal.passes != 1 {
		t.Errorf("an idle tree with nothing queued ran %d passes, want 1", normal.passes)
	}
	q.Add(1) // leaves queued
	normal.n = 5
	pass()
	pass() // integrated 5: maybe more wait beyond the batch
	if normal.passes != 3 {
		t.Errorf("after leaves were queued: %d passes, want 3", normal.passes)
	}
	normal.n = 0
	pass() // integrates nothing: idle again
	pass()
	if normal.passes != 4 {
		t.Errorf("idle again: %d passes, want 4", normal.passes)
	}
	// Another tree is not this one's.
	h.ExecutePass(ctx, 2, nil)
	if normal.passes != 5 {
		t.Errorf("another tree: %d passes, want 5", normal.passes)
	}
	// A held tree passes every time: the hold's delay, not the queue, lets
	// its leaves through.
	h.held[1] = held
	pass()
	pass()
	if held.passes != 2 {
		t.Errorf("held tree: %d passes, want 2", held.passes)
	}
	delete(h.held, 1)
	// The root is still signed afresh: an idle tree passes again after
	// idleRecheck.
	h.idleRecheck = 0
	pass()
	if normal.passes != 6 {
		t.Errorf("after idleRecheck: %d passes, want 6", normal.passes)
	}
	// A storage without the count: every pass runs.
	h.queued = nil
	pass()
	pass()
	if normal.passes != 8 {
		t.Errorf("without QueueGeneration: %d passes, want 8", normal.passes)
	}
}
