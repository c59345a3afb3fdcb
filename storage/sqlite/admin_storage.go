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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// defaultSequenceIntervalSeconds fills TreeControl as in the MySQL storage.
	defaultSequenceIntervalSeconds = 60

	selectTreesSQL = `SELECT TreeId,TreeState,TreeType,DisplayName,Description,
		CreateTimeMillis,UpdateTimeMillis,MaxRootDurationMillis,Deleted,DeleteTimeMillis
		FROM Trees`
	selectNonDeletedTreesSQL = selectTreesSQL + ` WHERE (Deleted IS NULL OR Deleted = 0)`
	selectTreeByIDSQL        = selectTreesSQL + ` WHERE TreeId = ?`
	insertTreeSQL            = `INSERT INTO Trees(TreeId,TreeState,TreeType,DisplayName,Description,
		CreateTimeMillis,UpdateTimeMillis,MaxRootDurationMillis) VALUES(?,?,?,?,?,?,?,?)`
	insertTreeControlSQL = `INSERT INTO TreeControl(TreeId,SigningEnabled,SequencingEnabled,SequenceIntervalSeconds)
		VALUES(?,?,?,?)`
	updateTreeSQL = `UPDATE Trees SET TreeState=?,TreeType=?,DisplayName=?,Description=?,
		UpdateTimeMillis=?,MaxRootDurationMillis=? WHERE TreeId=?`
	updateDeletedSQL     = `UPDATE Trees SET Deleted=?,DeleteTimeMillis=? WHERE TreeId=?`
	selectTreeDeletedSQL = `SELECT Deleted FROM Trees WHERE TreeId=?`
)

// hardDeleteSQL removes a tree, children first, so that no cascade has to
// search for them.
var hardDeleteSQL = []string{
	`DELETE FROM Unsequenced WHERE TreeId=?`,
	`DELETE FROM SequencedLeafData WHERE TreeId=?`,
	`DELETE FROM LeafData WHERE TreeId=?`,
	`DELETE FROM Subtree WHERE TreeId=?`,
	`DELETE FROM TreeHead WHERE TreeId=?`,
	`DELETE FROM TreeControl WHERE TreeId=?`,
	`DELETE FROM Trees WHERE TreeId=?`,
}

// adminStorage implements storage.AdminStorage.
type adminStorage struct {
	db *DB
}

// Snapshot starts a read transaction on a reader connection.
func (s *adminStorage) Snapshot(ctx context.Context) (storage.ReadOnlyAdminTX, error) {
	if s.db.isClosed() {
		return nil, errClosed
	}
	tx, err := s.db.beginRead(ctx)
	if err != nil {
		return nil, err
	}
	return &adminTX{tx: tx}, nil
}

// ReadWriteTransaction runs f in a transaction on the writer connection and
// commits it if f succeeds.
func (s *adminStorage) ReadWriteTransaction(ctx context.Context, f storage.AdminTXFunc) error {
	if s.db.isClosed() {
		return errClosed
	}
	sqlTX, err := s.db.beginWrite(ctx)
	if err != nil {
		return err
	}
	tx := &adminTX{tx: sqlTX}
	defer s.db.closeTX(tx)
	if err := f(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// CheckDatabaseAccessible returns nil if a reader connection answers.
func (s *adminStorage) CheckDatabaseAccessible(ctx context.Context) error {
	return s.db.ping(ctx)
}

// adminTX implements storage.AdminTX.
type adminTX struct {
	tx *sql.Tx

	// mu guards closed; the methods other than Commit and Close rely on tx
	// to refuse work after it is done.
	mu     sync.Mutex
	closed bool
}

// Commit commits the transaction.
func (t *adminTX) Commit() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return wrap(t.tx.Commit(), "commit admin transaction")
}

// Close rolls the transaction back unless it was committed or closed.
func (t *adminTX) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if err := t.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return wrap(err, "roll back admin transaction")
	}
	return nil
}

