package tiled

import (
	"context"
	"sync"
	"time"
)

// awaiter waits for published checkpoints to cover entries. It reads the
// checkpoint every poll while some submission waits, and not at all
// otherwise: Tessera's PublicationAwaiter polls without end, which on an
// idle shard is all the CPU it uses (the default topology has six).
type awaiter struct {
	l    *Log
	poll time.Duration

	mu      sync.Mutex
	waiting int
	changed chan struct{} // closed, and replaced, when the poller sees a larger size
	kick    chan struct{}
}

func newAwaiter(l *Log, poll time.Duration) *awaiter {
	return &awaiter{l: l, poll: poll, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// run polls until ctx ends.
func (a *awaiter) run(ctx context.Context) {
	var seen uint64
	t := time.NewTimer(a.poll)
	defer t.Stop()
	for {
		a.mu.Lock()
		n := a.waiting
		a.mu.Unlock()
		if n == 0 {
			select {
			case <-a.kick:
				continue
			case <-ctx.Done():
				return
			}
		}
		if cp, err := a.l.reader.ReadCheckpoint(ctx); err == nil {
			if size, err := a.l.notePublished(cp); err == nil && size > seen {
				seen = size
				a.mu.Lock()
				close(a.changed)
				a.changed = make(chan struct{})
				a.mu.Unlock()
			}
		}
		t.Reset(a.poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// await returns once a published checkpoint covers entry idx.
func (a *awaiter) await(ctx context.Context, idx uint64) error {
	a.mu.Lock()
	a.waiting++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.waiting--
		a.mu.Unlock()
	}()
	select {
	case a.kick <- struct{}{}:
	default:
	}
	for {
		a.mu.Lock()
		ch := a.changed
		a.mu.Unlock()
		if a.l.published.Load() > idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
