package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/ctstage/ctstage/internal/sqlitedb"
)

// sqliteSchemaVersion is the PRAGMA user_version of the current schema;
// migration i takes the database from version i to i+1.
const sqliteSchemaVersion = 1

var sqliteMigrations = []string{
	`CREATE TABLE accounts (
		id         TEXT PRIMARY KEY,
		thumbprint TEXT NOT NULL UNIQUE,
		doc        TEXT NOT NULL,
		rev        INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE TABLE orders (
		id         TEXT PRIMARY KEY,
		account    TEXT NOT NULL,
		created_ms INTEGER NOT NULL,
		doc        TEXT NOT NULL,
		rev        INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE INDEX orders_by_account ON orders (account, created_ms);
	CREATE TABLE authzs (
		id  TEXT PRIMARY KEY,
		doc TEXT NOT NULL,
		rev INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE TABLE certificates (
		serial TEXT PRIMARY KEY,
		doc    TEXT NOT NULL
	) STRICT;
	CREATE TABLE ratelimit_events (
		name  TEXT NOT NULL,
		key   TEXT NOT NULL,
		at_ms INTEGER NOT NULL
	) STRICT;
	CREATE INDEX ratelimit_events_by_key ON ratelimit_events (name, key, at_ms);`,
}

// SQLite is a Store (and a ratelimit.Store) in one SQLite file, in WAL mode
// with synchronous=FULL. Objects are JSON documents beside the columns
// that are looked up. Reads go through a pool of read-only connections,
// which WAL lets run beside the writer, so that a lookup never waits for
// another request's commit. Writes go through one connection and are
// committed in groups (see write): a write returns once the transaction
// holding it is durable, and concurrent writes share its fsync.
type SQLite struct {
	db     *sql.DB // the writer
	rd     *sql.DB // readers
	commit *sqlitedb.Committer
	closer sync.Once
}

// maxGroup bounds the writes committed together.
const maxGroup = 64

// errClosed is the error of a write after Close.
var errClosed = errors.New("acme: store closed")

// sqliteReaders is the number of read connections.
const sqliteReaders = 8

// OpenSQLite opens (creating or migrating) the store at path, normally
// --data/acme.db. It refuses a database from a newer ctstage.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	db, err := sql.Open("sqlite", sqlitedb.DSN(path))
	if err != nil {
		return nil, fmt.Errorf("couldn't open ACME database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer
	s := &SQLite{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open ACME database %s: %w", path, err)
	}
	r := url.Values{}
	r.Add("_pragma", "busy_timeout(10000)")
	r.Add("_pragma", "query_only(1)")
	if s.rd, err = sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+r.Encode()); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open ACME database %s: %w", path, err)
	}
	s.rd.SetMaxOpenConns(sqliteReaders)
	s.rd.SetMaxIdleConns(sqliteReaders)
	s.commit = sqlitedb.NewCommitter(db, sqlitedb.CommitterOptions{MaxBatch: maxGroup, ErrClosed: errClosed, Name: "the ACME database"})
	return s, nil
}

// write runs fn in the next group commit (internal/sqlitedb.Committer),
// under a savepoint of its own, and returns fn's error, or the commit's,
// once the transaction is committed.
func (s *SQLite) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.commit.Do(ctx, fn)
}

func (s *SQLite) migrate(ctx context.Context) error {
	return sqlitedb.Migrate(ctx, s.db, sqliteMigrations[:sqliteSchemaVersion])
}

// Close implements Store. Writes in progress finish first.
func (s *SQLite) Close() error {
	err := errClosed
	s.closer.Do(func() {
		s.commit.Close()
		err = errors.Join(s.rd.Close(), s.db.Close())
	})
	return err
}

// execDocW is execDoc through the group committer.
func (s *SQLite) execDocW(ctx context.Context, what, query string, doc any, args ...any) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return execDoc(ctx, tx, what, query, doc, args...)
	})
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func (s *SQLite) getDoc(ctx context.Context, what, query string, arg any, v any, rev *int64) error {
	return scanDoc(s.rd.QueryRowContext(ctx, query, arg), what, arg, v, rev)
}

// update is a casUpdate in the group commit; on success it increments
// *rev.
func (s *SQLite) update(ctx context.Context, what, update string, doc any, rev *int64, exists string, key any, args ...any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("couldn't encode %s: %w", what, err)
	}
	args = append([]any{string(b)}, append(args, *rev)...)
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return casUpdate(ctx, tx, what, update, args, exists, key, isUnique)
	})
	if err == nil {
		*rev++
	}
	return err
}

