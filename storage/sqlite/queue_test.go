package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var fakeQueueTime = time.Date(2016, 11, 10, 15, 16, 27, 0, time.UTC)

// createTree creates a LOG tree; with a root unless uninitialised is set.
func createTree(t testing.TB, db *DB, initialised bool) *trillian.Tree {
	t.Helper()
	ctx := context.Background()
	tree, err := storage.CreateTree(ctx, db.AdminStorage(), testonly.LogTree)
	if err != nil {
		t.Fatalf("CreateTree() = %v", err)
	}
	if initialised {
		storeRoot(t, db, tree, &types.LogRootV1{RootHash: rfc6962.DefaultHasher.EmptyRoot()})
	}
	return tree
}

// storeRoot stores root as the tree's latest signed root.
func storeRoot(t testing.TB, db *DB, tree *trillian.Tree, root *types.LogRootV1) {
	t.Helper()
	b, err := root.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	err = db.LogStorage().ReadWriteTransaction(context.Background(), tree, func(ctx context.Context, tx storage.LogTreeTX) error {
		return tx.StoreSignedLogRoot(ctx, &trillian.SignedLogRoot{LogRoot: b})
	})
	if err != nil {
		t.Fatalf("StoreSignedLogRoot() = %v", err)
	}
}

// newLeaf returns a leaf whose value is value and whose hashes follow
// RFC 6962 as the Trillian log server computes them.
func newLeaf(value string) *trillian.LogLeaf {
	h := rfc6962.DefaultHasher.HashLeaf([]byte(value))
	id := sha256.Sum256([]byte(value))
	return &trillian.LogLeaf{
		LeafIdentityHash: id[:],
		MerkleLeafHash:   h,
		LeafValue:        []byte(value),
		ExtraData:        []byte("extra " + value),
	}
}

// newLeaves returns leaves "leaf N" for N in [start, start+n).
func newLeaves(start, n int) []*trillian.LogLeaf {
	leaves := make([]*trillian.LogLeaf, n)
	for i := range leaves {
		leaves[i] = newLeaf(fmt.Sprintf("leaf %d", start+i))
	}
	return leaves
}

// TestQueueDuplicateLeaf follows Trillian's MySQL test of the same name:
// duplicates of earlier calls and within one call come back as
// AlreadyExists with the stored leaf, including its original timestamp.
func TestQueueDuplicateLeaf(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	tree := createTree(t, db, true)
	s := db.LogStorage()

	leaves := newLeaves(10, 15)
	leaves2 := newLeaves(12, 15)
	leaves3 := newLeaves(100, 3)
	leaves4 := newLeaves(105, 3)
	// want[i] is -1 for a leaf that must be queued, or the number of the
	// call (which gives its queue time) that first queued the leaf.
	tests := []struct {
		desc   string
		leaves []*trillian.LogLeaf
		want   []int
	}{
		{"[10..24] all new", leaves, slices.Repeat([]int{-1}, 15)},
		{"[12..26] first 13 dups", leaves2, append(slices.Repeat([]int{0}, 13), -1, -1)},
		{"[10, 100, 11, 101, 12]", []*trillian.LogLeaf{leaves[0], leaves3[0], leaves[1], leaves3[1], leaves[2]}, []int{0, -1, 0, -1, 0}},
		{"[100, 100, 106, 101, 107]", []*trillian.LogLeaf{leaves3[0], leaves3[0], leaves4[1], leaves3[1], leaves4[2]}, []int{2, 2, -1, 2, -1}},
		{"[108, 108, 108]", []*trillian.LogLeaf{newLeaf("leaf 108"), newLeaf("leaf 108"), newLeaf("leaf 108")}, []int{-1, 4, 4}},
	}
	for call, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			ts := fakeQueueTime.Add(time.Duration(call) * time.Second)
			got, err := s.QueueLeaves(ctx, tree, cloneLeaves(test.leaves), ts)
			if err != nil {
				t.Fatalf("QueueLeaves() = %v", err)
			}
			if len(got) != len(test.want) {
				t.Fatalf("QueueLeaves() returned %d results, want %d", len(got), len(test.want))
			}
			for i, want := range test.want {
				checkQueued(t, i, got[i], test.leaves[i], want)
			}
		})
	}
}

