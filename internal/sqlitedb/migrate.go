// Package sqlitedb holds what ctstage's SQLite databases (the CA's records,
// the ACME state) share: the connection settings and schema migration by
// PRAGMA user_version.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
)

// Migrate brings db's schema to version len(migrations) in one
// transaction: migrations[v] takes the schema from version v to v+1, and
// PRAGMA user_version records the version reached. A database written by a
// newer ctstage (a higher version) is refused rather than misread.
func Migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this ctstage's %d", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("couldn't migrate to schema version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// DSN is the modernc.org/sqlite data source name for a database file of
// ctstage's: WAL with synchronous=FULL (a commit that returned survives a
// crash and power loss), foreign keys on, a 10 s busy timeout and
// BEGIN IMMEDIATE transactions, so that writers queue instead of failing
// with "database is locked".
func DSN(path string) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + v.Encode()
}
