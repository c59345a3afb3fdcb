package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/ctstage/ctstage/internal/mysqldb"
)

// mysqlSchemaVersion is the version in acme_schema of the current
// schema; mysqlMigrations[i] takes the database from version i to i+1.
const mysqlSchemaVersion = 2

// The ACME tables live beside Trillian's in the same database, so all of
// them carry the prefix acme_. Identifiers, thumbprints and serials are
// case-sensitive ASCII (base64url, hex): ascii_bin, not the server's
// case-insensitive default collation. Rate-limit keys can be long (a
// certificate's names), so they are looked up by their SHA-256.
var mysqlMigrations = [][]string{{
	`CREATE TABLE IF NOT EXISTS acme_accounts (
		id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		thumbprint VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		doc        MEDIUMBLOB NOT NULL,
		rev        BIGINT NOT NULL DEFAULT 0,
		UNIQUE KEY acme_accounts_by_thumbprint (thumbprint)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS acme_orders (
		id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		account    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		created_ms BIGINT NOT NULL,
		doc        MEDIUMBLOB NOT NULL,
		rev        BIGINT NOT NULL DEFAULT 0,
		KEY acme_orders_by_account (account, created_ms, id)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS acme_authzs (
		id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		doc MEDIUMBLOB NOT NULL,
		rev BIGINT NOT NULL DEFAULT 0
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS acme_certificates (
		serial VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		doc    MEDIUMBLOB NOT NULL
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS acme_ratelimit_events (
		name     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		key_hash BINARY(32) NOT NULL,
		at_ms    BIGINT NOT NULL,
		event_key TEXT NOT NULL,
		KEY acme_ratelimit_events_by_key (name, key_hash, at_ms)
	) ENGINE=InnoDB`,
}, {
	// Version 2: nonces shared by the ACME processes of a deployment.
	`CREATE TABLE IF NOT EXISTS acme_nonce_key (
		id  TINYINT NOT NULL PRIMARY KEY,
		k   VARBINARY(32) NOT NULL
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS acme_nonces_used (
		id         BINARY(16) NOT NULL PRIMARY KEY,
		expires_ms BIGINT NOT NULL,
		KEY acme_nonces_used_by_expiry (expires_ms)
	) ENGINE=InnoDB`,
}}

// mysqlSchemaLock serializes schema creation between ctstage processes
// sharing a database (MySQL DDL is not transactional).
const mysqlSchemaLock = "ctstage_acme_schema"

// MySQL is a Store (and a ratelimit.Store) in tables prefixed acme_ of a
// MySQL or MariaDB database, normally the one that holds Trillian's tables
// (--storage mysql://...). Objects are JSON documents beside the columns
// that are looked up, as in SQLite.
type MySQL struct {
	db    *sql.DB
	owned bool // Close closes db
}

// NewMySQL uses db, a pool that others share (storage.Backend.DB, whose
// DSN must set ClientFoundRows: an UPDATE reports the rows it matched),
// creates or migrates the acme_ tables, and refuses a schema from a
// newer ctstage. Close leaves db open.
func NewMySQL(ctx context.Context, db *sql.DB) (*MySQL, error) {
	s := &MySQL{db: db}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("couldn't open the ACME tables on MySQL: %w", err)
	}
	return s, nil
}