// checkQueued checks one QueueLeaves result: queued (firstCall < 0) or a
// duplicate of the leaf first queued by call number firstCall.
func checkQueued(t *testing.T, i int, got *trillian.QueuedLogLeaf, sent *trillian.LogLeaf, firstCall int) {
	t.Helper()
	code := status.FromProto(got.Status).Code()
	if !bytes.Equal(got.Leaf.LeafIdentityHash, sent.LeafIdentityHash) || !bytes.Equal(got.Leaf.LeafValue, sent.LeafValue) ||
		!bytes.Equal(got.Leaf.ExtraData, sent.ExtraData) {
		t.Errorf("result[%d] = %v, want the data of %v", i, got.Leaf, sent)
	}
	if firstCall < 0 {
		if code != codes.OK {
			t.Errorf("result[%d] code = %v, want OK", i, code)
		}
		return
	}
	if code != codes.AlreadyExists {
		t.Errorf("result[%d] code = %v, want AlreadyExists", i, code)
	}
	if got, want := got.Leaf.QueueTimestamp.AsTime(), fakeQueueTime.Add(time.Duration(firstCall)*time.Second); !got.Equal(want) {
		t.Errorf("result[%d] QueueTimestamp = %v, want the original %v", i, got, want)
	}
}

// TestQueueDuplicatesWithinBatch writes one group commit whose requests
// share leaves: the first request queues them, the later ones get the
// leaves as stored by the first, with its timestamp.
func TestQueueDuplicatesWithinBatch(t *testing.T) {
	db := openTestDB(t)
	tree := createTree(t, db, true)
	var batch []*queueRequest
	for i := range 4 {
		leaves := newLeaves(i, 2) // Leaf i+1 is in request i and i+1.
		batch = append(batch, &queueRequest{ctx: context.Background(), treeID: tree.TreeId, leaves: leaves,
			queueNanos: fakeQueueTime.Add(time.Duration(i) * time.Second).UnixNano()})
	}
	results, err := db.queue.write(batch)
	if err != nil {
		t.Fatalf("write() = %v", err)
	}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		if r.existing[0] == nil && i > 0 {
			t.Errorf("request %d: leaf 0 queued, want duplicate of request %d", i, i-1)
		}
		if e := r.existing[0]; e != nil {
			if got, want := e.QueueTimestamp.AsTime(), fakeQueueTime.Add(time.Duration(i-1)*time.Second); !got.Equal(want) {
				t.Errorf("request %d: duplicate QueueTimestamp = %v, want %v", i, got, want)
			}
		}
		if r.existing[1] != nil {
			t.Errorf("request %d: leaf 1 = duplicate, want queued", i)
		}
	}
}

// TestQueueConcurrentDuplicates has many callers submit the same leaf at
// once: exactly one queues it, all get the same stored timestamp.
func TestQueueConcurrentDuplicates(t *testing.T) {
	db := openTestDB(t)
	tree := createTree(t, db, true)
	const callers = 64
	results := make([]*trillian.QueuedLogLeaf, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			got, err := db.LogStorage().QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{newLeaf("same")},
				fakeQueueTime.Add(time.Duration(i)*time.Millisecond))
			if err != nil {
				t.Errorf("QueueLeaves() = %v", err)
				return
			}
			results[i] = got[0]
		})
	}
	close(start)
	wg.Wait()
	queued := 0
	var first time.Time
	for _, r := range results {
		if r == nil {
			t.FailNow()
		}
		if status.FromProto(r.Status).Code() == codes.OK {
			queued++
			first = r.Leaf.QueueTimestamp.AsTime()
		}
	}
	if queued != 1 {
		t.Fatalf("%d callers queued the leaf, want 1", queued)
	}
	for i, r := range results {
		if got := r.Leaf.QueueTimestamp.AsTime(); !got.Equal(first) {
			t.Errorf("caller %d: QueueTimestamp = %v, want %v", i, got, first)
		}
	}
}

// TestQueueLeavesNeedsInit checks that a tree without a root refuses leaves,
// as the MySQL storage does, without failing other trees in the batch.
func TestQueueLeavesNeedsInit(t *testing.T) {
	db := openTestDB(t)
	fresh := createTree(t, db, false)
	ready := createTree(t, db, true)
	batch := []*queueRequest{
		{ctx: context.Background(), treeID: fresh.TreeId, leaves: newLeaves(0, 1), queueNanos: 1},
		{ctx: context.Background(), treeID: ready.TreeId, leaves: newLeaves(0, 1), queueNanos: 1},
	}
	results, err := db.queue.write(batch)
	if err != nil {
		t.Fatalf("write() = %v", err)
	}
	if !errors.Is(results[0].err, storage.ErrTreeNeedsInit) {
		t.Errorf("uninitialised tree: err = %v, want ErrTreeNeedsInit", results[0].err)
	}
	if results[1].err != nil {
		t.Errorf("initialised tree: err = %v", results[1].err)
	}
	if _, err := db.LogStorage().QueueLeaves(context.Background(), fresh, newLeaves(5, 1), fakeQueueTime); err != storage.ErrTreeNeedsInit {
		t.Errorf("QueueLeaves(uninitialised) = %v, want ErrTreeNeedsInit", err)
	}
}

