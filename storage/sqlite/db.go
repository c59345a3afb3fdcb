package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/trillian/monitoring"
	"github.com/google/trillian/storage"

	_ "modernc.org/sqlite" // Registers the "sqlite" database/sql driver.
)

// Defaults for the zero values of Options.
const (
	defaultBusyTimeout    = 10 * time.Second
	defaultMaxBatchLeaves = 1024
	minReaders            = 4
)

// Options configures Open. The zero value is a good default.
type Options struct {
	// MetricFactory receives the storage's metrics (queued, duplicate and
	// dequeued leaves, group-commit batch sizes and latencies). Nil means no
	// metrics. Metrics are created once per Open, so a process that opens
	// two databases gives each a factory with its own prefix.
	MetricFactory monitoring.MetricFactory

	// Logger receives the few operational messages of the storage (errors
	// while cleaning up). Nil means slog.Default().
	Logger *slog.Logger

	// BusyTimeout is how long a statement waits for a lock held by another
	// process before failing with an error that wraps ErrUnavailable. Zero
	// means 10s. Within this process the single writer connection means
	// there is no lock contention to wait for.
	BusyTimeout time.Duration

	// MaxReaders bounds the pool of read-only connections used by
	// snapshots. Zero means 4 × GOMAXPROCS, and at least 4.
	MaxReaders int

	// MaxBatchLeaves bounds the number of leaves one group commit of
	// QueueLeaves writes in one transaction. Zero means 1024. A single
	// QueueLeaves call larger than this is still written whole.
	MaxBatchLeaves int

	// SkipQuickCheck skips PRAGMA quick_check at Open. The check reads the
	// whole file (roughly a second per GB); skip it only when start-up time
	// matters more than finding corruption before serving.
	SkipQuickCheck bool
}

// DB is an open Trillian database. It satisfies Trillian's storage.Provider.
// Its methods are safe for concurrent use.
type DB struct {
	path   string
	log    *slog.Logger
	writer *sql.DB // one connection, BEGIN IMMEDIATE
	reader *sql.DB // query_only connections for snapshots
	stmts  *statements
	queue  *committer
	ckpt   *checkpointer
	m      *metrics

	checkpointConn *sql.DB // one connection for the checkpointer
	closed         atomic.Bool
	// queued counts, per tree ID, the calls that added leaves for the
	// sequencer (QueueGeneration).
	queued sync.Map // int64 -> *atomic.Uint64
}

var _ storage.Provider = (*DB)(nil)

// Open opens or creates the Trillian database at path (a file), applying the
// schema when missing. The parent directory is created if needed. A file that
// is damaged or is not a ctstage Trillian database gives an error wrapping
// ErrCorrupt; a file or directory that cannot be written gives an error
// wrapping ErrUnavailable.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	abs, err := prepareFile(path)
	if err != nil {
		return nil, err
	}
	db := &DB{path: abs, log: opts.Logger, m: newMetrics(opts.MetricFactory)}
	if err := db.open(ctx, opts); err != nil {
		db.closeDBs()
		return nil, fmt.Errorf("couldn't open Trillian database %s: %w", abs, err)
	}
	db.queue = newCommitter(db, opts.MaxBatchLeaves)
	db.ckpt = newCheckpointer(db, db.checkpointConn)
	return db, nil
}

// open opens both pools, checks the file and applies the schema.
func (db *DB) open(ctx context.Context, opts Options) error {
	var err error
	if db.writer, err = openPool(db.path, writerParams(opts), 1); err != nil {
		return err
	}
	if err := checkWriter(ctx, db.writer); err != nil {
		return err
	}
	if !opts.SkipQuickCheck {
		if err := quickCheck(ctx, db.writer); err != nil {
			return err
		}
	}
	if err := migrate(ctx, db.writer); err != nil {
		return err
	}
	if db.checkpointConn, err = openPool(db.path, checkpointParams(opts), 1); err != nil {
		return err
	}
	if db.reader, err = openPool(db.path, readerParams(opts), opts.MaxReaders); err != nil {
		return err
	}
	if err := db.reader.PingContext(ctx); err != nil {
		return wrap(err, "open reader connection")
	}
	db.stmts, err = prepareStatements(ctx, db.writer)
	return err
}

// withDefaults fills in the zero fields of o.
func (o Options) withDefaults() Options {
	if o.MetricFactory == nil {
		o.MetricFactory = monitoring.InertMetricFactory{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = defaultBusyTimeout
	}
	if o.MaxReaders <= 0 {
		o.MaxReaders = max(minReaders, 4*runtime.GOMAXPROCS(0))
	}
	if o.MaxBatchLeaves <= 0 {
		o.MaxBatchLeaves = defaultMaxBatchLeaves
	}
	return o
}

// prepareFile returns the absolute path and creates the parent directory.
func prepareFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("couldn't open Trillian database: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("couldn't resolve %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", fmt.Errorf("couldn't create directory for %s: %w: %w", abs, ErrUnavailable, err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return "", fmt.Errorf("couldn't open Trillian database %s: is a directory: %w", abs, ErrUnavailable)
	}
	if err := checkWritable(abs); err != nil {
		return "", err
	}
	return abs, nil
}

