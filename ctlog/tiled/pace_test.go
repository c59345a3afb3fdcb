package tiled

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestPacer: entries go at once to an idle log; after a checkpoint they
// wait until it is a batch short of the interval old, then those that come
// within half a batch go together and later ones wait for the next
// checkpoint, or for as long as one should have taken when none comes.
// Only lower bounds on time are asserted: a slow machine is late, never
// early.
func TestPacer(t *testing.T) {
	const interval, batch = 100 * time.Millisecond, 10 * time.Millisecond
	var mu sync.Mutex
	var written time.Time
	p := newPacer(interval, batch, func() (time.Time, error) {
		mu.Lock()
		defer mu.Unlock()
		return written, nil
	})
	publish := func(at time.Time) {
		mu.Lock()
		written = at
		mu.Unlock()
		p.published()
	}
	ctx := context.Background()
	waited := func() time.Duration {
		t.Helper()
		start := time.Now()
		// Bounded: a gate that never opens fails rather than hangs.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := p.wait(wctx); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}

	// No checkpoint yet: at once, and a second entry joins the first.
	if d := waited(); d > interval/2 {
		t.Errorf("the first entry of an idle log waited %v", d)
	}
	if d := waited(); d > interval/2 {
		t.Errorf("an entry right after the first waited %v, want it in the same batch", d)
	}

	// A checkpoint just written: wait until it is interval-batch old.
	cp := time.Now()
	publish(cp)
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if age := time.Since(cp); age < interval-batch {
		t.Errorf("an entry went when the checkpoint was %v old, want at least %v", age, interval-batch)
	}
	// Half a batch later the hand-over is closed: with no checkpoint of
	// it, the next entry waits for as long as one should have taken.
	opened := time.Now()
	time.Sleep(batch)
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(opened); d < interval {
		t.Errorf("an entry after the hand-over went %v after it began, want at least %v (no checkpoint came)", d, interval)
	}

	// A checkpoint an interval old (an idle log again): at once.
	publish(time.Now().Add(-interval))
	if d := waited(); d > interval/2 {
		t.Errorf("an entry after an old checkpoint waited %v", d)
	}

	// A checkpoint during a wait moves its gate.
	publish(time.Now())
	done := make(chan time.Time)
	go func() {
		p.wait(ctx)
		done <- time.Now()
	}()
	time.Sleep(interval / 2)
	second := time.Now()
	publish(second)
	if at := <-done; at.Sub(second) < interval-batch {
		t.Errorf("an entry went %v after a checkpoint that came during its wait, want at least %v", at.Sub(second), interval-batch)
	}

	// A checkpoint from the future (the clock set back): no hold; and the
	// next one, earlier than it, is taken as the newest.
	publish(time.Now().Add(time.Hour))
	if d := waited(); d > interval/2 {
		t.Errorf("an entry after a checkpoint written an hour ahead waited %v", d)
	}

	// A cancelled wait says so.
	publish(time.Now())
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.wait(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait returned %v", err)
	}

	// A checkpoint re-signed without growing the tree, which the awaiter
	// does not report: the gate follows its file all the same.
	time.Sleep(interval)
	resigned := time.Now()
	mu.Lock()
	written = resigned
	mu.Unlock()
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if age := time.Since(resigned); age < interval-batch {
		t.Errorf("an entry went when a re-signed checkpoint was %v old, want at least %v", age, interval-batch)
	}
}
