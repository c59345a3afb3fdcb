package storage

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	tstorage "github.com/google/trillian/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeQueue is a LogStorage whose QueueLeaves de-duplicates by identity
// hash like Trillian's storages, checks that calls for one tree never
// overlap, and can be slowed down or made to fail.
type fakeQueue struct {
	tstorage.LogStorage
	mu       sync.Mutex
	stored   map[string]*trillian.LogLeaf
	inFlight map[int64]bool
	calls    atomic.Int64
	delay    time.Duration
	fail     error
	t        *testing.T
}

func (f *fakeQueue) QueueLeaves(_ context.Context, tree *trillian.Tree, leaves []*trillian.LogLeaf, _ time.Time) ([]*trillian.QueuedLogLeaf, error) {
	f.calls.Add(1)
	f.mu.Lock()
	if f.inFlight[tree.TreeId] {
		f.t.Errorf("overlapping QueueLeaves calls for tree %d", tree.TreeId)
	}
	f.inFlight[tree.TreeId] = true
	f.mu.Unlock()
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight[tree.TreeId] = false
	if f.fail != nil {
		return nil, f.fail
	}
	out := make([]*trillian.QueuedLogLeaf, len(leaves))
	for i, l := range leaves {
		k := fmt.Sprint(tree.TreeId, string(l.LeafIdentityHash))
		if e, ok := f.stored[k]; ok {
			out[i] = &trillian.QueuedLogLeaf{Leaf: e, Status: status.New(codes.AlreadyExists, "dup").Proto()}
			continue
		}
		f.stored[k] = l
		out[i] = &trillian.QueuedLogLeaf{Leaf: l}
	}
	return out, nil
}

func newFake(t *testing.T) *fakeQueue {
	return &fakeQueue{stored: map[string]*trillian.LogLeaf{}, inFlight: map[int64]bool{}, delay: 2 * time.Millisecond, t: t}
}

func leaf(id string) *trillian.LogLeaf {
	h := sha256.Sum256([]byte(id))
	return &trillian.LogLeaf{LeafIdentityHash: h[:], LeafValue: []byte(id)}
}

func TestCoalesce(t *testing.T) {
	f := newFake(t)
	c := Coalesce(f, 16)
	const callers, perCaller = 64, 20
	var wg sync.WaitGroup
	var fresh, dups atomic.Int64
	for g := range callers {
		wg.Go(func() {
			// Callers 2k and 2k+1 queue the same ids on the same tree,
			// so each id is queued twice into one tree, often in one
			// merged batch; the trees differ between pairs.
			tree := &trillian.Tree{TreeId: int64(g / 2 % 3)}
			for i := range perCaller {
				id := fmt.Sprintf("leaf-%d-%d", g/2, i)
				res, err := c.QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{leaf(id)}, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				if len(res) != 1 || string(res[0].Leaf.LeafValue) != id {
					t.Errorf("caller %d got %v for %s", g, res, id)
					continue
				}
				if res[0].Status != nil && codes.Code(res[0].Status.Code) == codes.AlreadyExists {
					dups.Add(1)
				} else {
					fresh.Add(1)
				}
			}
		})
	}
	wg.Wait()
	const unique = callers / 2 * perCaller
	if n := len(f.stored); n != unique {
		t.Errorf("%d leaves stored, want %d: each id once in its tree", n, unique)
	}
	if fresh.Load() != unique || dups.Load() != unique {
		t.Errorf("%d answers new and %d AlreadyExists, want %d of each", fresh.Load(), dups.Load(), unique)
	}
	if calls := f.calls.Load(); calls >= callers*perCaller {
		t.Errorf("%d storage calls for %d QueueLeaves: nothing was merged", calls, callers*perCaller)
	}
	t.Logf("%d QueueLeaves became %d storage calls", callers*perCaller, f.calls.Load())
}

func TestCoalesceDuplicates(t *testing.T) {
	f := newFake(t)
	f.delay = 50 * time.Millisecond
	c := Coalesce(f, 64)
	tree := &trillian.Tree{TreeId: 1}
	// The first call holds the lead while the next ones pile up into one batch.
	go c.QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{leaf("warm-up")}, time.Now())
	time.Sleep(10 * time.Millisecond)
	var wg sync.WaitGroup
	dups := atomic.Int64{}
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{leaf("same")}, time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			if res[0].Status != nil && codes.Code(res[0].Status.Code) == codes.AlreadyExists {
				dups.Add(1)
			}
		}()
	}
	wg.Wait()
	if dups.Load() != 9 {
		t.Errorf("%d of 10 identical leaves reported AlreadyExists, want 9", dups.Load())
	}
}

func TestCoalesceErrorsAndCancel(t *testing.T) {
	f := newFake(t)
	f.fail = status.Error(codes.Unavailable, "disk full")
	c := Coalesce(f, 8)
	tree := &trillian.Tree{TreeId: 1}
	if _, err := c.QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{leaf("x")}, time.Now()); status.Code(err) != codes.Unavailable {
		t.Errorf("error %v, want the storage's Unavailable", err)
	}

	// Callers that give up must not stall the queue for those who stay.
	f.fail, f.delay = nil, 20*time.Millisecond
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%2 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(i)*time.Millisecond)
				defer cancel()
			}
			_, err := c.QueueLeaves(ctx, tree, []*trillian.LogLeaf{leaf(fmt.Sprint("c", i))}, time.Now())
			if err != nil && i%2 == 1 {
				t.Errorf("caller %d without deadline: %v", i, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("queue stalled after callers gave up")
	}
}
