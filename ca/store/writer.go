package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrClosed reports a write to a closed store.
var ErrClosed = errors.New("the CA store is closed")

// requestBuffer is how many writes may wait for the writer before callers
// block.
const requestBuffer = 1024

// writer is the group commit of the store's writes (see SQLite).
type writer struct {
	conn     *sql.Conn // the writer's own connection
	stmts    []*sql.Stmt
	requests chan *writeRequest

	// mu guards closed; senders hold it for reading while they send, so
	// close can wait for them and no request is sent after the last drain.
	mu      sync.RWMutex
	closed  bool
	stop    chan struct{}
	stopped chan struct{}

	// commits counts the transactions committed, for tests.
	commits atomic.Int64
	// beforeBatch, when a test sets it, runs in the writer before it
	// collects a batch.
	beforeBatch func()
}

// writeRequest is one write waiting for the group commit.
type writeRequest struct {
	ctx  context.Context
	op   func(*batchTx) error
	done chan error // buffered: the writer never blocks on it
}

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

// batchTx is the transaction of one batch, as a write sees it.
type batchTx struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts []*sql.Stmt // writer.stmts bound to tx
}

func (b *batchTx) stmt(i int) *sql.Stmt { return b.stmts[i] }

func (b *batchTx) exec(ctx context.Context, st int, args ...any) (sql.Result, error) {
	return b.stmts[st].ExecContext(ctx, args...)
}

func (b *batchTx) queryRow(ctx context.Context, st int, args ...any) *sql.Row {
	return b.stmts[st].QueryRowContext(ctx, args...)
}

// newWriter prepares the statements, takes a connection and starts the
// writer goroutine.
func newWriter(ctx context.Context, db *sql.DB) (*writer, error) {
	w := &writer{
		requests: make(chan *writeRequest, requestBuffer),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	for _, q := range statements {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("couldn't prepare %q: %w", q, err)
		}
		w.stmts = append(w.stmts, st)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w.conn = conn
	go w.run()
	return w, nil
}

// do hands op to the writer and waits until the batch that ran it is
// committed. op runs in a savepoint: when it fails, what it wrote is rolled
// back and its error returned, and the rest of the batch is unaffected.
// A call whose ctx ends before the writer takes it is not run; one whose
// ctx ends while the batch runs returns ctx's error but may be committed.
func (w *writer) do(ctx context.Context, op func(*batchTx) error) error {
	req := &writeRequest{ctx: ctx, op: op, done: make(chan error, 1)}
	if err := w.submit(ctx, req); err != nil {
		return err
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submit sends req to the writer unless the store is closed.
func (w *writer) submit(ctx context.Context, req *writeRequest) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.requests <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close makes new writes fail, commits those already waiting, stops the
// writer and releases its connection and statements.
func (w *writer) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.stopped
	for _, st := range w.stmts {
		st.Close()
	}
	w.conn.Close()
}

// run is the writer goroutine.
func (w *writer) run() {
	defer close(w.stopped)
	for {
		select {
		case req := <-w.requests:
			if w.beforeBatch != nil {
				w.beforeBatch()
			}
			w.commit(w.collect(req))
		case <-w.stop:
			for {
				select {
				case req := <-w.requests:
					w.commit(w.collect(req))
				default:
					return
				}
			}
		}
	}
}

// collect returns first plus the requests already waiting, up to maxBatch.
func (w *writer) collect(first *writeRequest) []*writeRequest {
	batch := []*writeRequest{first}
	for len(batch) < maxBatch {
		select {
		case req := <-w.requests:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commit writes a batch and answers its callers, those whose context has
// ended without writing. When the transaction fails (rather than one
// write), each write is retried alone, so that a write that breaks the
// transaction fails alone.
func (w *writer) commit(batch []*writeRequest) {
	live := make([]*writeRequest, 0, len(batch))
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.done <- err
			continue
		}
		live = append(live, req)
	}
	if len(live) == 0 {
		return
	}
	errs, err := w.write(live)
	if err == nil {
		for i, req := range live {
			req.done <- errs[i]
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- err
		return
	}
	for _, req := range live {
		errs, err := w.write([]*writeRequest{req})
		if err == nil {
			err = errs[0]
		}
		req.done <- err
	}
}

// write runs every request of batch, each in a savepoint, in one
// transaction, and commits it. It returns each request's error, or the
// error that failed the transaction.
func (w *writer) write(batch []*writeRequest) ([]error, error) {
	ctx := context.Background() // the batch outlives any one caller
	tx, err := w.conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin: %w", err)
	}
	defer tx.Rollback()
	b := &batchTx{ctx: ctx, tx: tx, stmts: make([]*sql.Stmt, len(w.stmts))}
	for i, st := range w.stmts {
		b.stmts[i] = tx.StmtContext(ctx, st)
	}
	errs := make([]error, len(batch))
	for i, req := range batch {
		if _, err := b.stmt(stSavepoint).ExecContext(ctx); err != nil {
			return nil, fmt.Errorf("couldn't start a savepoint: %w", err)
		}
		if errs[i] = req.op(b); errs[i] != nil {
			if _, err := b.stmt(stRollbackTo).ExecContext(ctx); err != nil {
				return nil, fmt.Errorf("couldn't roll back a failed write (%v): %w", errs[i], err)
			}
		}
		if _, err := b.stmt(stRelease).ExecContext(ctx); err != nil {
			return nil, fmt.Errorf("couldn't release a savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("couldn't commit: %w", err)
	}
	w.commits.Add(1)
	return errs, nil
}