// OpenMySQL connects to dsn (a go-sql-driver DSN, see storage.MySQLDSN)
// with a pool of its own, which Close closes, and is otherwise NewMySQL.
func OpenMySQL(ctx context.Context, dsn string) (*MySQL, error) {
	db, err := mysqldb.Open(dsn, 32)
	if err != nil {
		return nil, fmt.Errorf("couldn't open the ACME database on MySQL: %w", err)
	}
	s, err := NewMySQL(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

func (s *MySQL) migrate(ctx context.Context) error {
	return mysqldb.Migrate(ctx, s.db, mysqlSchemaLock, "acme_schema", mysqlMigrations[:mysqlSchemaVersion])
}

// Close implements Store.
func (s *MySQL) Close() error {
	if !s.owned {
		return nil
	}
	return s.db.Close()
}

func isDupKey(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062 // ER_DUP_ENTRY
}

// exec runs query; a duplicate key is ErrConflict, no matched row
// ErrNotFound.
func (s *MySQL) exec(ctx context.Context, e execer, what, query string, args ...any) error {
	res, err := e.ExecContext(ctx, query, args...)
	if isDupKey(err) {
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

func (s *MySQL) getDoc(ctx context.Context, what, query string, arg any, v any, rev *int64) error {
	return scanDoc(s.db.QueryRowContext(ctx, query, arg), what, arg, v, rev)
}

// update is a casUpdate; on success it increments *rev. InnoDB's row lock
// on the UPDATE makes the compare and the swap one step: of two updates
// from the same revision, the second matches no row.
func (s *MySQL) update(ctx context.Context, what, update string, doc any, rev *int64, exists string, key any, args ...any) error {
	b, err := encode(what, doc)
	if err != nil {
		return err
	}
	args = append([]any{b}, append(args, *rev)...)
	if err := casUpdate(ctx, s.db, what, update, args, exists, key, isDupKey); err != nil {
		return err
	}
	*rev++
	return nil
}

func encode(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode %s: %w", what, err)
	}
	return b, nil
}

// CreateAccount implements Store.
func (s *MySQL) CreateAccount(ctx context.Context, a *Account) error {
	doc, err := encode("account", a)
	if err != nil {
		return err
	}
	return s.exec(ctx, s.db, "account", "INSERT INTO acme_accounts (id, thumbprint, doc) VALUES (?, ?, ?)", a.ID, a.Thumbprint, doc)
}

// Account implements Store.
func (s *MySQL) Account(ctx context.Context, id string) (*Account, error) {
	a := new(Account)
	return a, s.getDoc(ctx, "account", "SELECT doc, rev FROM acme_accounts WHERE id = ?", id, a, &a.Rev)
}

// AccountByThumbprint implements Store.
func (s *MySQL) AccountByThumbprint(ctx context.Context, tp string) (*Account, error) {
	a := new(Account)
	return a, s.getDoc(ctx, "account with key", "SELECT doc, rev FROM acme_accounts WHERE thumbprint = ?", tp, a, &a.Rev)
}

// UpdateAccount implements Store.
func (s *MySQL) UpdateAccount(ctx context.Context, a *Account) error {
	return s.update(ctx, "account", "UPDATE acme_accounts SET doc = ?, thumbprint = ?, rev = rev + 1 WHERE id = ? AND rev = ?",
		a, &a.Rev, "SELECT 1 FROM acme_accounts WHERE id = ?", a.ID, a.Thumbprint, a.ID)
}

// CreateOrder implements Store.
func (s *MySQL) CreateOrder(ctx context.Context, o *Order, authzs []*Authz) error {
	odoc, err := encode("order", o)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("couldn't store order: %w", err)
	}
	defer tx.Rollback()
	for _, a := range authzs {
		doc, err := encode("authorization", a)
		if err != nil {
			return err
		}
		if err := s.exec(ctx, tx, "authorization", "INSERT INTO acme_authzs (id, doc) VALUES (?, ?)", a.ID, doc); err != nil {
			return err
		}
	}
	if err := s.exec(ctx, tx, "order", "INSERT INTO acme_orders (id, account, created_ms, doc) VALUES (?, ?, ?, ?)",
		o.ID, o.AccountID, o.Created.UnixMilli(), odoc); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("couldn't store order: %w", err)
	}
	return nil
}

// Order implements Store.
func (s *MySQL) Order(ctx context.Context, id string) (*Order, error) {
	o := new(Order)
	return o, s.getDoc(ctx, "order", "SELECT doc, rev FROM acme_orders WHERE id = ?", id, o, &o.Rev)
}

// UpdateOrder implements Store.
func (s *MySQL) UpdateOrder(ctx context.Context, o *Order) error {
	return s.update(ctx, "order", "UPDATE acme_orders SET doc = ?, rev = rev + 1 WHERE id = ? AND rev = ?",
		o, &o.Rev, "SELECT 1 FROM acme_orders WHERE id = ?", o.ID, o.ID)
}

// RecentOrderIDs implements Store.
func (s *MySQL) RecentOrderIDs(ctx context.Context, limit int) ([]string, error) {
	return orderIDs(s.db.QueryContext(ctx, "SELECT id FROM acme_orders ORDER BY created_ms DESC, id DESC LIMIT ?", limit))
}

// OrderIDs implements Store.
func (s *MySQL) OrderIDs(ctx context.Context, accountID string) ([]string, error) {
	return orderIDs(s.db.QueryContext(ctx, "SELECT id FROM acme_orders WHERE account = ? ORDER BY created_ms, id", accountID))
}

// Authz implements Store.
func (s *MySQL) Authz(ctx context.Context, id string) (*Authz, error) {
	a := new(Authz)
	return a, s.getDoc(ctx, "authorization", "SELECT doc, rev FROM acme_authzs WHERE id = ?", id, a, &a.Rev)
}

// UpdateAuthz implements Store.
func (s *MySQL) UpdateAuthz(ctx context.Context, a *Authz) error {
	return s.update(ctx, "authorization", "UPDATE acme_authzs SET doc = ?, rev = rev + 1 WHERE id = ? AND rev = ?",
		a, &a.Rev, "SELECT 1 FROM acme_authzs WHERE id = ?", a.ID, a.ID)
}

// AddCertificate implements Store.
func (s *MySQL) AddCertificate(ctx context.Context, c *Certificate) error {
	doc, err := encode("certificate", c)
	if err != nil {
		return err
	}
	return s.exec(ctx, s.db, "certificate", "INSERT INTO acme_certificates (serial, doc) VALUES (?, ?)", c.Serial, doc)
}

// Certificate implements Store.
func (s *MySQL) Certificate(ctx context.Context, serial string) (*Certificate, error) {
	c := new(Certificate)
	return c, s.getDoc(ctx, "certificate", "SELECT doc FROM acme_certificates WHERE serial = ?", serial, c, nil)
}

// UpdateCertificate implements Store.
func (s *MySQL) UpdateCertificate(ctx context.Context, c *Certificate) error {
	doc, err := encode("certificate", c)
	if err != nil {
		return err
	}
	return s.exec(ctx, s.db, "certificate", "UPDATE acme_certificates SET doc = ? WHERE serial = ?", doc, c.Serial)
}

// AddEvent implements ratelimit.Store.
func (s *MySQL) AddEvent(ctx context.Context, name, key string, at time.Time) error {
	h := sha256.Sum256([]byte(key))
	_, err := s.db.ExecContext(ctx, "INSERT INTO acme_ratelimit_events (name, key_hash, at_ms, event_key) VALUES (?, ?, ?, ?)",
		name, h[:], at.UnixMilli(), key)
	return err
}

// CountEvents implements ratelimit.Store.
func (s *MySQL) CountEvents(ctx context.Context, name, key string, since time.Time) (int, time.Time, error) {
	h := sha256.Sum256([]byte(key))
	var n int
	var oldest sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*), MIN(at_ms) FROM acme_ratelimit_events WHERE name = ? AND key_hash = ? AND at_ms >= ?",
		name, h[:], since.UnixMilli()).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, time.UnixMilli(oldest.Int64), nil
}