// checkWritable makes sure that the database file and its WAL and
// shared-memory files, those that exist, can be opened for writing. SQLite
// silently opens a file it cannot write read-only, so that a database on a
// medium that turned read-only would otherwise pass Open and then refuse
// every write while the log looks healthy.
func checkWritable(abs string) error {
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("couldn't open Trillian database %s for writing: %w: %w", abs, ErrUnavailable, err)
		}
		_ = f.Close()
	}
	return nil
}

// writerParams are the DSN parameters of the writer connection: WAL,
// synchronous=FULL (see the package doc), foreign keys and BEGIN IMMEDIATE.
func writerParams(o Options) url.Values {
	v := commonParams(o)
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "journal_size_limit(67108864)")

	v.Set("_txlock", "immediate")
	return v
}

// checkpointParams are the DSN parameters of the checkpointer connection.
func checkpointParams(o Options) url.Values {
	v := commonParams(o)
	v.Add("_pragma", "synchronous(FULL)")
	return v
}

// readerParams are the DSN parameters of the snapshot connections.
func readerParams(o Options) url.Values {
	v := commonParams(o)
	v.Set("_query_only", "1")
	return v
}

// commonParams are the DSN parameters every connection gets.
func commonParams(o Options) url.Values {
	v := url.Values{}
	v.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	v.Add("_pragma", "foreign_keys(1)")
	return v
}

// openPool opens a database/sql pool on path with the given parameters.
func openPool(path string, params url.Values, maxConns int) (*sql.DB, error) {
	dsn := "file:" + escapePath(path) + "?" + params.Encode()
	pool, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, wrap(err, "open connection pool")
	}
	pool.SetMaxOpenConns(maxConns)
	pool.SetMaxIdleConns(maxConns)
	pool.SetConnMaxLifetime(0)
	pool.SetConnMaxIdleTime(0)
	return pool, nil
}

// escapePath escapes the characters that are special in a SQLite URI
// filename (https://www.sqlite.org/uri.html).
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(p))
}

// checkWriter opens the writer connection and verifies that the file really
// is in WAL mode with synchronous=FULL: some file systems cannot do WAL.
func checkWriter(ctx context.Context, writer *sql.DB) error {
	var mode string
	if err := writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return wrap(err, "open database")
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("couldn't switch to WAL journal mode (got %q): %w", mode, ErrUnavailable)
	}
	var sync int
	if err := writer.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return wrap(err, "read synchronous")
	}
	if sync != 2 {
		return fmt.Errorf("couldn't set synchronous=FULL (got %d)", sync)
	}
	return nil
}

// quickCheck runs PRAGMA quick_check and reports its findings as ErrCorrupt.
func quickCheck(ctx context.Context, writer *sql.DB) error {
	rows, err := writer.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return wrap(err, "check database integrity")
	}
	defer func() { _ = rows.Close() }()
	var problems []string
	for rows.Next() && len(problems) < 5 {
		var line string
		if err := rows.Scan(&line); err != nil {
			return wrap(err, "check database integrity")
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return wrap(err, "check database integrity")
	}
	if len(problems) > 0 {
		return fmt.Errorf("couldn't check database integrity: quick_check found damage: %s: %w", strings.Join(problems, "; "), ErrCorrupt)
	}
	return nil
}

// LogStorage returns Trillian log storage on the database.
func (db *DB) LogStorage() storage.LogStorage { return &logStorage{db: db} }

// QueueGeneration counts the calls that queued leaves of tree (QueueLeaves,
// AddSequencedLeaves) in this process, each counted once its leaves are
// committed. This process is the database's only writer, so a sequencing
// pass that found nothing to integrate has nothing to do until it changes
// (ctlog skips those passes).
func (db *DB) QueueGeneration(tree int64) uint64 {
	if c, ok := db.queued.Load(tree); ok {
		return c.(*atomic.Uint64).Load()
	}
	return 0
}

// noteQueued is called once leaves of tree are committed.
func (db *DB) noteQueued(tree int64) {
	c, _ := db.queued.LoadOrStore(tree, new(atomic.Uint64))
	c.(*atomic.Uint64).Add(1)
}

// AdminStorage returns Trillian admin storage on the database.
func (db *DB) AdminStorage() storage.AdminStorage { return &adminStorage{db: db} }

// Close stops the group committer after it has written what was queued,
// then closes every connection. Call it after everything using the storage
// has stopped; later calls to the storage fail with an error wrapping
// ErrUnavailable.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	if db.queue != nil {
		db.queue.close()
	}
	if db.ckpt != nil {
		db.ckpt.close()
	}
	return db.closeDBs()
}

// closeDBs closes the statements and both pools, whichever are open.
func (db *DB) closeDBs() error {
	var errs []error
	if db.stmts != nil {
		errs = append(errs, db.stmts.close())
	}
	for _, pool := range []*sql.DB{db.reader, db.checkpointConn, db.writer} {
		if pool != nil {
			errs = append(errs, pool.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("couldn't close Trillian database %s: %w", db.path, err)
	}
	return nil
}

// isClosed reports whether Close has been called.
func (db *DB) isClosed() bool { return db.closed.Load() }

// beginWrite starts a BEGIN IMMEDIATE transaction on the writer connection.
func (db *DB) beginWrite(ctx context.Context) (*sql.Tx, error) {
	tx, err := db.writer.BeginTx(ctx, nil)
	return tx, wrap(err, "begin write transaction")
}

// beginRead starts a read transaction on a reader connection.
func (db *DB) beginRead(ctx context.Context) (*sql.Tx, error) {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	return tx, wrap(err, "begin read transaction")
}