// TestQueueBadRequestIsolated checks that a request that fails in the
// database does not fail the other requests of its batch.
func TestQueueBadRequestIsolated(t *testing.T) {
	db := openTestDB(t)
	tree := createTree(t, db, true)
	bad := newLeaves(1, 1)
	bad[0].MerkleLeafHash = nil // NOT NULL in Unsequenced.
	batch := []*queueRequest{
		{ctx: context.Background(), treeID: tree.TreeId, leaves: newLeaves(0, 1), queueNanos: 1, done: make(chan queueResult, 1)},
		{ctx: context.Background(), treeID: tree.TreeId, leaves: bad, queueNanos: 1, done: make(chan queueResult, 1)},
		{ctx: context.Background(), treeID: tree.TreeId, leaves: newLeaves(2, 1), queueNanos: 1, done: make(chan queueResult, 1)},
	}
	db.queue.commit(batch)
	for i, wantErr := range []bool{false, true, false} {
		if r := <-batch[i].done; (r.err != nil) != wantErr {
			t.Errorf("request %d: err = %v, want error: %v", i, r.err, wantErr)
		}
	}
}

// TestQueueAndSequenceConcurrently runs many QueueLeaves callers (with
// duplicates), snapshot readers and Trillian's real sequencer at once, under
// -race in CI: no call may fail (no "database is locked"), every leaf must be
// integrated exactly once and the root must match an independent
// computation.
func TestQueueAndSequenceConcurrently(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := openTestDB(t)
	tree := createTree(t, db, true)
	log.InitMetrics(nil)

	const producers, perProducer, distinct = 32, 40, 16
	unique := distinct * perProducer
	var firstTS sync.Map // leaf value -> queue timestamp every caller saw
	var producersWG, othersWG sync.WaitGroup
	for p := range producers {
		producersWG.Go(func() { produce(ctx, t, db, tree, p%distinct, perProducer, &firstTS) })
	}
	done := make(chan struct{})
	othersWG.Go(func() { readSnapshots(ctx, t, db, tree, done) })
	othersWG.Go(func() { sequence(ctx, t, db, tree, done, unique) })
	producersWG.Wait()
	close(done)
	othersWG.Wait()
	checkIntegrated(t, db, tree, unique)
}

// produce queues leaves "p/i" one per call, as ctfe does, and checks that
// every caller of a leaf sees the same queue timestamp.
func produce(ctx context.Context, t *testing.T, db *DB, tree *trillian.Tree, p, n int, firstTS *sync.Map) {
	for i := range n {
		value := fmt.Sprintf("%d/%d", p, i)
		got, err := db.LogStorage().QueueLeaves(ctx, tree, []*trillian.LogLeaf{newLeaf(value)}, time.Now())
		if err != nil {
			t.Errorf("QueueLeaves(%s) = %v", value, err)
			return
		}
		ts := got[0].Leaf.QueueTimestamp.AsTime()
		if prev, loaded := firstTS.LoadOrStore(value, ts); loaded && !prev.(time.Time).Equal(ts) {
			t.Errorf("QueueLeaves(%s) timestamp %v, another caller got %v", value, ts, prev)
		}
	}
}

// sequence runs Trillian's sequencer until done is closed and all want
// leaves are integrated.
func sequence(ctx context.Context, t *testing.T, db *DB, tree *trillian.Tree, done <-chan struct{}, want int) {
	finishing := false
	for total := 0; !finishing || total < want; {
		n, err := log.IntegrateBatch(ctx, tree, 50, 0, time.Hour, clock.System, db.LogStorage(), quota.Noop())
		if err != nil {
			t.Errorf("IntegrateBatch() = %v", err)
			return
		}
		total += n
		select {
		case <-done:
			finishing = true
		default:
		}
		if n == 0 && finishing && total < want {
			t.Errorf("integrated %d leaves, want %d", total, want)
			return
		}
	}
}

// readSnapshots reads the latest root and the leaves under it until done.
func readSnapshots(ctx context.Context, t *testing.T, db *DB, tree *trillian.Tree, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		default:
		}
		root, leaves, err := readAll(ctx, db, tree)
		if err != nil {
			t.Errorf("snapshot: %v", err)
			return
		}
		if uint64(len(leaves)) != root.TreeSize {
			t.Errorf("snapshot: %d leaves under a root of size %d", len(leaves), root.TreeSize)
		}
	}
}

