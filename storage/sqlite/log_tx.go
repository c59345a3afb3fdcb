// Adapted from github.com/google/trillian storage/mysql, Copyright Google LLC,
// Apache-2.0.

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/cache"
	"github.com/google/trillian/storage/tree"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/compact"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxLeavesPerRange bounds GetLeavesByRange; the contract allows returning
// fewer leaves than asked for.
const maxLeavesPerRange = 65536

// logTX implements storage.LogTreeTX on one SQLite transaction: a read
// transaction on a reader connection for snapshots, a BEGIN IMMEDIATE
// transaction on the writer connection otherwise.
type logTX struct {
	db       *DB
	tx       *sql.Tx
	write    bool
	treeID   int64
	treeType trillian.TreeType

	// mu serialises the use of tx and of the subtree cache, which are not
	// safe for concurrent use.
	mu     sync.Mutex
	closed bool
	cache  *cache.SubtreeCache

	root          types.LogRootV1
	slr           *trillian.SignedLogRoot
	readRevision  int64
	writeRevision int64
	dequeued      map[string]dequeuedLeaf
}

// dequeuedLeaf identifies the Unsequenced row of a dequeued leaf.
type dequeuedLeaf struct {
	queueTimestampNanos int64
	leafIdentityHash    []byte
}

// stmt binds a statement prepared on the writer to a write transaction, or
// prepares query in a read transaction.
func (t *logTX) stmt(ctx context.Context, prepared *sql.Stmt, query string) (*sql.Stmt, error) {
	if t.write {
		return t.tx.StmtContext(ctx, prepared), nil
	}
	s, err := t.tx.PrepareContext(ctx, query)
	return s, wrap(err, "prepare statement")
}

// loadLatestRoot reads the newest signed root and its revision.
func (t *logTX) loadLatestRoot(ctx context.Context) error {
	s, err := t.stmt(ctx, t.db.stmts.selectLatestRoot, selectLatestSignedLogRootSQL)
	if err != nil {
		return err
	}
	var timestamp, treeSize int64
	var rootHash []byte
	err = s.QueryRowContext(ctx, t.treeID).Scan(&timestamp, &treeSize, &rootHash, &t.readRevision)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrTreeNeedsInit
	}
	if err != nil {
		return wrap(err, "read latest root of tree %d", t.treeID)
	}
	t.root = types.LogRootV1{RootHash: rootHash, TimestampNanos: uint64(timestamp), TreeSize: uint64(treeSize)}
	logRoot, err := t.root.MarshalBinary()
	if err != nil {
		return fmt.Errorf("couldn't marshal root of tree %d: %w", t.treeID, err)
	}
	t.slr = &trillian.SignedLogRoot{LogRoot: logRoot}
	return nil
}

// LatestSignedLogRoot returns the root read when the transaction began.
func (t *logTX) LatestSignedLogRoot(ctx context.Context) (*trillian.SignedLogRoot, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slr == nil {
		return nil, storage.ErrTreeNeedsInit
	}
	return t.slr, nil
}

// StoreSignedLogRoot stores a new root at the write revision. Like the MySQL
// storage it refuses roots with metadata and does not keep the signature.
func (t *logTX) StoreSignedLogRoot(ctx context.Context, root *trillian.SignedLogRoot) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var logRoot types.LogRootV1
	if err := logRoot.UnmarshalBinary(root.LogRoot); err != nil {
		return status.Errorf(codes.InvalidArgument, "couldn't parse log root: %v", err)
	}
	if len(logRoot.Metadata) != 0 {
		return status.Error(codes.Unimplemented, "sqlite storage does not support log root metadata")
	}
	res, err := t.tx.StmtContext(ctx, t.db.stmts.insertTreeHead).ExecContext(ctx, t.treeID,
		int64(logRoot.TimestampNanos), int64(logRoot.TreeSize), logRoot.RootHash, t.writeRevision, []byte{})
	return checkRowCount(res, err, 1, "store signed root of tree %d", t.treeID)
}

