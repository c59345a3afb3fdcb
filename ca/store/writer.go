package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ctstage/ctstage/internal/sqlitedb"
)

// ErrClosed reports a write to a closed store.
var ErrClosed = errors.New("the CA store is closed")

// requestBuffer is how many writes may wait for the writer before callers
// block.
const requestBuffer = 1024

// The writer's prepared statements, indexes into writer.stmts.
const (
	stInsertPre = iota
	stSelectCert
	stUpdateCert
	stInsertSCT
	stSelectRevoked
	stRevoke
	stInsertOwed
	stDeleteOwed
	stSavepoint
	stRollbackTo
	stRelease
)

var statements = []string{
	stInsertPre: `INSERT INTO issuances (serial, profile, precertificate, created_ms, issuer_key_id, not_after_ms)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING`,
	stSelectCert:    "SELECT certificate FROM issuances WHERE serial = ?",
	stUpdateCert:    "UPDATE issuances SET certificate = ?, issued_ms = ? WHERE serial = ?",
	stInsertSCT:     "INSERT INTO scts (serial, position, log_id, log_url, timestamp_ms, sct) VALUES (?, ?, ?, ?, ?, ?)",
	stSelectRevoked: "SELECT revoked_ms FROM issuances WHERE serial = ?",
	stRevoke:        "UPDATE issuances SET revoked_ms = ?, revocation_reason = ? WHERE serial = ?",
	stInsertOwed:    "INSERT INTO final_owed (serial) VALUES (?)",
	stDeleteOwed:    "DELETE FROM final_owed WHERE serial = ?",
	stSavepoint:     "SAVEPOINT write",
	stRollbackTo:    "ROLLBACK TO write",
	stRelease:       "RELEASE write",
}

// batchTx is the transaction of one write, as the write sees it: the
// shared transaction of its group commit, and the store's prepared
// statements, bound to it on first use.
type batchTx struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts []*sql.Stmt // prepared on the writer pool
	bound []*sql.Stmt // stmts bound to tx
}

func (b *batchTx) stmt(i int) *sql.Stmt {
	if b.bound == nil {
		b.bound = make([]*sql.Stmt, len(b.stmts))
	}
	if b.bound[i] == nil {
		b.bound[i] = b.tx.StmtContext(b.ctx, b.stmts[i])
	}
	return b.bound[i]
}

func (b *batchTx) exec(ctx context.Context, st int, args ...any) (sql.Result, error) {
	return b.stmt(st).ExecContext(ctx, args...)
}

func (b *batchTx) queryRow(ctx context.Context, st int, args ...any) *sql.Row {
	return b.stmt(st).QueryRowContext(ctx, args...)
}

// writer is the group commit of the store's writes (see SQLite), on
// sqlitedb's committer, with the statements prepared once.
type writer struct {
	db    *sql.DB // the writer pool: one connection
	c     *sqlitedb.Committer
	stmts []*sql.Stmt
}

// newWriter prepares the statements on db and starts the committer.
func newWriter(ctx context.Context, db *sql.DB) (*writer, error) {
	w := &writer{db: db}
	for _, q := range statements {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			w.closeStmts()
			return nil, fmt.Errorf("couldn't prepare %q: %w", q, err)
		}
		w.stmts = append(w.stmts, st)
	}
	w.c = sqlitedb.NewCommitter(db, sqlitedb.CommitterOptions{
		MaxBatch: maxBatch, Buffer: requestBuffer, ErrClosed: ErrClosed, Name: "the CA database",
	})
	return w, nil
}

// do runs op in the next group commit and returns once it is committed.
// op runs in a savepoint: when it fails, what it wrote is rolled back and
// its error returned, and the rest of the batch is unaffected. A call
// whose ctx ends before the committer takes it is not run.
func (w *writer) do(ctx context.Context, op func(*batchTx) error) error {
	return w.c.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return op(&batchTx{ctx: ctx, tx: tx, stmts: w.stmts})
	})
}

// close makes new writes fail, commits those already waiting, and
// releases the statements and the writer pool.
func (w *writer) close() error {
	w.c.Close()
	w.closeStmts()
	return w.db.Close()
}

func (w *writer) closeStmts() {
	for _, st := range w.stmts {
		st.Close()
	}
}