// GetTree returns the tree with the given ID, or a NotFound error.
func (t *adminTX) GetTree(ctx context.Context, treeID int64) (*trillian.Tree, error) {
	tree, err := readTree(t.tx.QueryRowContext(ctx, selectTreeByIDSQL, treeID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, status.Errorf(codes.NotFound, "tree %v not found", treeID)
	case err != nil:
		return nil, wrap(err, "read tree %d", treeID)
	}
	return tree, nil
}

// ListTrees returns all trees, with the soft-deleted ones if includeDeleted.
func (t *adminTX) ListTrees(ctx context.Context, includeDeleted bool) ([]*trillian.Tree, error) {
	query := selectNonDeletedTreesSQL
	if includeDeleted {
		query = selectTreesSQL
	}
	rows, err := t.tx.QueryContext(ctx, query)
	if err != nil {
		return nil, wrap(err, "list trees")
	}
	defer func() { _ = rows.Close() }()
	trees := []*trillian.Tree{}
	for rows.Next() {
		tree, err := readTree(rows)
		if err != nil {
			return nil, wrap(err, "list trees")
		}
		trees = append(trees, tree)
	}
	return trees, wrap(rows.Err(), "list trees")
}

// CreateTree validates tree and stores it under a new random ID, with the
// creation time truncated to milliseconds as stored.
func (t *adminTX) CreateTree(ctx context.Context, tree *trillian.Tree) (*trillian.Tree, error) {
	if err := storage.ValidateTreeForCreation(ctx, tree); err != nil {
		return nil, err
	}
	if tree.StorageSettings != nil {
		return nil, status.Error(codes.InvalidArgument, "sqlite storage takes no storage_settings")
	}
	id, err := storage.NewTreeID()
	if err != nil {
		return nil, fmt.Errorf("couldn't make tree ID: %w", err)
	}
	nowMillis := time.Now().UnixMilli()
	newTree := proto.Clone(tree).(*trillian.Tree)
	newTree.TreeId = id
	newTree.CreateTime = timestamppb.New(time.UnixMilli(nowMillis))
	newTree.UpdateTime = newTree.CreateTime
	if err := newTree.MaxRootDuration.CheckValid(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid max_root_duration: %v", err)
	}
	if _, err := t.tx.ExecContext(ctx, insertTreeSQL, id, newTree.TreeState.String(), newTree.TreeType.String(),
		newTree.DisplayName, newTree.Description, nowMillis, nowMillis,
		newTree.MaxRootDuration.AsDuration().Milliseconds()); err != nil {
		return nil, wrap(err, "insert tree")
	}
	if _, err := t.tx.ExecContext(ctx, insertTreeControlSQL, id, true, true, defaultSequenceIntervalSeconds); err != nil {
		return nil, wrap(err, "insert tree control")
	}
	return newTree, nil
}

// UpdateTree applies updateFunc to the stored tree, validates the change and
// stores it.
func (t *adminTX) UpdateTree(ctx context.Context, treeID int64, updateFunc func(*trillian.Tree)) (*trillian.Tree, error) {
	tree, err := t.GetTree(ctx, treeID)
	if err != nil {
		return nil, err
	}
	before := proto.Clone(tree).(*trillian.Tree)
	updateFunc(tree)
	if err := storage.ValidateTreeForUpdate(ctx, before, tree); err != nil {
		return nil, err
	}
	if tree.StorageSettings != nil {
		return nil, status.Error(codes.InvalidArgument, "sqlite storage takes no storage_settings")
	}
	if err := tree.MaxRootDuration.CheckValid(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid max_root_duration: %v", err)
	}
	nowMillis := time.Now().UnixMilli()
	tree.UpdateTime = timestamppb.New(time.UnixMilli(nowMillis))
	if _, err := t.tx.ExecContext(ctx, updateTreeSQL, tree.TreeState.String(), tree.TreeType.String(),
		tree.DisplayName, tree.Description, nowMillis, tree.MaxRootDuration.AsDuration().Milliseconds(),
		treeID); err != nil {
		return nil, wrap(err, "update tree %d", treeID)
	}
	return tree, nil
}

// SoftDeleteTree marks a tree deleted; UndeleteTree can bring it back.
func (t *adminTX) SoftDeleteTree(ctx context.Context, treeID int64) (*trillian.Tree, error) {
	return t.updateDeleted(ctx, treeID, true, time.Now().UnixMilli())
}

// UndeleteTree clears the deleted mark of a soft-deleted tree.
func (t *adminTX) UndeleteTree(ctx context.Context, treeID int64) (*trillian.Tree, error) {
	return t.updateDeleted(ctx, treeID, false, nil)
}

// updateDeleted sets Deleted and DeleteTimeMillis (an int64 or nil).
func (t *adminTX) updateDeleted(ctx context.Context, treeID int64, deleted bool, deleteTimeMillis any) (*trillian.Tree, error) {
	if err := t.validateDeleted(ctx, treeID, !deleted); err != nil {
		return nil, err
	}
	if _, err := t.tx.ExecContext(ctx, updateDeletedSQL, deleted, deleteTimeMillis, treeID); err != nil {
		return nil, wrap(err, "mark tree %d deleted=%v", treeID, deleted)
	}
	return t.GetTree(ctx, treeID)
}

// HardDeleteTree removes a soft-deleted tree and all its data.
func (t *adminTX) HardDeleteTree(ctx context.Context, treeID int64) error {
	if err := t.validateDeleted(ctx, treeID, true); err != nil {
		return err
	}
	for _, q := range hardDeleteSQL {
		if _, err := t.tx.ExecContext(ctx, q, treeID); err != nil {
			return wrap(err, "delete tree %d", treeID)
		}
	}
	return nil
}

// validateDeleted returns NotFound for an unknown tree and
// FailedPrecondition unless the tree's deleted state is wantDeleted.
func (t *adminTX) validateDeleted(ctx context.Context, treeID int64, wantDeleted bool) error {
	var deleted sql.NullBool
	err := t.tx.QueryRowContext(ctx, selectTreeDeletedSQL, treeID).Scan(&deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return status.Errorf(codes.NotFound, "tree %v not found", treeID)
	case err != nil:
		return wrap(err, "read tree %d", treeID)
	}
	switch isDeleted := deleted.Valid && deleted.Bool; {
	case wantDeleted && !isDeleted:
		return status.Errorf(codes.FailedPrecondition, "tree %v is not soft deleted", treeID)
	case !wantDeleted && isDeleted:
		return status.Errorf(codes.FailedPrecondition, "tree %v already soft deleted", treeID)
	}
	return nil
}

// row is what *sql.Row and *sql.Rows have in common.
type row interface {
	Scan(dest ...any) error
}

// readTree scans a row of selectTreesSQL.
func readTree(r row) (*trillian.Tree, error) {
	var (
		tree                              trillian.Tree
		state, treeType                   string
		displayName, description          sql.NullString
		createMillis, updateMillis, maxRD int64
		deleted                           sql.NullBool
		deleteMillis                      sql.NullInt64
	)
	if err := r.Scan(&tree.TreeId, &state, &treeType, &displayName, &description,
		&createMillis, &updateMillis, &maxRD, &deleted, &deleteMillis); err != nil {
		return nil, err
	}
	ts, ok := trillian.TreeState_value[state]
	if !ok {
		return nil, fmt.Errorf("unknown TreeState %q", state)
	}
	tt, ok := trillian.TreeType_value[treeType]
	if !ok {
		return nil, fmt.Errorf("unknown TreeType %q", treeType)
	}
	tree.TreeState, tree.TreeType = trillian.TreeState(ts), trillian.TreeType(tt)
	tree.DisplayName, tree.Description = displayName.String, description.String
	tree.CreateTime = timestamppb.New(time.UnixMilli(createMillis))
	tree.UpdateTime = timestamppb.New(time.UnixMilli(updateMillis))
	tree.MaxRootDuration = durationpb.New(time.Duration(maxRD) * time.Millisecond)
	tree.Deleted = deleted.Valid && deleted.Bool
	if tree.Deleted && deleteMillis.Valid {
		tree.DeleteTime = timestamppb.New(time.UnixMilli(deleteMillis.Int64))
	}
	return &tree, nil
}
