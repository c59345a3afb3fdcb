package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

func openCommitter(t *testing.T, opts CommitterOptions) (*Committer, *sql.DB) {
	t.Helper()
	db, err := sql.Open("sqlite", DSN(filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	c := NewCommitter(db, opts)
	t.Cleanup(func() { c.Close(); db.Close() })
	return c, db
}

func insert(k string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO t (k) VALUES (?)", k)
		return err
	}
}

func has(t *testing.T, db *sql.DB, k string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t WHERE k = ?", k).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// gate holds the committer before its next batch until n writes wait.
func gate(c *Committer, n int) <-chan struct{} {
	var once sync.Once
	entered := make(chan struct{})
	c.BeforeBatch = func() {
		once.Do(func() {
			close(entered)
			for deadline := time.Now().Add(10 * time.Second); c.Waiting() < n && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		})
	}
	return entered
}

// batch runs fns concurrently behind a first write the committer holds,
// so that they share one group, and returns their errors.
func batch(t *testing.T, c *Committer, fns ...func(context.Context, *sql.Tx) error) []error {
	t.Helper()
	entered := gate(c, len(fns))
	errs := make([]error, len(fns)+1)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = c.Do(t.Context(), insert("first")) })
	<-entered
	for i, fn := range fns {
		wg.Go(func() { errs[i+1] = c.Do(t.Context(), fn) })
	}
	wg.Wait()
	return errs[1:]
}

// TestCommitterSavepoints: a write that fails is rolled back alone; the
// others of its group commit, in one transaction.
func TestCommitterSavepoints(t *testing.T) {
	c, db := openCommitter(t, CommitterOptions{})
	boom := errors.New("boom")
	failing := func(ctx context.Context, tx *sql.Tx) error {
		if err := insert("half")(ctx, tx); err != nil {
			return err
		}
		return boom
	}
	if _, err := db.Exec("INSERT INTO t (k) VALUES ('dup')"); err != nil {
		t.Fatal(err)
	}
	errs := batch(t, c, insert("a"), failing, insert("b"), insert("dup"))
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("good writes: %v, %v", errs[0], errs[2])
	}
	if !errors.Is(errs[1], boom) {
		t.Errorf("failing write: %v, want its own error", errs[1])
	}
	if errs[3] == nil {
		t.Error("duplicate key: nil error")
	}
	if has(t, db, "half") {
		t.Error("the failing write's insert was committed")
	}
	if !has(t, db, "a") || !has(t, db, "b") {
		t.Error("a good write is missing")
	}
	if n := c.Commits(); n != 1 {
		t.Errorf("%d commits, want the group in 1", n)
	}
}

// TestCommitterRetriesAlone: a write that breaks the transaction itself
// (here by ending it) makes the group retry write by write, and fails
// alone.
func TestCommitterRetriesAlone(t *testing.T) {
	c, db := openCommitter(t, CommitterOptions{})
	breaker := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "ROLLBACK")
		return err
	}
	errs := batch(t, c, insert("a"), breaker, insert("b"))
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("good writes: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil {
		t.Error("the write that broke the transaction: nil error")
	}
	if !has(t, db, "a") || !has(t, db, "b") {
		t.Error("a good write is missing after the retry")
	}
}

// TestCommitterDrainsOnClose: writes queued when Close is called are
// committed before it returns, over several batches; writes after it
// fail with ErrClosed.
func TestCommitterDrainsOnClose(t *testing.T) {
	sentinel := errors.New("closed!")
	c, db := openCommitter(t, CommitterOptions{ErrClosed: sentinel, MaxBatch: 5})
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.BeforeBatch = func() { once.Do(func() { close(entered); <-release }) }
	var wg sync.WaitGroup
	errs := make([]error, 21)
	wg.Go(func() { errs[20] = c.Do(t.Context(), insert("first")) })
	<-entered
	for i := range 20 {
		wg.Go(func() { errs[i] = c.Do(t.Context(), insert(fmt.Sprint(i))) })
	}
	for c.Waiting() < 20 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	for {
		c.mu.RLock()
		done := c.closed
		c.mu.RUnlock()
		if done {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.Do(t.Context(), insert("late")); !errors.Is(err, sentinel) {
		t.Errorf("write after Close: %v, want the ErrClosed option", err)
	}
	close(release)
	<-closed
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	for i := range 20 {
		if !has(t, db, fmt.Sprint(i)) {
			t.Errorf("write %d lost on close", i)
		}
	}
	if n := c.Commits(); n < 5 {
		t.Errorf("%d commits for 21 writes in batches of 5", n)
	}
}

// TestCommitterCancelled: a write whose context ends while it waits is
// not run; one already taken waits for the commit and reports it.
func TestCommitterCancelled(t *testing.T) {
	c, db := openCommitter(t, CommitterOptions{})
	release := make(chan struct{})
	held := make(chan struct{})
	var heldOnce sync.Once
	slow := func(ctx context.Context, tx *sql.Tx) error {
		heldOnce.Do(func() { close(held) })
		<-release
		return insert("slow")(ctx, tx)
	}
	slowCtx, cancelSlow := context.WithCancel(t.Context())
	slowErr := make(chan error, 1)
	go func() { slowErr <- c.Do(slowCtx, slow) }()
	<-held
	waitCtx, cancelWait := context.WithCancel(t.Context())
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Do(waitCtx, insert("cancelled")) }()
	for c.Waiting() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancelWait()
	cancelSlow() // taken already: its caller must wait for the truth
	if err := <-waitErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiting write: %v", err)
	}
	close(release)
	if err := <-slowErr; err != nil {
		t.Errorf("taken write whose context ended: %v, want its committed result", err)
	}
	if err := c.Do(t.Context(), insert("after")); err != nil {
		t.Fatal(err)
	}
	if has(t, db, "cancelled") {
		t.Error("the cancelled write was run")
	}
	if !has(t, db, "slow") {
		t.Error("the taken write was not committed")
	}
}

// TestCommitterLinger: with Linger set, a busy committer waits for more
// writes before committing, so fewer transactions carry the same writes.
func TestCommitterLinger(t *testing.T) {
	for _, linger := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprint(linger), func(t *testing.T) {
			c, _ := openCommitter(t, CommitterOptions{Linger: linger})
			c.lastBatch = 2 // busy
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					<-start
					time.Sleep(time.Duration(i) * time.Millisecond)
					if err := c.Do(t.Context(), insert(fmt.Sprint(i))); err != nil {
						t.Error(err)
					}
				})
			}
			close(start)
			wg.Wait()
			t.Logf("linger %s: %d commits for 8 writes", linger, c.Commits())
			if linger > 0 && c.Commits() > 2 {
				t.Errorf("linger %s: %d commits for 8 writes spread over 8 ms, want at most 2", linger, c.Commits())
			}
		})
	}
}
