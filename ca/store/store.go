// Package store keeps the CA's issuance records: every precertificate the
// CA signed, and the final certificate and SCTs that followed it.
//
// The CA's state will later live beside the ACME state (SQLite under --data
// or MySQL); for now the one implementation is a SQLite file.
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

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound  = errors.New("no such issuance record")
	ErrDuplicate = errors.New("an issuance record with this serial exists")
)

// SCT is one SCT embedded in a final certificate.
type SCT struct {
	LogID     []byte // 32 bytes
	LogURL    string
	Timestamp uint64 // milliseconds since the epoch
	SCT       []byte // TLS-encoded SignedCertificateTimestamp
}

// Record is one issuance: a precertificate and, once it exists, its final
// certificate and the SCTs embedded in it.
type Record struct {
	Serial         string // lower-case hex
	Profile        string
	Precertificate []byte    // DER
	Created        time.Time // when the precertificate was stored
	Certificate    []byte    // DER; nil until AddCertificate
	Issued         time.Time // when the certificate was stored
	SCTs           []SCT
}

// Store keeps issuance records. Implementations are safe for concurrent use
// and durable when a method returns nil: a precertificate is stored before
// it is submitted to any log, so that every signed precertificate is on
// record even when no final certificate follows.
type Store interface {
	// AddPrecertificate stores a new record; ErrDuplicate if the serial is
	// taken.
	AddPrecertificate(ctx context.Context, r *Record) error
	// AddCertificate completes the record of serial with the final
	// certificate and its SCTs; ErrNotFound if there is no such record,
	// ErrDuplicate if it already has a certificate.
	AddCertificate(ctx context.Context, serial string, cert []byte, scts []SCT, at time.Time) error
	// Get returns the record of serial, or ErrNotFound.
	Get(ctx context.Context, serial string) (*Record, error)
	// Close releases the store.
	Close() error
}

// schemaVersion is the PRAGMA user_version of the current schema. Each
// migration takes the database from version i to i+1.
const schemaVersion = 1

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
}

// SQLite is a Store in one SQLite file, in WAL mode with synchronous=FULL.
//
// Writes are group-committed: one writer goroutine, on a connection of its
// own, takes every AddPrecertificate and AddCertificate call waiting (up to
// maxBatch), applies each in a savepoint of one transaction, commits once
// (one fsync for the batch) and only then answers the callers. A call that
// fails (duplicate, unknown serial, constraint) is rolled back to its
// savepoint alone; when the transaction itself fails, each call of the batch
// is retried in a transaction of its own. A call returns nil only once its
// write is committed: durability is that of one commit per call.
type SQLite struct {
	db *sql.DB // reads and the migration; the writer has its own connection
	w  *writer
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
	// The writer's connection and a few for reads, which WAL lets run
	// beside the writer.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	s := &SQLite{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open CA database %s: %w", path, err)
	}
	if s.w, err = newWriter(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open CA database %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	return sqlitedb.Migrate(ctx, s.db, migrations[:schemaVersion])
}

// AddPrecertificate implements Store.
func (s *SQLite) AddPrecertificate(ctx context.Context, r *Record) error {
	rec := *r
	err := s.w.do(ctx, func(w *batchTx) error {
		res, err := w.stmt(stInsertPre).ExecContext(w.ctx, rec.Serial, rec.Profile, rec.Precertificate, rec.Created.UnixMilli())
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
func (s *SQLite) AddCertificate(ctx context.Context, serial string, cert []byte, scts []SCT, at time.Time) error {
	scts = slices.Clone(scts)
	err := s.w.do(ctx, func(w *batchTx) error {
		var have []byte
		err := w.stmt(stSelectCert).QueryRowContext(w.ctx, serial).Scan(&have)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case have != nil:
			return ErrDuplicate
		}
		if _, err := w.stmt(stUpdateCert).ExecContext(w.ctx, cert, at.UnixMilli(), serial); err != nil {
			return err
		}
		for i, sct := range scts {
			if _, err := w.stmt(stInsertSCT).ExecContext(w.ctx,
				serial, i, sct.LogID, sct.LogURL, int64(sct.Timestamp), sct.SCT); err != nil {
				return fmt.Errorf("SCT %d: %w", i, err)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrDuplicate):
		return fmt.Errorf("certificate %s: %w", serial, err)
	case err != nil:
		return fmt.Errorf("couldn't store certificate %s: %w", serial, err)
	}
	return nil
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, serial string) (*Record, error) {
	r := &Record{Serial: serial}
	var created int64
	var issued sql.NullInt64
	err := s.db.QueryRowContext(ctx,
		"SELECT profile, precertificate, created_ms, certificate, issued_ms FROM issuances WHERE serial = ?", serial).
		Scan(&r.Profile, &r.Precertificate, &created, &r.Certificate, &issued)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", serial, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read issuance %s: %w", serial, err)
	}
	r.Created = time.UnixMilli(created)
	if issued.Valid {
		r.Issued = time.UnixMilli(issued.Int64)
	}
	rows, err := s.db.QueryContext(ctx,
		"SELECT log_id, log_url, timestamp_ms, sct FROM scts WHERE serial = ? ORDER BY position", serial)
	if err != nil {
		return nil, fmt.Errorf("couldn't read SCTs of %s: %w", serial, err)
	}
	defer rows.Close()
	for rows.Next() {
		var sct SCT
		var ts int64
		if err := rows.Scan(&sct.LogID, &sct.LogURL, &ts, &sct.SCT); err != nil {
			return nil, fmt.Errorf("couldn't read SCTs of %s: %w", serial, err)
		}
		sct.Timestamp = uint64(ts)
		r.SCTs = append(r.SCTs, sct)
	}
	return r, rows.Err()
}

// Close implements Store: it makes new writes fail, commits those already
// waiting, and closes the database.
func (s *SQLite) Close() error {
	s.w.close()
	return s.db.Close()
}