// GetMerkleNodes returns the requested nodes as of this transaction.
func (t *logTX) GetMerkleNodes(ctx context.Context, ids []compact.NodeID) ([]tree.Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cache.GetNodes(ids, t.subtreeGetter(ctx))
}

// SetMerkleNodes records nodes in the subtree cache; Commit writes the
// updated tiles.
func (t *logTX) SetMerkleNodes(ctx context.Context, nodes []tree.Node) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cache.SetNodes(nodes, t.subtreeGetter(ctx))
}

// GetLeavesByRange returns the contiguous sequenced leaves in
// [start, start+count), clipped to the tree size for LOG trees.
func (t *logTX) GetLeavesByRange(ctx context.Context, start, count int64) ([]*trillian.LogLeaf, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.getLeavesByRange(ctx, start, count)
}

// getLeavesByRange is GetLeavesByRange with t.mu held.
func (t *logTX) getLeavesByRange(ctx context.Context, start, count int64) ([]*trillian.LogLeaf, error) {
	if count <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid count %d, want > 0", count)
	}
	if start < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid start %d, want >= 0", start)
	}
	if t.treeType == trillian.TreeType_LOG {
		treeSize := int64(t.root.TreeSize)
		if treeSize <= 0 {
			return nil, status.Errorf(codes.OutOfRange, "empty tree")
		} else if start >= treeSize {
			return nil, status.Errorf(codes.OutOfRange, "invalid start %d, want < TreeSize(%d)", start, treeSize)
		}
		count = min(count, treeSize-start)
	}
	count = min(count, maxLeavesPerRange)
	rows, err := t.tx.QueryContext(ctx, selectLeavesByRangeSQL, t.treeID, start, start+count)
	if err != nil {
		return nil, wrap(err, "read leaves [%d, %d)", start, start+count)
	}
	defer func() { _ = rows.Close() }()
	return t.scanRange(rows, start, count)
}

// scanRange reads leaves until the first gap in the sequence numbers. A gap
// inside the tree is an error.
func (t *logTX) scanRange(rows *sql.Rows, start, count int64) ([]*trillian.LogLeaf, error) {
	ret := make([]*trillian.LogLeaf, 0, count)
	for want := start; rows.Next(); want++ {
		leaf, err := scanLeaf(rows)
		if err != nil {
			return nil, err
		}
		if leaf.LeafIndex != want {
			if want < int64(t.root.TreeSize) {
				return nil, fmt.Errorf("couldn't read leaves: got index %d, want %d", leaf.LeafIndex, want)
			}
			break
		}
		ret = append(ret, leaf)
	}
	return ret, wrap(rows.Err(), "read leaves")
}

// GetLeavesByHash returns the sequenced leaves with the given Merkle leaf
// hashes.
func (t *logTX) GetLeavesByHash(ctx context.Context, leafHashes [][]byte, orderBySequence bool) ([]*trillian.LogLeaf, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(leafHashes) == 0 {
		return nil, nil
	}
	query := expand(selectLeavesByMerkleHashSQL, len(leafHashes), "?")
	if orderBySequence {
		query += orderBySequenceNumberSQL
	}
	return queryLeaves(ctx, t.tx, query, t.treeID, leafHashes)
}

// DequeueLeaves returns up to limit leaves queued no later than cutoff, or,
// for PREORDERED_LOG trees, the stored leaves right after the tree size.
func (t *logTX) DequeueLeaves(ctx context.Context, limit int, cutoff time.Time) ([]*trillian.LogLeaf, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.treeType == trillian.TreeType_PREORDERED_LOG {
		return t.getLeavesByRange(ctx, int64(t.root.TreeSize), int64(limit))
	}
	if !t.write {
		return nil, status.Error(codes.FailedPrecondition, "DequeueLeaves needs a read-write transaction")
	}
	start := time.Now()
	rows, err := t.tx.StmtContext(ctx, t.db.stmts.selectQueuedLeaves).QueryContext(ctx, t.treeID, cutoff.UnixNano(), limit)
	if err != nil {
		return nil, wrap(err, "select queued leaves")
	}
	defer func() { _ = rows.Close() }()
	leaves, err := t.scanQueued(rows, limit)
	if err != nil {
		return nil, err
	}
	t.db.m.observeDequeue(t.treeID, len(leaves), time.Since(start))
	return leaves, nil
}

