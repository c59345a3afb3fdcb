// Adapted from github.com/google/trillian storage/mysql, Copyright Google LLC,
// Apache-2.0.

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage/cache"
	"github.com/google/trillian/storage/storagepb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// subtreeGetter returns the function the subtree cache calls to load tiles.
func (t *logTX) subtreeGetter(ctx context.Context) cache.GetSubtreesFunc {
	return func(ids [][]byte) ([]*storagepb.SubtreeProto, error) {
		return t.getSubtrees(ctx, ids)
	}
}

// getSubtrees loads the stored tiles with the given IDs; missing ones are
// left out.
func (t *logTX) getSubtrees(ctx context.Context, ids [][]byte) ([]*storagepb.SubtreeProto, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, t.treeID)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := t.tx.QueryContext(ctx, expand(selectSubtreesSQL, len(ids), "?"), args...)
	if err != nil {
		return nil, wrap(err, "read subtrees")
	}
	defer func() { _ = rows.Close() }()
	ret := make([]*storagepb.SubtreeProto, 0, len(ids))
	for rows.Next() {
		var id, nodes []byte
		if err := rows.Scan(&id, &nodes); err != nil {
			return nil, wrap(err, "read subtree")
		}
		var st storagepb.SubtreeProto
		if err := proto.Unmarshal(nodes, &st); err != nil {
			return nil, fmt.Errorf("couldn't unmarshal subtree %x: %w", id, err)
		}
		if st.Prefix == nil {
			st.Prefix = []byte{}
		}
		ret = append(ret, &st)
	}
	return ret, wrap(rows.Err(), "read subtrees")
}

// flushSubtrees writes the tiles the cache updated, replacing stored ones.
func (t *logTX) flushSubtrees(ctx context.Context) error {
	tiles, err := t.cache.UpdatedTiles()
	if err != nil {
		return fmt.Errorf("couldn't collect updated subtrees: %w", err)
	}
	for len(tiles) > 0 {
		n := min(len(tiles), maxRowsPerInsert)
		if err := t.storeSubtrees(ctx, tiles[:n]); err != nil {
			return err
		}
		tiles = tiles[n:]
	}
	return nil
}

// storeSubtrees upserts tiles in one statement.
func (t *logTX) storeSubtrees(ctx context.Context, tiles []*storagepb.SubtreeProto) error {
	args := make([]any, 0, 3*len(tiles))
	for _, st := range tiles {
		if st.Prefix == nil {
			return fmt.Errorf("couldn't store subtree: nil prefix at depth %d", st.Depth)
		}
		b, err := proto.Marshal(st)
		if err != nil {
			return fmt.Errorf("couldn't marshal subtree %x: %w", st.Prefix, err)
		}
		args = append(args, t.treeID, st.Prefix, b)
	}
	_, err := t.tx.ExecContext(ctx, expand(upsertSubtreesSQL, len(tiles), "(?,?,?)"), args...)
	return wrap(err, "store %d subtrees", len(tiles))
}

// queryer is what *sql.Tx offers for reading; the group committer and the
// log transactions share the leaf queries through it.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryLeaves runs a leaf query whose parameters are the tree ID followed by
// the hashes.
func queryLeaves(ctx context.Context, q queryer, query string, treeID int64, hashes [][]byte) ([]*trillian.LogLeaf, error) {
	args := make([]any, 0, len(hashes)+1)
	args = append(args, treeID)
	for _, h := range hashes {
		args = append(args, h)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(err, "read leaves by hash")
	}
	defer func() { _ = rows.Close() }()
	var ret []*trillian.LogLeaf
	for rows.Next() {
		leaf, err := scanLeaf(rows)
		if err != nil {
			return nil, err
		}
		ret = append(ret, leaf)
	}
	return ret, wrap(rows.Err(), "read leaves by hash")
}

// leafDataByIdentityHash returns the stored data of the leaves with the given
// identity hashes. MerkleLeafHash and LeafIndex are placeholders, as in the
// MySQL storage; IntegrateTimestamp is set for sequenced leaves.
func leafDataByIdentityHash(ctx context.Context, q queryer, treeID int64, hashes [][]byte) ([]*trillian.LogLeaf, error) {
	var ret []*trillian.LogLeaf
	for len(hashes) > 0 {
		n := min(len(hashes), maxRowsPerInsert)
		leaves, err := queryLeaves(ctx, q, expand(selectLeavesByLeafIdentityHashSQL, n, "?"), treeID, hashes[:n])
		if err != nil {
			return nil, err
		}
		ret = append(ret, leaves...)
		hashes = hashes[n:]
	}
	return ret, nil
}

// scanLeaf reads a row of MerkleLeafHash, LeafIdentityHash, LeafValue,
// SequenceNumber, ExtraData, QueueTimestampNanos, IntegrateTimestampNanos.
func scanLeaf(rows *sql.Rows) (*trillian.LogLeaf, error) {
	leaf := &trillian.LogLeaf{}
	var queueNanos int64
	var integrateNanos sql.NullInt64
	if err := rows.Scan(&leaf.MerkleLeafHash, &leaf.LeafIdentityHash, &leaf.LeafValue,
		&leaf.LeafIndex, &leaf.ExtraData, &queueNanos, &integrateNanos); err != nil {
		return nil, wrap(err, "read leaf")
	}
	if len(leaf.MerkleLeafHash) != hashSize {
		return nil, fmt.Errorf("couldn't read leaf: Merkle hash of %d bytes, want %d", len(leaf.MerkleLeafHash), hashSize)
	}
	leaf.QueueTimestamp = timestamppb.New(time.Unix(0, queueNanos))
	if integrateNanos.Valid {
		leaf.IntegrateTimestamp = timestamppb.New(time.Unix(0, integrateNanos.Int64))
	}
	return leaf, nil
}
