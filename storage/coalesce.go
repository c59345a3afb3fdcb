package storage

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/trillian"
	tstorage "github.com/google/trillian/storage"
)

// Coalesce wraps a LogStorage so that concurrent QueueLeaves calls for the
// same tree are merged into one call of at most maxBatch leaves: one
// transaction and one commit for many add-chain requests, where Trillian
// would otherwise open a transaction per request. At most one merged call
// per tree is in flight; the caller that finds none in flight leads it, and
// hands the lead to a waiting caller when its own leaves are stored.
//
// Results are exactly those of the wrapped storage: duplicates, within one
// merged call or across calls, come back as the existing leaf with an
// AlreadyExists status, as Trillian's storages do. A failed merged call fails
// every caller in it. A caller whose context ends stops waiting, but its
// leaves may still be stored, as with any request that times out.
func Coalesce(ls tstorage.LogStorage, maxBatch int) tstorage.LogStorage {
	return &coalescer{LogStorage: ls, maxBatch: maxBatch, trees: map[int64]*treeQueue{}}
}

type coalescer struct {
	tstorage.LogStorage
	maxBatch int

	mu    sync.Mutex
	trees map[int64]*treeQueue
}

type treeQueue struct {
	mu      sync.Mutex
	busy    bool // a merged call is in flight or being led
	waiting []*queued
}

// queued is one caller's QueueLeaves call.
type queued struct {
	leaves []*trillian.LogLeaf
	ts     time.Time
	wake   chan struct{} // closed when done, or when promoted to lead
	lead   bool
	res    []*trillian.QueuedLogLeaf
	err    error
}

func (c *coalescer) queue(treeID int64) *treeQueue {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.trees[treeID]
	if q == nil {
		q = &treeQueue{}
		c.trees[treeID] = q
	}
	return q
}

// QueueLeaves implements storage.LogStorage.
func (c *coalescer) QueueLeaves(ctx context.Context, tree *trillian.Tree, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error) {
	if len(leaves) >= c.maxBatch {
		return c.LogStorage.QueueLeaves(ctx, tree, leaves, ts)
	}
	q := c.queue(tree.TreeId)
	me := &queued{leaves: leaves, ts: ts, wake: make(chan struct{})}
	q.mu.Lock()
	q.waiting = append(q.waiting, me)
	if !q.busy {
		q.busy = true
		me.lead = true
		close(me.wake)
	}
	q.mu.Unlock()

	select {
	case <-me.wake:
	case <-ctx.Done():
		if !c.abandon(q, me) {
			return nil, ctx.Err()
		}
	}
	if me.lead {
		c.lead(tree, q, me)
	}
	return me.res, me.err
}

// abandon takes a caller whose context ended out of the queue. It reports
// whether the caller was promoted to lead meanwhile: then it must lead, or
// the queue would stall.
func (c *coalescer) abandon(q *treeQueue, me *queued) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if me.lead {
		return true
	}
	if i := slices.Index(q.waiting, me); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
	return false
}

// lead runs merged calls until me's own leaves are stored, then passes the
// lead to the next waiting caller, if any.
func (c *coalescer) lead(tree *trillian.Tree, q *treeQueue, me *queued) {
	for {
		q.mu.Lock()
		batch := c.take(q)
		q.mu.Unlock()
		c.flush(tree, batch)
		mine := false
		for _, b := range batch {
			mine = mine || b == me
		}
		if mine {
			break
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) == 0 {
		q.busy = false
		return
	}
	next := q.waiting[0]
	next.lead = true
	close(next.wake)
}

// take removes up to maxBatch leaves' worth of callers from the queue (at
// least one caller).
func (c *coalescer) take(q *treeQueue) []*queued {
	n, total := 0, 0
	for n < len(q.waiting) && (n == 0 || total+len(q.waiting[n].leaves) <= c.maxBatch) {
		total += len(q.waiting[n].leaves)
		n++
	}
	batch := q.waiting[:n:n]
	q.waiting = q.waiting[n:]
	return batch
}

// flush stores a batch in one call and hands every caller its results.
func (c *coalescer) flush(tree *trillian.Tree, batch []*queued) {
	var all []*trillian.LogLeaf
	ts := batch[0].ts
	for _, b := range batch {
		all = append(all, b.leaves...)
		if b.ts.Before(ts) {
			ts = b.ts
		}
	}
	// The merged call belongs to no single request: it runs to completion
	// even if the caller that leads it gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.LogStorage.QueueLeaves(ctx, tree, all, ts)
	off := 0
	for _, b := range batch {
		if err != nil {
			b.err = err
		} else {
			b.res = res[off : off+len(b.leaves)]
		}
		off += len(b.leaves)
		if !b.lead {
			close(b.wake)
		}
	}
}