// readAll returns the latest root and all leaves under it from one snapshot.
func readAll(ctx context.Context, db *DB, tree *trillian.Tree) (*types.LogRootV1, []*trillian.LogLeaf, error) {
	tx, err := db.LogStorage().SnapshotForTree(ctx, tree)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = tx.Close() }()
	slr, err := tx.LatestSignedLogRoot(ctx)
	if err != nil {
		return nil, nil, err
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(slr.LogRoot); err != nil {
		return nil, nil, err
	}
	var leaves []*trillian.LogLeaf
	if root.TreeSize > 0 {
		if leaves, err = tx.GetLeavesByRange(ctx, 0, int64(root.TreeSize)); err != nil {
			return nil, nil, err
		}
	}
	return &root, leaves, tx.Commit(ctx)
}

// checkIntegrated checks that want distinct leaves are in the tree, each
// once, and that the root hash is the RFC 6962 hash of them in order.
func checkIntegrated(t *testing.T, db *DB, tree *trillian.Tree, want int) {
	t.Helper()
	root, leaves, err := readAll(context.Background(), db, tree)
	if err != nil {
		t.Fatalf("readAll() = %v", err)
	}
	if root.TreeSize != uint64(want) || len(leaves) != want {
		t.Fatalf("tree size %d with %d leaves, want %d", root.TreeSize, len(leaves), want)
	}
	if got, want := rootHash(t, leaves), root.RootHash; !bytes.Equal(got, want) {
		t.Errorf("root hash %x, computed from the leaves %x", want, got)
	}
	seen := make(map[string]bool)
	for i, l := range leaves {
		if seen[string(l.LeafValue)] || l.LeafIndex != int64(i) {
			t.Errorf("leaf %d (%q, index %d): duplicate or misplaced", i, l.LeafValue, l.LeafIndex)
		}
		seen[string(l.LeafValue)] = true
	}
}

// rootHash computes the RFC 6962 root of the leaves' values.
func rootHash(t *testing.T, leaves []*trillian.LogLeaf) []byte {
	t.Helper()
	r := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, l := range leaves {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(l.LeafValue), nil); err != nil {
			t.Fatal(err)
		}
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// cloneLeaves copies leaves so QueueLeaves's timestamping does not change
// the test's expectations.
func cloneLeaves(leaves []*trillian.LogLeaf) []*trillian.LogLeaf {
	out := make([]*trillian.LogLeaf, len(leaves))
	for i, l := range leaves {
		out[i] = &trillian.LogLeaf{LeafIdentityHash: l.LeafIdentityHash, MerkleLeafHash: l.MerkleLeafHash,
			LeafValue: l.LeafValue, ExtraData: l.ExtraData}
	}
	return out
}

// TestCommitterLinger checks the group commit's wait for more requests:
// after a batch of several callers, collect waits for the next ones (here
// until maxBatch, with a linger far longer than the test); after a lone
// caller it commits at once.
func TestCommitterLinger(t *testing.T) {
	req := func() *queueRequest { return &queueRequest{leaves: make([]*trillian.LogLeaf, 1)} }
	c := &committer{maxBatch: 3, linger: time.Hour, requests: make(chan *queueRequest, 8)}

	start := time.Now()
	if got := c.collect(req()); len(got) != 1 {
		t.Fatalf("lone caller: batch of %d, want 1", len(got))
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("lone caller waited %s", d)
	}

	c.lastBatch = 2 // busy
	go func() {
		for range 2 {
			time.Sleep(10 * time.Millisecond)
			c.requests <- req()
		}
	}()
	if got := c.collect(req()); len(got) != 3 {
		t.Fatalf("busy: batch of %d, want 3 (it must wait for the two late requests)", len(got))
	}
	if c.lastBatch != 3 {
		t.Fatalf("lastBatch = %d, want 3", c.lastBatch)
	}

	c.linger = 20 * time.Millisecond // busy, but nobody else comes: the linger ends it
	if got := c.collect(req()); len(got) != 1 {
		t.Fatalf("busy, alone: batch of %d, want 1", len(got))
	}
}

// TestQueueGeneration: each call that queued leaves of a tree counts, for
// that tree only (ctlog skips sequencing passes while it stays).
func TestQueueGeneration(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	tree, other := createTree(t, db, true), createTree(t, db, true)
	s := db.LogStorage()
	if g := db.QueueGeneration(tree.TreeId); g != 0 {
		t.Fatalf("generation before any leaf: %d", g)
	}
	for i := range 3 {
		if _, err := s.QueueLeaves(ctx, tree, newLeaves(10*i, 2), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if g := db.QueueGeneration(tree.TreeId); g != 3 {
		t.Errorf("after 3 QueueLeaves: generation %d, want 3", g)
	}
	if g := s.(interface{ QueueGeneration(int64) uint64 }).QueueGeneration(other.TreeId); g != 0 {
		t.Errorf("another tree's generation: %d, want 0", g)
	}
}
