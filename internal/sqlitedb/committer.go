package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is the default error of a write after Close.
var ErrClosed = errors.New("sqlitedb: the database is closed")

// CommitterOptions tune a Committer.
type CommitterOptions struct {
	// MaxBatch bounds the writes committed together. Default 64.
	MaxBatch int
	// Buffer is how many writes may wait for the committer before
	// callers block. Default 1024.
	Buffer int
	// Linger is how long a busy committer (whose last batch held more
	// than one write) waits for more writes before it commits. Default 0.
	Linger time.Duration
	// ErrClosed is the error of a write after Close; default ErrClosed.
	ErrClosed error
	// Name prefixes the errors of the transaction ("couldn't commit to
	// NAME: ..."). Default "the database".
	Name string
}

// Committer is the group commit of a SQLite database's writes. One
// goroutine takes every write waiting (up to MaxBatch), runs each in a
// savepoint of its own inside one transaction, commits once (one fsync
// for the group) and answers each caller:
//
//   - a write whose fn fails is rolled back to its savepoint alone, and
//     its caller gets fn's error; the rest of the batch commits;
//   - when the transaction itself fails (BEGIN, a savepoint, COMMIT), the
//     batch is retried write by write, so that a write that breaks the
//     transaction fails alone;
//   - a write whose ctx ends before the committer takes it is not run; once
//     taken, its caller waits for the commit, so an answer is never an
//     error for a write that was in fact committed;
//   - Close refuses new writes, commits those already waiting, and returns.
//
// The writer pool should hold one connection.
type Committer struct {
	db   *sql.DB
	opts CommitterOptions
	reqs chan *request

	// mu guards closed; senders hold it for reading while they send, so
	// Close can wait for them and no request is sent after the last drain.
	mu      sync.RWMutex
	closed  bool
	stop    chan struct{}
	stopped chan struct{}

	commits   atomic.Int64
	lastBatch int // the committer goroutine's only

	// BeforeBatch, when a test sets it before the first write, runs in
	// the committer before it collects a batch.
	BeforeBatch func()
}

// The states of a request; the committer and a cancelled caller race
// for it with compare-and-swap.
const (
	reqWaiting int32 = iota
	reqTaken
	reqCancelled
)

type request struct {
	ctx   context.Context
	fn    func(ctx context.Context, tx *sql.Tx) error
	state atomic.Int32
	done  chan error // buffered: the committer never blocks on it
}

// NewCommitter starts the committer of db's writes.
func NewCommitter(db *sql.DB, opts CommitterOptions) *Committer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 64
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	if opts.ErrClosed == nil {
		opts.ErrClosed = ErrClosed
	}
	if opts.Name == "" {
		opts.Name = "the database"
	}
	c := &Committer{
		db:      db,
		opts:    opts,
		reqs:    make(chan *request, opts.Buffer),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go c.run()
	return c
}

// Do runs fn in the next group's transaction and returns fn's error, or
// the transaction's, once that transaction is committed. fn gets ctx's
// values without its cancellation: a shared transaction is never cut
// short by one caller.
func (c *Committer) Do(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	// A context that has already ended makes no write. The selects below
	// choose at random among ready cases, so without this check a
	// canceled caller's write could still be queued and made.
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	if err := c.submit(ctx, req); err != nil {
		return err
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqWaiting, reqCancelled) {
			return ctx.Err()
		}
		return <-req.done // taken: wait for the truth
	}
}

func (c *Committer) submit(ctx context.Context, req *request) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return c.opts.ErrClosed
	}
	select {
	case c.reqs <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close makes new writes fail with ErrClosed, commits those already
// waiting and stops the committer. It does not close db.
func (c *Committer) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.stopped
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	<-c.stopped
}

// Waiting is the number of writes queued for the committer and not yet
// taken into a batch.
func (c *Committer) Waiting() int { return len(c.reqs) }

// Commits is the number of transactions committed.
func (c *Committer) Commits() int64 { return c.commits.Load() }

func (c *Committer) run() {
	defer close(c.stopped)
	for {
		select {
		case req := <-c.reqs:
			if c.BeforeBatch != nil {
				c.BeforeBatch()
			}
			c.commit(c.collect(req))
		case <-c.stop:
			for {
				select {
				case req := <-c.reqs:
					c.commit(c.collect(req))
				default:
					return
				}
			}
		}
	}
}

// collect returns first plus the requests already waiting, up to
// MaxBatch; when the last batch held more than one, it lingers for more.
func (c *Committer) collect(first *request) []*request {
	batch := []*request{first}
	var linger <-chan time.Time
	if c.opts.Linger > 0 && c.lastBatch > 1 {
		t := time.NewTimer(c.opts.Linger)
		defer t.Stop()
		linger = t.C
	}
	for len(batch) < c.opts.MaxBatch {
		select {
		case req := <-c.reqs:
			batch = append(batch, req)
			continue
		default:
		}
		if linger == nil {
			break
		}
		select {
		case req := <-c.reqs:
			batch = append(batch, req)
			continue
		case <-linger:
		}
		break
	}
	c.lastBatch = len(batch)
	return batch
}

// commit writes a batch and answers its callers; those cancelled before
// it was taken are dropped.
func (c *Committer) commit(batch []*request) {
	live := batch[:0:0]
	for _, req := range batch {
		if req.state.CompareAndSwap(reqWaiting, reqTaken) {
			live = append(live, req)
		}
	}
	if len(live) == 0 {
		return
	}
	errs, err := c.write(live)
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
		errs, err := c.write([]*request{req})
		if err == nil {
			err = errs[0]
		}
		req.done <- err
	}
}

// write runs every request of batch, each in a savepoint, in one
// transaction, and commits it. It returns each request's error, or the
// error that failed the transaction.
func (c *Committer) write(batch []*request) ([]error, error) {
	ctx := context.Background() // the batch outlives any one caller
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin a transaction on %s: %w", c.opts.Name, err)
	}
	defer tx.Rollback()
	errs := make([]error, len(batch))
	for i, req := range batch {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
			return nil, fmt.Errorf("couldn't start a savepoint on %s: %w", c.opts.Name, err)
		}
		if errs[i] = req.fn(context.WithoutCancel(req.ctx), tx); errs[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
				return nil, fmt.Errorf("couldn't roll back a failed write on %s (%v): %w", c.opts.Name, errs[i], err)
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE w"); err != nil {
			return nil, fmt.Errorf("couldn't release a savepoint on %s: %w", c.opts.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("couldn't commit to %s: %w", c.opts.Name, err)
	}
	c.commits.Add(1)
	return errs, nil
}
