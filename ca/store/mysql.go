package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/ctstage/ctstage/internal/mysqldb"
)

// mysqlMigrations[i] takes the ca_ tables from version i to i+1 (the
// version is the one row of ca_schema).
//
// The tables live beside Trillian's and the ACME server's in the same
// database, so all carry the prefix ca_. Serials are lower-case hex:
// ascii_bin, not the server's case-insensitive default collation.
var mysqlMigrations = [][]string{{
	`CREATE TABLE IF NOT EXISTS ca_issuances (
		serial            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		profile           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		precertificate    MEDIUMBLOB NOT NULL,
		created_ms        BIGINT NOT NULL,
		issuer_key_id     VARBINARY(64) NOT NULL,
		not_after_ms      BIGINT NOT NULL,
		certificate       MEDIUMBLOB NULL,
		issued_ms         BIGINT NULL,
		revoked_ms        BIGINT NULL,
		revocation_reason INT NULL,
		KEY ca_issuances_revoked (issuer_key_id, revoked_ms, not_after_ms)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS ca_scts (
		serial       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		position     INT NOT NULL,
		log_id       VARBINARY(64) NOT NULL,
		log_url      TEXT NOT NULL,
		timestamp_ms BIGINT NOT NULL,
		sct          BLOB NOT NULL,
		PRIMARY KEY (serial, position),
		CONSTRAINT ca_scts_issuance FOREIGN KEY (serial) REFERENCES ca_issuances (serial)
	) ENGINE=InnoDB`,
}, {
	// Version 2: the final certificates that owe their submission to the
	// logs (none among the rows of version 1).
	`CREATE TABLE IF NOT EXISTS ca_final_owed (
		serial VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		CONSTRAINT ca_final_owed_issuance FOREIGN KEY (serial) REFERENCES ca_issuances (serial)
	) ENGINE=InnoDB`,
}}

// mysqlSchemaLock serializes schema changes between ctstage processes
// sharing a database.
const mysqlSchemaLock = "ctstage_ca_schema"

var mysqlTables = tables{issuances: "ca_issuances", scts: "ca_scts", finalOwed: "ca_final_owed"}

// MySQL is a Store in tables prefixed ca_ of a MySQL or MariaDB database,
// normally the one that holds Trillian's tables (--storage mysql://...).
// Each write is one InnoDB transaction; a method returns nil once it is
// committed, which is durable with InnoDB's default
// innodb_flush_log_at_trx_commit=1. InnoDB groups concurrent commits into
// one log flush on its own.
type MySQL struct {
	db    *sql.DB
	owned bool // Close closes db
}

// NewMySQL uses db, a pool that others share (storage.Backend.DB),
// creates or migrates the ca_ tables, and refuses a schema from a newer
// ctstage. Close leaves db open.
func NewMySQL(ctx context.Context, db *sql.DB) (*MySQL, error) {
	if err := mysqldb.Migrate(ctx, db, mysqlSchemaLock, "ca_schema", mysqlMigrations); err != nil {
		return nil, fmt.Errorf("couldn't open the CA tables on MySQL: %w", err)
	}
	return &MySQL{db: db}, nil
}

// OpenMySQL connects to dsn (a go-sql-driver DSN, see storage.MySQLDSN)
// with a pool of its own, which Close closes, and is otherwise NewMySQL.
func OpenMySQL(ctx context.Context, dsn string) (*MySQL, error) {
	db, err := mysqldb.Open(dsn, 16)
	if err != nil {
		return nil, fmt.Errorf("couldn't open the CA database on MySQL: %w", err)
	}
	s, err := NewMySQL(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
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

// AddPrecertificate implements Store.
func (s *MySQL) AddPrecertificate(ctx context.Context, r *Record) error {
	aki, notAfter, err := precertFacts(r)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx,
		"INSERT INTO ca_issuances (serial, profile, precertificate, created_ms, issuer_key_id, not_after_ms) VALUES (?, ?, ?, ?, ?, ?)",
		r.Serial, r.Profile, r.Precertificate, r.Created.UnixMilli(), aki, notAfter.UnixMilli())
	switch {
	case isDupKey(err):
		return fmt.Errorf("precertificate %s: %w", r.Serial, ErrDuplicate)
	case err != nil:
		return fmt.Errorf("couldn't store precertificate %s: %w", r.Serial, err)
	}
	return nil
}

// inTx runs op in a transaction and commits it when op returns nil.
func (s *MySQL) inTx(ctx context.Context, op func(mysqlTx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := op(mysqlTx{tx}); err != nil {
		return err
	}
	return tx.Commit()
}

// mysqlStatements are the write statements of writer.go for the ca_
// tables; the reads before a change lock the row (FOR UPDATE), which
// SQLite's single writer does not need.
var mysqlStatements = map[int]string{
	stSelectCert:    "SELECT certificate FROM ca_issuances WHERE serial = ? FOR UPDATE",
	stUpdateCert:    "UPDATE ca_issuances SET certificate = ?, issued_ms = ? WHERE serial = ?",
	stInsertSCT:     "INSERT INTO ca_scts (serial, position, log_id, log_url, timestamp_ms, sct) VALUES (?, ?, ?, ?, ?, ?)",
	stSelectRevoked: "SELECT revoked_ms FROM ca_issuances WHERE serial = ? FOR UPDATE",
	stRevoke:        "UPDATE ca_issuances SET revoked_ms = ?, revocation_reason = ? WHERE serial = ?",
	stInsertOwed:    "INSERT INTO ca_final_owed (serial) VALUES (?)",
}

// mysqlTx is a writeTx on a MySQL transaction.
type mysqlTx struct{ tx *sql.Tx }

func (t mysqlTx) exec(ctx context.Context, st int, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, mysqlStatements[st], args...)
}

func (t mysqlTx) queryRow(ctx context.Context, st int, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, mysqlStatements[st], args...)
}

// AddCertificate implements Store.
func (s *MySQL) AddCertificate(ctx context.Context, serial string, cert []byte, scts []SCT, at time.Time, owed bool) error {
	return certificateError(serial, s.inTx(ctx, func(t mysqlTx) error {
		return addCertificate(ctx, t, serial, cert, scts, at, owed)
	}))
}

// Revoke implements Store.
func (s *MySQL) Revoke(ctx context.Context, serial string, reason int, at time.Time) error {
	return revokeError(serial, s.inTx(ctx, func(t mysqlTx) error {
		return revoke(ctx, t, serial, reason, at)
	}))
}

// FinalSubmitted implements Store.
func (s *MySQL) FinalSubmitted(ctx context.Context, serial string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM ca_final_owed WHERE serial = ?", serial); err != nil {
		return fmt.Errorf("couldn't record the final submission of %s: %w", serial, err)
	}
	return nil
}

// FinalOwed implements Store.
func (s *MySQL) FinalOwed(ctx context.Context, limit int) ([]*Record, error) {
	return mysqlTables.finalOwedRecords(ctx, s.db, limit)
}

// Issued implements Store.
func (s *MySQL) Issued(ctx context.Context, since time.Time, after string, limit int) ([]*Record, error) {
	return mysqlTables.issued(ctx, s.db, since, after, limit)
}

// Get implements Store.
func (s *MySQL) Get(ctx context.Context, serial string) (*Record, error) {
	return mysqlTables.get(ctx, s.db, serial)
}

// Revoked implements Store.
func (s *MySQL) Revoked(ctx context.Context, issuerKeyID []byte, now time.Time) ([]Revocation, error) {
	return mysqlTables.revoked(ctx, s.db, issuerKeyID, now)
}