// scanQueued reads Unsequenced rows and remembers them for
// UpdateSequencedLeaves. Leaves already dequeued in this transaction are
// skipped.
func (t *logTX) scanQueued(rows *sql.Rows, limit int) ([]*trillian.LogLeaf, error) {
	leaves := make([]*trillian.LogLeaf, 0, limit)
	for rows.Next() {
		var idHash, merkleHash []byte
		var queueNanos int64
		if err := rows.Scan(&idHash, &merkleHash, &queueNanos); err != nil {
			return nil, wrap(err, "read queued leaf")
		}
		if len(idHash) != hashSize {
			return nil, errors.New("couldn't dequeue: leaf with incorrect hash size")
		}
		k := string(idHash)
		if _, ok := t.dequeued[k]; ok {
			continue
		}
		t.dequeued[k] = dequeuedLeaf{queueTimestampNanos: queueNanos, leafIdentityHash: idHash}
		leaves = append(leaves, &trillian.LogLeaf{
			LeafIdentityHash: idHash,
			MerkleLeafHash:   merkleHash,
			QueueTimestamp:   timestamppb.New(time.Unix(0, queueNanos)),
		})
	}
	return leaves, wrap(rows.Err(), "read queued leaves")
}

// UpdateSequencedLeaves records the sequence numbers assigned to dequeued
// leaves and removes them from the queue.
func (t *logTX) UpdateSequencedLeaves(ctx context.Context, leaves []*trillian.LogLeaf) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	dequeued := make([]dequeuedLeaf, 0, len(leaves))
	for _, leaf := range leaves {
		if len(leaf.LeafIdentityHash) != hashSize {
			return errors.New("couldn't update sequenced leaves: incorrect hash size")
		}
		if err := leaf.IntegrateTimestamp.CheckValid(); err != nil {
			return fmt.Errorf("couldn't update sequenced leaves: invalid integrate timestamp: %w", err)
		}
		dq, ok := t.dequeued[string(leaf.LeafIdentityHash)]
		if !ok {
			return fmt.Errorf("couldn't update sequenced leaves: leaf %x was not dequeued", leaf.LeafIdentityHash)
		}
		dequeued = append(dequeued, dq)
	}
	if err := t.insertSequenced(ctx, leaves); err != nil {
		return err
	}
	return t.removeDequeued(ctx, dequeued)
}

// insertSequenced inserts SequencedLeafData rows with multi-row INSERTs.
func (t *logTX) insertSequenced(ctx context.Context, leaves []*trillian.LogLeaf) error {
	for len(leaves) > 0 {
		n := min(len(leaves), maxRowsPerInsert)
		args := make([]any, 0, 5*n)
		for _, leaf := range leaves[:n] {
			args = append(args, t.treeID, leaf.LeafIdentityHash, leaf.MerkleLeafHash,
				leaf.LeafIndex, leaf.IntegrateTimestamp.AsTime().UnixNano())
		}
		res, err := t.tx.ExecContext(ctx, expand(insertSequencedLeavesSQL, n, "(?,?,?,?,?)"), args...)
		if err := checkRowCount(res, err, int64(n), "insert sequenced leaves"); err != nil {
			return err
		}
		leaves = leaves[n:]
	}
	return nil
}

// removeDequeued deletes the Unsequenced rows of sequenced leaves.
func (t *logTX) removeDequeued(ctx context.Context, leaves []dequeuedLeaf) error {
	start := time.Now()
	del := t.tx.StmtContext(ctx, t.db.stmts.deleteUnsequenced)
	for _, dq := range leaves {
		res, err := del.ExecContext(ctx, t.treeID, dq.queueTimestampNanos, dq.leafIdentityHash)
		if err := checkRowCount(res, err, 1, "remove sequenced leaf from queue"); err != nil {
			return err
		}
	}
	t.db.m.observeRemove(t.treeID, time.Since(start))
	return nil
}

