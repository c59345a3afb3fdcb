package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/ctstage/ctstage/internal/sqlitedb"
)

// schemaVersion is the PRAGMA user_version of the current SQLite schema.
// Each migration takes the database from version i to i+1.
const schemaVersion = 3

var migrations = []string{
	`CREATE TABLE issuances (
		serial         TEXT PRIMARY KEY,
		profile        TEXT NOT NULL,
		precertificate BLOB NOT NULL,
		created_ms     INTEGER NOT NULL,
		certificate    BLOB,
		issued_ms      INTEGER
	) STRICT;
	CREATE TABLE scts (
		serial       TEXT NOT NULL REFERENCES issuances(serial),
		position     INTEGER NOT NULL,
		log_id       BLOB NOT NULL,
		log_url      TEXT NOT NULL,
		timestamp_ms INTEGER NOT NULL,
		sct          BLOB NOT NULL,
		PRIMARY KEY (serial, position)
	) STRICT;`,
	// Version 2: each record's issuer and NotAfter (NULL in the rows of
	// version 1 until backfill reads them from the precertificate) and
	// its revocation.
	`ALTER TABLE issuances ADD COLUMN issuer_key_id BLOB;
	ALTER TABLE issuances ADD COLUMN not_after_ms INTEGER;
	ALTER TABLE issuances ADD COLUMN revoked_ms INTEGER;
	ALTER TABLE issuances ADD COLUMN revocation_reason INTEGER;
	CREATE INDEX issuances_revoked ON issuances (issuer_key_id, not_after_ms) WHERE revoked_ms IS NOT NULL;
	CREATE INDEX issuances_to_backfill ON issuances (serial) WHERE issuer_key_id IS NULL;`,
	// Version 3: the final certificates that owe their submission to the
	// logs (none among the rows of version 2).
	`CREATE TABLE final_owed (
		serial TEXT PRIMARY KEY REFERENCES issuances(serial)
	) STRICT;`,
}

var sqliteTables = tables{issuances: "issuances", scts: "scts", finalOwed: "final_owed"}

// SQLite is a Store in one SQLite file, in WAL mode with synchronous=FULL.
//
// Writes are group-committed (internal/sqlitedb.Committer): one writer
// goroutine, on a connection of its own, takes every write waiting (AddPrecertificate, AddCertificate,
// Revoke; up to maxBatch), applies each in a savepoint of one transaction,
// commits once (one fsync for the batch) and only then answers the
// callers. A call that fails (duplicate, unknown serial, constraint) is
// rolled back to its savepoint alone; when the transaction itself fails,
// each call of the batch is retried in a transaction of its own. A call
// returns nil only once its write is committed: durability is that of one
// commit per call.
type SQLite struct {
	db *sql.DB // reads and the migration
	w  *writer // on a pool of its own, of one connection
}

// maxBatch bounds the writes of one group commit.
const maxBatch = 256

// OpenSQLite opens (creating or migrating) the store at path, normally
// --data/ca.db. It refuses a database from a newer ctstage.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	db, err := sql.Open("sqlite", sqlitedb.DSN(path))
	if err != nil {
		return nil, fmt.Errorf("couldn't open CA database %s: %w", path, err)
	}
	// A few connections for reads, which WAL lets run beside the writer.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	s := &SQLite{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open CA database %s: %w", path, err)
	}
	wdb, err := sql.Open("sqlite", sqlitedb.DSN(path))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open CA database %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	if s.w, err = newWriter(ctx, wdb); err != nil {
		wdb.Close()
		db.Close()
		return nil, fmt.Errorf("couldn't open CA database %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	if err := sqlitedb.Migrate(ctx, s.db, migrations[:schemaVersion]); err != nil {
		return err
	}
	return s.backfill(ctx)
}

// backfillBatch is how many version-1 rows one backfill transaction
// completes.
const backfillBatch = 500

