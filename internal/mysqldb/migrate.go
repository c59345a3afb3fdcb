// Package mysqldb holds what ctstage's own MySQL tables (the ACME state, the
// CA's records) share: schema migration by a version row, under a named
// lock.
package mysqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// Migrate brings the schema of the tables named in migrations to version
// len(migrations): migrations[v] are the statements that take it from
// version v to v+1, and the one row of versionTable records the version
// reached after each step. A schema written by a newer ctstage (a higher
// version) is refused rather than misread.
//
// MySQL DDL is not transactional, so the steps run under GET_LOCK(lock),
// which serializes ctstage processes sharing a database, and each
// statement should be safe to repeat (CREATE TABLE IF NOT EXISTS) in case
// a process stops between a statement and the version update.
func Migrate(ctx context.Context, db *sql.DB, lock, versionTable string, migrations [][]string) error {
	conn, unlock, err := Lock(ctx, db, lock, 60*time.Second)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+versionTable+" (version INT NOT NULL) ENGINE=InnoDB"); err != nil {
		return err
	}
	var v int
	switch err := conn.QueryRowContext(ctx, "SELECT version FROM "+versionTable).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, "INSERT INTO "+versionTable+" (version) VALUES (0)"); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this ctstage's %d", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		for _, stmt := range migrations[v] {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("couldn't migrate to schema version %d: %w", v+1, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "UPDATE "+versionTable+" SET version = ?", v+1); err != nil {
			return err
		}
	}
	return nil
}

// Lock takes MySQL's named lock name (GET_LOCK, server-wide: put the
// database's name in it) on a connection of its own, waiting up to wait.
// The lock lasts until unlock, or until the connection dies with its
// process. conn is the connection that holds it, for work that must run
// under it on one connection.
func Lock(ctx context.Context, db *sql.DB, name string, wait time.Duration) (conn *sql.Conn, unlock func(), err error) {
	conn, err = db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, int(wait.Seconds())).Scan(&got); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, nil, fmt.Errorf("couldn't take the MySQL lock %s within %v", name, wait)
	}
	return conn, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", name)
		conn.Close()
	}, nil
}

// Open opens a pool of conns connections to dsn (a go-sql-driver DSN, see
// storage.MySQLDSN) for a store that runs on a pool of its own, as tests
// do; `ctstage serve` shares the storage handle's pool instead. UPDATEs
// report the rows they matched (ClientFoundRows), as on the shared pool.
func Open(dsn string, conns int) (*sql.DB, error) {
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the MySQL DSN: %w", err)
	}
	cfg.ClientFoundRows = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}
