// Adapted from github.com/google/trillian storage/mysql, Copyright Google LLC,
// Apache-2.0.

package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/cache"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const selectActiveLogIDsSQL = `SELECT TreeId FROM Trees
	WHERE TreeType IN (?,?) AND TreeState IN (?,?) AND (Deleted IS NULL OR Deleted = 0)`

// logStorage implements storage.LogStorage.
type logStorage struct {
	db *DB
}

// CheckDatabaseAccessible returns nil if a reader connection answers.
func (s *logStorage) CheckDatabaseAccessible(ctx context.Context) error {
	return s.db.ping(ctx)
}

// GetActiveLogIDs returns the IDs of the non-deleted LOG and PREORDERED_LOG
// trees that are ACTIVE or DRAINING (still being integrated).
func (s *logStorage) GetActiveLogIDs(ctx context.Context) ([]int64, error) {
	if s.db.isClosed() {
		return nil, errClosed
	}
	rows, err := s.db.reader.QueryContext(ctx, selectActiveLogIDsSQL,
		trillian.TreeType_LOG.String(), trillian.TreeType_PREORDERED_LOG.String(),
		trillian.TreeState_ACTIVE.String(), trillian.TreeState_DRAINING.String())
	if err != nil {
		return nil, wrap(err, "list active logs")
	}
	defer func() { _ = rows.Close() }()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(err, "list active logs")
		}
		ids = append(ids, id)
	}
	return ids, wrap(rows.Err(), "list active logs")
}

// SnapshotForTree starts a read transaction on a reader connection. Like the
// MySQL storage it returns the transaction together with
// storage.ErrTreeNeedsInit when the tree has no signed root yet.
func (s *logStorage) SnapshotForTree(ctx context.Context, tree *trillian.Tree) (storage.ReadOnlyLogTreeTX, error) {
	tx, err := s.begin(ctx, tree, false)
	if err != nil && !errors.Is(err, storage.ErrTreeNeedsInit) {
		return nil, err
	}
	return tx, err
}

// ReadWriteTransaction runs f in a transaction on the writer connection and
// commits it if f succeeds.
func (s *logStorage) ReadWriteTransaction(ctx context.Context, tree *trillian.Tree, f storage.LogTXFunc) error {
	tx, err := s.begin(ctx, tree, true)
	if err != nil && !errors.Is(err, storage.ErrTreeNeedsInit) {
		return err
	}
	defer s.db.closeTX(tx)
	if err := f(ctx, tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// AddSequencedLeaves stores leaves of a PREORDERED_LOG at their given
// indices, in one transaction.
func (s *logStorage) AddSequencedLeaves(ctx context.Context, tree *trillian.Tree, leaves []*trillian.LogLeaf, timestamp time.Time) ([]*trillian.QueuedLogLeaf, error) {
	tx, err := s.begin(ctx, tree, true)
	if tx != nil {
		defer s.db.closeTX(tx)
	}
	if err != nil {
		return nil, err
	}
	res, err := tx.addSequencedLeaves(ctx, leaves, timestamp)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	s.db.noteQueued(tree.TreeId)
	return res, nil
}

// QueueGeneration is DB.QueueGeneration.
func (s *logStorage) QueueGeneration(tree int64) uint64 { return s.db.QueueGeneration(tree) }

// QueueLeaves queues leaves through the group committer (see the package
// doc). Leaves whose LeafIdentityHash is already stored come back with
// status AlreadyExists and the stored leaf. The QueueTimestamp of the given
// leaves is set to queueTimestamp, as the MySQL storage does.
func (s *logStorage) QueueLeaves(ctx context.Context, tree *trillian.Tree, leaves []*trillian.LogLeaf, queueTimestamp time.Time) ([]*trillian.QueuedLogLeaf, error) {
	if err := prepareQueuedLeaves(leaves, queueTimestamp); err != nil {
		return nil, err
	}
	existing, err := s.db.queue.queue(ctx, tree.TreeId, leaves, queueTimestamp)
	if err != nil {
		return nil, err
	}
	s.db.noteQueued(tree.TreeId)
	ret := make([]*trillian.QueuedLogLeaf, len(leaves))
	for i, e := range existing {
		if e == nil {
			ret[i] = &trillian.QueuedLogLeaf{Leaf: leaves[i]}
			continue
		}
		ret[i] = &trillian.QueuedLogLeaf{
			Leaf:   e,
			Status: status.Newf(codes.AlreadyExists, "leaf already exists: %v", e.LeafIdentityHash).Proto(),
		}
	}
	return ret, nil
}

// prepareQueuedLeaves validates leaves and stamps them with the queue time.
// A batch with one invalid leaf is refused whole.
func prepareQueuedLeaves(leaves []*trillian.LogLeaf, queueTimestamp time.Time) error {
	ts := timestamppb.New(queueTimestamp)
	if err := ts.CheckValid(); err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid queue timestamp: %v", err)
	}
	for _, leaf := range leaves {
		if got, want := len(leaf.LeafIdentityHash), hashSize; got != want {
			return status.Errorf(codes.InvalidArgument, "queued leaf must have a leaf ID hash of length %d, got %d", want, got)
		}
		leaf.QueueTimestamp = ts
	}
	return nil
}

// hashSize is the size of the RFC 6962 SHA-256 hashes all trees use.
var hashSize = rfc6962.DefaultHasher.Size()

// begin starts a log transaction for tree and reads its latest root. The
// returned transaction is non-nil also when the error is
// storage.ErrTreeNeedsInit.
func (s *logStorage) begin(ctx context.Context, tree *trillian.Tree, write bool) (*logTX, error) {
	if s.db.isClosed() {
		return nil, errClosed
	}
	begin := s.db.beginRead
	if write {
		begin = s.db.beginWrite
	}
	sqlTX, err := begin(ctx)
	if err != nil {
		return nil, err
	}
	tx := &logTX{
		db:       s.db,
		tx:       sqlTX,
		write:    write,
		treeID:   tree.TreeId,
		treeType: tree.TreeType,
		cache:    cache.NewLogSubtreeCache(rfc6962.DefaultHasher),
		dequeued: make(map[string]dequeuedLeaf),
	}
	err = tx.loadLatestRoot(ctx)
	switch {
	case errors.Is(err, storage.ErrTreeNeedsInit):
		tx.writeRevision = 0
		return tx, err
	case err != nil:
		s.db.closeTX(tx)
		return nil, err
	}
	tx.writeRevision = tx.readRevision + 1
	return tx, nil
}

// closeTX closes tx, logging a failure: callers have a better error to return.
func (db *DB) closeTX(tx interface{ Close() error }) {
	if err := tx.Close(); err != nil {
		db.log.Warn("couldn't close transaction", "err", err)
	}
}

// ping checks that a reader connection answers.
func (db *DB) ping(ctx context.Context) error {
	if db.isClosed() {
		return errClosed
	}
	return wrap(db.reader.PingContext(ctx), "reach database %s", db.path)
}