// addSequencedLeaves stores leaves of a PREORDERED_LOG at their LeafIndex.
// A leaf whose identity hash or index is taken gets FailedPrecondition and
// leaves nothing behind.
func (t *logTX) addSequencedLeaves(ctx context.Context, leaves []*trillian.LogLeaf, timestamp time.Time) ([]*trillian.QueuedLogLeaf, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := make([]*trillian.QueuedLogLeaf, len(leaves))
	for i, leaf := range leaves {
		if got := len(leaf.LeafIdentityHash); got != hashSize {
			return nil, status.Errorf(codes.FailedPrecondition, "leaves[%d] has incorrect hash size %d, want %d", i, got, hashSize)
		}
		st, err := t.addSequencedLeaf(ctx, leaf, timestamp)
		if err != nil {
			return nil, err
		}
		res[i] = &trillian.QueuedLogLeaf{Status: st.Proto()}
	}
	return res, nil
}

// addSequencedLeaf inserts one leaf of a PREORDERED_LOG and returns its status.
func (t *logTX) addSequencedLeaf(ctx context.Context, leaf *trillian.LogLeaf, timestamp time.Time) (*status.Status, error) {
	res, err := t.tx.StmtContext(ctx, t.db.stmts.insertLeafData).ExecContext(ctx,
		t.treeID, leaf.LeafIdentityHash, nonNil(leaf.LeafValue), leaf.ExtraData, timestamp.UnixNano())
	if n, err := rowCount(res, err, "insert leaf data"); err != nil || n == 0 {
		return status.New(codes.FailedPrecondition, "conflicting LeafIdentityHash"), err
	}
	res, err = t.tx.StmtContext(ctx, t.db.stmts.insertSequenced).ExecContext(ctx,
		t.treeID, leaf.LeafIdentityHash, leaf.MerkleLeafHash, leaf.LeafIndex, 0)
	n, err := rowCount(res, err, "insert sequenced leaf")
	if err != nil || n == 1 {
		return status.New(codes.OK, "OK"), err
	}
	_, err = t.tx.StmtContext(ctx, t.db.stmts.deleteLeafData).ExecContext(ctx, t.treeID, leaf.LeafIdentityHash)
	return status.New(codes.FailedPrecondition, "conflicting LeafIndex"), wrap(err, "undo leaf data insert")
}

// Commit writes the updated subtrees (in write transactions) and commits.
func (t *logTX) Commit(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("couldn't commit: transaction already closed")
	}
	if t.write {
		if err := t.flushSubtrees(ctx); err != nil {
			return err
		}
	}
	t.closed = true
	return wrap(t.tx.Commit(), "commit transaction on tree %d", t.treeID)
}

// Close rolls the transaction back unless it was committed or closed.
func (t *logTX) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if err := t.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return wrap(err, "roll back transaction on tree %d", t.treeID)
	}
	return nil
}

// checkRowCount wraps err, or returns an error if the statement did not
// affect exactly want rows.
func checkRowCount(res sql.Result, err error, want int64, format string, args ...any) error {
	n, err := rowCount(res, err, format, args...)
	if err == nil && n != want {
		err = fmt.Errorf("couldn't "+format+": %d rows affected, want %d", append(args, n, want)...)
	}
	return err
}

// rowCount returns the number of rows res affected, or err wrapped.
func rowCount(res sql.Result, err error, format string, args ...any) (int64, error) {
	if err != nil {
		return 0, wrap(err, format, args...)
	}
	n, err := res.RowsAffected()
	return n, wrap(err, format, args...)
}

// nonNil returns b, or an empty slice for nil, since LeafValue is NOT NULL
// and database/sql binds a nil slice as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