// NonceKey implements acme.NonceStore: the one key of the deployment,
// made by whichever process asks first.
func (s *MySQL) NonceKey(ctx context.Context) ([]byte, error) {
	k := make([]byte, 32)
	rand.Read(k)
	if _, err := s.db.ExecContext(ctx, "INSERT IGNORE INTO acme_nonce_key (id, k) VALUES (1, ?)", k); err != nil {
		return nil, fmt.Errorf("couldn't store the nonce key: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, "SELECT k FROM acme_nonce_key WHERE id = 1").Scan(&k); err != nil {
		return nil, fmt.Errorf("couldn't read the nonce key: %w", err)
	}
	return k, nil
}

// RedeemNonce implements acme.NonceStore. One redemption in 256 also
// deletes up to 1000 records past their expiry.
func (s *MySQL) RedeemNonce(ctx context.Context, id []byte, expires time.Time) (bool, error) {
	_, err := s.db.ExecContext(ctx, "INSERT INTO acme_nonces_used (id, expires_ms) VALUES (?, ?)", id, expires.UnixMilli())
	if isDupKey(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("couldn't redeem a nonce: %w", err)
	}
	if id[15] == 0 { // random byte: 1 in 256
		s.db.ExecContext(ctx, "DELETE FROM acme_nonces_used WHERE expires_ms < ? LIMIT 1000", time.Now().UnixMilli())
	}
	return true, nil
}
