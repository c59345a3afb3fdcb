package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/mysqldb"
	"github.com/ctstage/ctstage/internal/sqlitedb"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage"
)

// v1Database writes a ca.db of schema version 1, as ctstage wrote it
// before revocations, holding recs (their IssuerKeyID, NotAfter and
// Revocation are not stored); the first one has a certificate and an SCT.
func v1Database(t *testing.T, recs []*Record) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ca.db")
	db, err := sql.Open("sqlite", sqlitedb.DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqlitedb.Migrate(ctx, db, migrations[:1]); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if _, err := db.ExecContext(ctx, "INSERT INTO issuances (serial, profile, precertificate, created_ms) VALUES (?, ?, ?, ?)",
			r.Serial, r.Profile, r.Precertificate, r.Created.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, "UPDATE issuances SET certificate = ?, issued_ms = 2000 WHERE serial = ?", []byte("cert"), r.Serial); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO scts VALUES (?, 0, ?, 'http://a/', 5, x'01')", r.Serial, make([]byte, 32)); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestSQLiteMigrationFromV1 opens databases of schema version 1: the
// records are kept, each gets the issuer and NotAfter of its
// precertificate (in batches, however many there are), and the records
// can then be revoked and listed; none owes a final submission. A record whose precertificate does not
// parse stops the opening with an error that names it.
func TestSQLiteMigrationFromV1(t *testing.T) {
	ctx := context.Background()
	notAfter := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	many := func(n int) []*Record {
		var recs []*Record
		for i := range n {
			issuer := issuerA
			if i%2 == 1 {
				issuer = issuerB
			}
			recs = append(recs, record(t, fmt.Sprintf("%x", 0x10000+i), issuer, notAfter))
		}
		return recs
	}
	for _, tc := range []struct {
		name    string
		recs    []*Record
		wantErr string
	}{
		{"one record", many(1), ""},
		{"more than two backfill batches", many(2*backfillBatch + 3), ""},
		{"unparsable precertificate", append(many(3), &Record{Serial: "bad1", Profile: "classic", Precertificate: []byte("junk")}), "bad1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := v1Database(t, tc.recs)
			s, err := OpenSQLite(ctx, path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("OpenSQLite = %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var version, left int
			s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version)
			s.db.QueryRowContext(ctx, "SELECT count(*) FROM issuances WHERE issuer_key_id IS NULL OR not_after_ms IS NULL").Scan(&left)
			if version != schemaVersion || left != 0 {
				t.Errorf("after opening: schema version %d, %d records without issuer; want %d and 0", version, left, schemaVersion)
			}
			for i, want := range tc.recs {
				got, err := s.Get(ctx, want.Serial)
				if err != nil {
					t.Fatal(err)
				}
				wantIssuer := string(issuerA)
				if i%2 == 1 {
					wantIssuer = string(issuerB)
				}
				if string(got.Precertificate) != string(want.Precertificate) || string(got.IssuerKeyID) != wantIssuer ||
					!got.NotAfter.Equal(notAfter) || got.Revocation != nil {
					t.Fatalf("record %s after migration = %+v", want.Serial, got)
				}
				if i == 0 && (string(got.Certificate) != "cert" || len(got.SCTs) != 1 || got.SCTs[0].Timestamp != 5) {
					t.Errorf("record %s lost its certificate or SCT: %+v", want.Serial, got)
				}
			}
			if owed, err := s.FinalOwed(ctx, 10); err != nil || len(owed) != 0 {
				t.Errorf("FinalOwed after migration = %d records, %v; want none (old rows owe nothing)", len(owed), err)
			}
			first := tc.recs[0].Serial
			if err := s.Revoke(ctx, first, 1, time.UnixMilli(3000)); err != nil {
				t.Fatal(err)
			}
			got, err := s.Revoked(ctx, issuerA, notAfter)
			if err != nil || len(got) != 1 || got[0].Serial != first || got[0].Reason != 1 {
				t.Errorf("Revoked after migration = %+v, %v", got, err)
			}
		})
	}
}

// TestMySQLMigrationFromV1 opens ca_ tables of schema version 1 holding a
// record with a final certificate: it is kept and owes no final
// submission, and version 2's owed submissions then work.
func TestMySQLMigrationFromV1(t *testing.T) {
	ctx := context.Background()
	dsn, err := storage.MySQLDSN(testenv.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := mysqldb.Migrate(ctx, db, mysqlSchemaLock, "ca_schema", mysqlMigrations[:1]); err != nil {
		t.Fatal(err)
	}
	old := record(t, "7a", issuerA, farFuture)
	if _, err := db.ExecContext(ctx, "INSERT INTO ca_issuances (serial, profile, precertificate, created_ms, issuer_key_id, not_after_ms, certificate, issued_ms) "+
		"VALUES (?, 'classic', ?, 1000, ?, ?, 'cert', 2000)", old.Serial, old.Precertificate, issuerA, farFuture.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	s, err := OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.db.QueryRowContext(ctx, "SELECT version FROM ca_schema").Scan(&v); err != nil || v != 2 {
		t.Errorf("ca_schema version %d (%v), want 2", v, err)
	}
	if r, err := s.Get(ctx, "7a"); err != nil || string(r.Certificate) != "cert" || r.FinalOwed {
		t.Errorf("record of version 1 after migration = %+v, %v; want its certificate, owing nothing", r, err)
	}
	if owed, err := s.FinalOwed(ctx, 10); err != nil || len(owed) != 0 {
		t.Errorf("FinalOwed after migration = %d records, %v; want none", len(owed), err)
	}
	mustAdd(t, s, record(t, "7b", issuerA, farFuture))
	if err := s.AddCertificate(ctx, "7b", []byte("c"), testSCTs(1), time.UnixMilli(3000), true); err != nil {
		t.Fatal(err)
	}
	if owed, err := s.FinalOwed(ctx, 10); err != nil || len(owed) != 1 || owed[0].Serial != "7b" {
		t.Errorf("FinalOwed after an owed AddCertificate = %v, %v", owed, err)
	}
}
