package tiled

import (
	"context"
	"sync"
	"time"
)

// awaiter waits for published checkpoints to cover entries. It reads the
// checkpoint while some submission waits, and not at all otherwise:
// Tessera's PublicationAwaiter polls without end, which on an idle shard
// is all the CPU it uses (the default topology has six). The checkpoint
// signer says when a checkpoint is about to be written: the awaiter then
// reads every fastPoll until it is, and every poll otherwise (a safety
// net: every publication is signed).
type awaiter struct {
	l      *Log
	signed <-chan struct{}

	mu      sync.Mutex
	waiting int
	changed chan struct{} // closed, and replaced, when the poller sees a larger size
	kick    chan struct{}
}

// fastPoll is how often the awaiter reads the checkpoint for fastFor
// after one was signed: Tessera writes it with O_SYNC and syncs its
// directory, a few milliseconds. Otherwise it reads every poll.
const (
	fastPoll = time.Millisecond
	fastFor  = 50 * time.Millisecond
	poll     = 20 * time.Millisecond
)

func newAwaiter(l *Log, signed <-chan struct{}) *awaiter {
	return &awaiter{l: l, signed: signed, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// run polls until ctx ends.
func (a *awaiter) run(ctx context.Context) {
	var seen uint64
	var fastUntil time.Time // read every fastPoll until then
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		a.mu.Lock()
		n := a.waiting
		a.mu.Unlock()
		if n == 0 {
			// A signature often comes before its submitters wait: the
			// integration that resolves their futures also wakes the
			// publisher.
			select {
			case <-a.kick:
			case <-a.signed:
				fastUntil = time.Now().Add(fastFor)
			case <-ctx.Done():
				return
			}
			continue
		}
		if cp, err := a.l.reader.ReadCheckpoint(ctx); err == nil {
			if size, err := a.l.notePublished(cp); err == nil && size > seen {
				seen, fastUntil = size, time.Time{}
				a.l.pacer.published()
				a.mu.Lock()
				close(a.changed)
				a.changed = make(chan struct{})
				a.mu.Unlock()
			}
		}
		d := poll
		if time.Now().Before(fastUntil) {
			d = fastPoll
		}
		t.Reset(d)
		select {
		case <-t.C:
		case <-a.signed:
			fastUntil = time.Now().Add(fastFor)
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
