// Adapted from github.com/google/trillian storage/mysql, Copyright Google LLC,
// Apache-2.0.

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

// SQL shared by the log storage. Statements with a variable number of
// parameters are expanded by expand.
const (
	insertLeafDataSQL = `INSERT INTO LeafData(TreeId,LeafIdentityHash,LeafValue,ExtraData,QueueTimestampNanos)
		VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING`
	insertUnsequencedSQL = `INSERT INTO Unsequenced(TreeId,Bucket,LeafIdentityHash,MerkleLeafHash,QueueTimestampNanos)
		VALUES(?,0,?,?,?)`
	insertSequencedLeafSQL = `INSERT INTO SequencedLeafData(TreeId,LeafIdentityHash,MerkleLeafHash,SequenceNumber,IntegrateTimestampNanos)
		VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING`
	insertSequencedLeavesSQL = `INSERT INTO SequencedLeafData(TreeId,LeafIdentityHash,MerkleLeafHash,SequenceNumber,IntegrateTimestampNanos)
		VALUES ` + placeholder
	deleteLeafDataSQL    = `DELETE FROM LeafData WHERE TreeId=? AND LeafIdentityHash=?`
	deleteUnsequencedSQL = `DELETE FROM Unsequenced
		WHERE TreeId=? AND Bucket=0 AND QueueTimestampNanos=? AND LeafIdentityHash=?`
	selectQueuedLeavesSQL = `SELECT LeafIdentityHash,MerkleLeafHash,QueueTimestampNanos
		FROM Unsequenced
		WHERE TreeId=? AND Bucket=0 AND QueueTimestampNanos<=?
		ORDER BY QueueTimestampNanos,LeafIdentityHash ASC LIMIT ?`
	selectHasRootSQL = `SELECT EXISTS(SELECT 1 FROM TreeHead WHERE TreeId=?)`

	selectLatestSignedLogRootSQL = `SELECT TreeHeadTimestamp,TreeSize,RootHash,TreeRevision
		FROM TreeHead WHERE TreeId=?
		ORDER BY TreeHeadTimestamp DESC LIMIT 1`
	insertTreeHeadSQL = `INSERT INTO TreeHead(TreeId,TreeHeadTimestamp,TreeSize,RootHash,TreeRevision,RootSignature)
		VALUES(?,?,?,?,?,?)`

	selectLeavesByRangeSQL = `SELECT s.MerkleLeafHash,l.LeafIdentityHash,l.LeafValue,s.SequenceNumber,l.ExtraData,l.QueueTimestampNanos,s.IntegrateTimestampNanos
		FROM SequencedLeafData s JOIN LeafData l
		  ON l.TreeId = s.TreeId AND l.LeafIdentityHash = s.LeafIdentityHash
		WHERE s.TreeId = ? AND s.SequenceNumber >= ? AND s.SequenceNumber < ?
		ORDER BY s.SequenceNumber`
	// selectLeavesByMerkleHashSQL backs get-proof-by-hash. INDEXED BY
	// pins the plan: with ORDER BY SequenceNumber appended, SQLite's planner
	// otherwise prefers walking the primary key, i.e. the whole tree
	// (1.8 s per lookup at 1M entries instead of under 1 ms).
	selectLeavesByMerkleHashSQL = `SELECT s.MerkleLeafHash,l.LeafIdentityHash,l.LeafValue,s.SequenceNumber,l.ExtraData,l.QueueTimestampNanos,s.IntegrateTimestampNanos
		FROM SequencedLeafData s INDEXED BY SequencedLeafMerkleIdx JOIN LeafData l
		  ON l.TreeId = s.TreeId AND l.LeafIdentityHash = s.LeafIdentityHash
		WHERE s.TreeId = ? AND s.MerkleLeafHash IN (` + placeholder + `)`
	orderBySequenceNumberSQL = ` ORDER BY s.SequenceNumber`

	// dummyMerkleLeafHash stands in for the Merkle hash of leaves looked up
	// by identity hash, as in the MySQL storage: only their data is needed.
	dummyMerkleLeafHash = "00000000000000000000000000000000"
	// selectLeavesByLeafIdentityHashSQL returns stored leaf data; the
	// integrate timestamp is NULL for leaves not yet sequenced.
	selectLeavesByLeafIdentityHashSQL = `SELECT CAST('` + dummyMerkleLeafHash + `' AS BLOB),l.LeafIdentityHash,l.LeafValue,-1,l.ExtraData,l.QueueTimestampNanos,s.IntegrateTimestampNanos
		FROM LeafData l LEFT JOIN SequencedLeafData s INDEXED BY SequencedLeafIdentityIdx
		  ON l.TreeId = s.TreeId AND l.LeafIdentityHash = s.LeafIdentityHash
		WHERE l.TreeId = ? AND l.LeafIdentityHash IN (` + placeholder + `)`

	selectSubtreesSQL = `SELECT SubtreeId,Nodes FROM Subtree WHERE TreeId = ? AND SubtreeId IN (` + placeholder + `)`
	upsertSubtreesSQL = `INSERT INTO Subtree(TreeId,SubtreeId,Nodes) VALUES ` + placeholder + `
		ON CONFLICT(TreeId,SubtreeId) DO UPDATE SET Nodes=excluded.Nodes`

	placeholder = "<placeholder>"
)

// maxRowsPerInsert bounds multi-row INSERTs, well below SQLite's limit of
// 32766 bound parameters.
const maxRowsPerInsert = 500

// expand replaces the placeholder in query with n copies of group, joined by
// commas: expand("IN (<placeholder>)", 3, "?") is "IN (?,?,?)".
func expand(query string, n int, group string) string {
	groups := strings.TrimSuffix(strings.Repeat(group+",", n), ",")
	return strings.Replace(query, placeholder, groups, 1)
}

// statements are prepared once on the writer connection and bound to a
// transaction with Tx.StmtContext, which reuses the prepared statement.
type statements struct {
	insertLeafData     *sql.Stmt
	insertUnsequenced  *sql.Stmt
	insertSequenced    *sql.Stmt
	deleteLeafData     *sql.Stmt
	deleteUnsequenced  *sql.Stmt
	selectQueuedLeaves *sql.Stmt
	selectHasRoot      *sql.Stmt
	selectLatestRoot   *sql.Stmt
	insertTreeHead     *sql.Stmt
	all                []*sql.Stmt
}

// prepareStatements prepares the fixed statements on the writer pool. It must
// run while no transaction holds the writer connection.
func prepareStatements(ctx context.Context, writer *sql.DB) (*statements, error) {
	s := &statements{}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.insertLeafData, insertLeafDataSQL},
		{&s.insertUnsequenced, insertUnsequencedSQL},
		{&s.insertSequenced, insertSequencedLeafSQL},
		{&s.deleteLeafData, deleteLeafDataSQL},
		{&s.deleteUnsequenced, deleteUnsequencedSQL},
		{&s.selectQueuedLeaves, selectQueuedLeavesSQL},
		{&s.selectHasRoot, selectHasRootSQL},
		{&s.selectLatestRoot, selectLatestSignedLogRootSQL},
		{&s.insertTreeHead, insertTreeHeadSQL},
	} {
		stmt, err := writer.PrepareContext(ctx, p.query)
		if err != nil {
			return nil, errors.Join(wrap(err, "prepare %q", p.query), s.close())
		}
		*p.dst = stmt
		s.all = append(s.all, stmt)
	}
	return s, nil
}

// close closes every prepared statement.
func (s *statements) close() error {
	var errs []error
	for _, stmt := range s.all {
		errs = append(errs, stmt.Close())
	}
	return errors.Join(errs...)
}