// backfill completes the rows written by schema version 1 with the issuer
// and NotAfter of their precertificates. The partial index
// issuances_to_backfill makes it free once done, so it runs at every open
// and a process stopped halfway finishes the job at the next.
func (s *SQLite) backfill(ctx context.Context) error {
	for {
		n, err := s.backfillSome(ctx)
		if err != nil || n < backfillBatch {
			return err
		}
	}
}

func (s *SQLite) backfillSome(ctx context.Context) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT serial, precertificate FROM issuances WHERE issuer_key_id IS NULL LIMIT ?", backfillBatch)
	if err != nil {
		return 0, err
	}
	var recs []Record
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.Serial, &r.Precertificate); err != nil {
			rows.Close()
			return 0, err
		}
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range recs {
		aki, notAfter, err := precertFacts(&r)
		if err != nil {
			return 0, fmt.Errorf("couldn't complete a record of schema version 1: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE issuances SET issuer_key_id = ?, not_after_ms = ? WHERE serial = ?",
			aki, notAfter.UnixMilli(), r.Serial); err != nil {
			return 0, err
		}
	}
	return len(recs), tx.Commit()
}

// AddPrecertificate implements Store.
func (s *SQLite) AddPrecertificate(ctx context.Context, r *Record) error {
	rec := *r
	aki, notAfter, err := precertFacts(&rec)
	if err != nil {
		return err
	}
	err = s.w.do(ctx, func(w *batchTx) error {
		res, err := w.stmt(stInsertPre).ExecContext(w.ctx, rec.Serial, rec.Profile, rec.Precertificate, rec.Created.UnixMilli(),
			aki, notAfter.UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrDuplicate
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrDuplicate):
		return fmt.Errorf("precertificate %s: %w", r.Serial, ErrDuplicate)
	case err != nil:
		return fmt.Errorf("couldn't store precertificate %s: %w", r.Serial, err)
	}
	return nil
}

// AddCertificate implements Store.
func (s *SQLite) AddCertificate(ctx context.Context, serial string, cert []byte, scts []SCT, at time.Time, owed bool) error {
	scts = slices.Clone(scts)
	return certificateError(serial, s.w.do(ctx, func(w *batchTx) error {
		return addCertificate(w.ctx, w, serial, cert, scts, at, owed)
	}))
}

// Revoke implements Store.
func (s *SQLite) Revoke(ctx context.Context, serial string, reason int, at time.Time) error {
	return revokeError(serial, s.w.do(ctx, func(w *batchTx) error {
		return revoke(w.ctx, w, serial, reason, at)
	}))
}

// FinalSubmitted implements Store.
func (s *SQLite) FinalSubmitted(ctx context.Context, serial string) error {
	err := s.w.do(ctx, func(w *batchTx) error {
		_, err := w.stmt(stDeleteOwed).ExecContext(w.ctx, serial)
		return err
	})
	if err != nil {
		return fmt.Errorf("couldn't record the final submission of %s: %w", serial, err)
	}
	return nil
}

// FinalOwed implements Store.
func (s *SQLite) FinalOwed(ctx context.Context, limit int) ([]*Record, error) {
	return sqliteTables.finalOwedRecords(ctx, s.db, limit)
}

// Issued implements Store.
func (s *SQLite) Issued(ctx context.Context, since time.Time, after string, limit int) ([]*Record, error) {
	return sqliteTables.issued(ctx, s.db, since, after, limit)
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, serial string) (*Record, error) {
	return sqliteTables.get(ctx, s.db, serial)
}

// Revoked implements Store.
func (s *SQLite) Revoked(ctx context.Context, issuerKeyID []byte, now time.Time) ([]Revocation, error) {
	return sqliteTables.revoked(ctx, s.db, issuerKeyID, now)
}

// Close implements Store: it makes new writes fail, commits those already
// waiting, and closes the database.
func (s *SQLite) Close() error {
	return errors.Join(s.w.close(), s.db.Close())
}