func execDoc(ctx context.Context, e execer, what, query string, doc any, args ...any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("couldn't encode %s: %w", what, err)
	}
	res, err := e.ExecContext(ctx, query, append(args, string(b))...)
	if isUnique(err) {
		return fmt.Errorf("%s: %w", what, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("couldn't store %s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// CreateAccount implements Store.
func (s *SQLite) CreateAccount(ctx context.Context, a *Account) error {
	return s.execDocW(ctx, "account", "INSERT INTO accounts (id, thumbprint, doc) VALUES (?, ?, ?)", a, a.ID, a.Thumbprint)
}

// Account implements Store.
func (s *SQLite) Account(ctx context.Context, id string) (*Account, error) {
	a := new(Account)
	return a, s.getDoc(ctx, "account", "SELECT doc, rev FROM accounts WHERE id = ?", id, a, &a.Rev)
}

// AccountByThumbprint implements Store.
func (s *SQLite) AccountByThumbprint(ctx context.Context, tp string) (*Account, error) {
	a := new(Account)
	return a, s.getDoc(ctx, "account with key", "SELECT doc, rev FROM accounts WHERE thumbprint = ?", tp, a, &a.Rev)
}

// UpdateAccount implements Store.
func (s *SQLite) UpdateAccount(ctx context.Context, a *Account) error {
	return s.update(ctx, "account", "UPDATE accounts SET doc = ?, thumbprint = ?, rev = rev + 1 WHERE id = ? AND rev = ?",
		a, &a.Rev, "SELECT 1 FROM accounts WHERE id = ?", a.ID, a.Thumbprint, a.ID)
}

// CreateOrder implements Store.
func (s *SQLite) CreateOrder(ctx context.Context, o *Order, authzs []*Authz) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, a := range authzs {
			if err := execDoc(ctx, tx, "authorization", "INSERT INTO authzs (id, doc) VALUES (?, ?)", a, a.ID); err != nil {
				return err
			}
		}
		return execDoc(ctx, tx, "order", "INSERT INTO orders (id, account, created_ms, doc) VALUES (?, ?, ?, ?)",
			o, o.ID, o.AccountID, o.Created.UnixMilli())
	})
}

// Order implements Store.
func (s *SQLite) Order(ctx context.Context, id string) (*Order, error) {
	o := new(Order)
	return o, s.getDoc(ctx, "order", "SELECT doc, rev FROM orders WHERE id = ?", id, o, &o.Rev)
}

// UpdateOrder implements Store.
func (s *SQLite) UpdateOrder(ctx context.Context, o *Order) error {
	return s.update(ctx, "order", "UPDATE orders SET doc = ?, rev = rev + 1 WHERE id = ? AND rev = ?",
		o, &o.Rev, "SELECT 1 FROM orders WHERE id = ?", o.ID, o.ID)
}

// OrderIDs implements Store.
func (s *SQLite) OrderIDs(ctx context.Context, accountID string) ([]string, error) {
	return orderIDs(s.rd.QueryContext(ctx, "SELECT id FROM orders WHERE account = ? ORDER BY created_ms, id", accountID))
}

// RecentOrderIDs implements Store.
func (s *SQLite) RecentOrderIDs(ctx context.Context, limit int) ([]string, error) {
	return orderIDs(s.rd.QueryContext(ctx, "SELECT id FROM orders ORDER BY created_ms DESC, id DESC LIMIT ?", limit))
}

// Authz implements Store.
func (s *SQLite) Authz(ctx context.Context, id string) (*Authz, error) {
	a := new(Authz)
	return a, s.getDoc(ctx, "authorization", "SELECT doc, rev FROM authzs WHERE id = ?", id, a, &a.Rev)
}

// UpdateAuthz implements Store.
func (s *SQLite) UpdateAuthz(ctx context.Context, a *Authz) error {
	return s.update(ctx, "authorization", "UPDATE authzs SET doc = ?, rev = rev + 1 WHERE id = ? AND rev = ?",
		a, &a.Rev, "SELECT 1 FROM authzs WHERE id = ?", a.ID, a.ID)
}

// AddCertificate implements Store.
func (s *SQLite) AddCertificate(ctx context.Context, c *Certificate) error {
	return s.execDocW(ctx, "certificate", "INSERT INTO certificates (serial, doc) VALUES (?, ?)", c, c.Serial)
}

// Certificate implements Store.
func (s *SQLite) Certificate(ctx context.Context, serial string) (*Certificate, error) {
	c := new(Certificate)
	return c, s.getDoc(ctx, "certificate", "SELECT doc FROM certificates WHERE serial = ?", serial, c, nil)
}

// UpdateCertificate implements Store.
func (s *SQLite) UpdateCertificate(ctx context.Context, c *Certificate) error {
	return s.execDocW(ctx, "certificate", "UPDATE certificates SET doc = ?2 WHERE serial = ?1", c, c.Serial)
}

// AddEvent implements ratelimit.Store.
func (s *SQLite) AddEvent(ctx context.Context, name, key string, at time.Time) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO ratelimit_events (name, key, at_ms) VALUES (?, ?, ?)", name, key, at.UnixMilli())
		return err
	})
}

// CountEvents implements ratelimit.Store.
func (s *SQLite) CountEvents(ctx context.Context, name, key string, since time.Time) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	err := s.rd.QueryRowContext(ctx, "SELECT COUNT(*), MIN(at_ms) FROM ratelimit_events WHERE name = ? AND key = ? AND at_ms >= ?",
		name, key, since.UnixMilli()).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, time.UnixMilli(oldest.Int64), nil
}
