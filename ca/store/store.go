// Package store keeps the CA's issuance records: every precertificate the
// CA signed, the final certificate and SCTs that followed it, and its
// revocation.
//
// Two implementations: SQLite (a file under --data, the default) and
// MySQL (tables prefixed ca_ in the database of --storage mysql://...).
// Both pass the same conformance test (conformance_test.go).
package store

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound       = errors.New("no such issuance record")
	ErrDuplicate      = errors.New("an issuance record with this serial exists")
	ErrAlreadyRevoked = errors.New("the certificate is already revoked")
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
	// IssuerKeyID is the precertificate's authority key identifier: the
	// subject key identifier of the intermediate that signed it, which
	// names the CRL the certificate belongs to. NotAfter is the
	// precertificate's (and so the certificate's). The store reads both
	// from Precertificate; AddPrecertificate ignores the caller's values.
	IssuerKeyID []byte
	NotAfter    time.Time
	Certificate []byte    // DER; nil until AddCertificate
	Issued      time.Time // when the certificate was stored
	SCTs        []SCT
	// Revocation is nil until Revoke.
	Revocation *Revocation
	// FinalOwed reports that the final certificate still owes its
	// submission to the logs that gave its SCTs: set by AddCertificate,
	// cleared by FinalSubmitted.
	FinalOwed bool
}

// Revocation is a recorded revocation.
type Revocation struct {
	Serial string
	// Reason is the RFC 5280 CRLReason code (section 5.3.1); 0 is
	// unspecified.
	Reason int
	// At is the revocation time, to the millisecond.
	At time.Time
}

// Store keeps issuance records. Implementations are safe for concurrent use
// and durable when a method returns nil (the transaction holding the write
// is committed): a precertificate is stored before it is submitted to any
// log, so that every signed precertificate is on record even when no final
// certificate follows, and a revocation is stored before anyone is told
// it happened. A write whose context ends while it runs returns the
// context's error and may or may not be committed.
type Store interface {
	// AddPrecertificate stores a new record; ErrDuplicate if the serial is
	// taken. The precertificate must parse, carry r.Serial and an
	// authority key identifier.
	AddPrecertificate(ctx context.Context, r *Record) error
	// AddCertificate completes the record of serial with the final
	// certificate and its SCTs; ErrNotFound if there is no such record,
	// ErrDuplicate if it already has a certificate. With owed, the same
	// write records that the final certificate owes its submission to the
	// logs (Record.FinalOwed), so that no crash can lose the debt between
	// storing the certificate and submitting it.
	AddCertificate(ctx context.Context, serial string, cert []byte, scts []SCT, at time.Time, owed bool) error
	// FinalSubmitted records that the final certificate of serial owes
	// nothing more to the logs. It is idempotent: nil for a record that
	// owes nothing or does not exist.
	FinalSubmitted(ctx context.Context, serial string) error
	// FinalOwed returns up to limit records (with certificate and SCTs)
	// whose final certificate owes its submission, earliest issued first.
	FinalOwed(ctx context.Context, limit int) ([]*Record, error)
	// Get returns the record of serial, or ErrNotFound.
	Get(ctx context.Context, serial string) (*Record, error)
	// Issued returns up to limit records with a final certificate issued
	// after (since, after): in issue order (time, then serial), those
	// issued later than since, or at since with a serial above after. It
	// pages through every issuance for a monitor.
	Issued(ctx context.Context, since time.Time, after string, limit int) ([]*Record, error)
	// Revoke records that serial was revoked at a time for an RFC 5280
	// reason code; ErrNotFound if there is no such record,
	// ErrAlreadyRevoked if it is revoked (the first revocation stands).
	// A record without a final certificate can be revoked: its
	// precertificate is the CA's promise of one.
	Revoke(ctx context.Context, serial string, reason int, at time.Time) error
	// Revoked lists the revocations of the records whose IssuerKeyID is
	// issuerKeyID and whose NotAfter is at or after now (to the second:
	// a certificate is valid through its NotAfter second), oldest
	// revocation first.
	Revoked(ctx context.Context, issuerKeyID []byte, now time.Time) ([]Revocation, error)
	// Close releases the store.
	Close() error
}

// precertFacts reads from r's precertificate what the store indexes: its
// authority key identifier and NotAfter. It checks that the serial is
// r.Serial.
func precertFacts(r *Record) (issuerKeyID []byte, notAfter time.Time, err error) {
	c, err := x509.ParseCertificate(r.Precertificate)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("couldn't parse precertificate %s: %w", r.Serial, err)
	}
	if got := c.SerialNumber.Text(16); got != r.Serial {
		return nil, time.Time{}, fmt.Errorf("precertificate %s has serial %s", r.Serial, got)
	}
	if len(c.AuthorityKeyId) == 0 {
		return nil, time.Time{}, fmt.Errorf("precertificate %s has no authority key identifier", r.Serial)
	}
	return c.AuthorityKeyId, c.NotAfter, nil
}

// queryer is what reads need of a *sql.DB.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// tables names the tables of one implementation. A serial in finalOwed
// is a record whose final certificate owes its submission to the logs
// (Record.FinalOwed): a table of its own rather than a column, so that
// its migration is a CREATE TABLE IF NOT EXISTS, safe to repeat on MySQL,
// and rows from before it owe nothing.
type tables struct{ issuances, scts, finalOwed string }

// get reads the record of serial from the tables t.
func (t tables) get(ctx context.Context, db queryer, serial string) (*Record, error) {
	r := &Record{Serial: serial}
	var created, notAfter int64
	var issued, revoked, reason sql.NullInt64
	err := db.QueryRowContext(ctx,
		"SELECT profile, precertificate, created_ms, issuer_key_id, not_after_ms, certificate, issued_ms, revoked_ms, revocation_reason, "+
			"EXISTS (SELECT 1 FROM "+t.finalOwed+" o WHERE o.serial = i.serial) FROM "+t.issuances+" i WHERE serial = ?", serial).
		Scan(&r.Profile, &r.Precertificate, &created, &r.IssuerKeyID, &notAfter, &r.Certificate, &issued, &revoked, &reason, &r.FinalOwed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", serial, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read issuance %s: %w", serial, err)
	}
	r.Created, r.NotAfter = time.UnixMilli(created), time.UnixMilli(notAfter)
	if issued.Valid {
		r.Issued = time.UnixMilli(issued.Int64)
	}
	if revoked.Valid {
		r.Revocation = &Revocation{Serial: serial, Reason: int(reason.Int64), At: time.UnixMilli(revoked.Int64)}
	}
	rows, err := db.QueryContext(ctx,
		"SELECT log_id, log_url, timestamp_ms, sct FROM "+t.scts+" WHERE serial = ? ORDER BY position", serial)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read SCTs of %s: %w", serial, err)
	}
	return r, nil
}

// revoked lists revocations from the tables t (see Store.Revoked).
func (t tables) revoked(ctx context.Context, db queryer, issuerKeyID []byte, now time.Time) ([]Revocation, error) {
	rows, err := db.QueryContext(ctx,
		"SELECT serial, revocation_reason, revoked_ms FROM "+t.issuances+
			" WHERE issuer_key_id = ? AND revoked_ms IS NOT NULL AND not_after_ms >= ? ORDER BY revoked_ms, serial",
		issuerKeyID, now.Truncate(time.Second).UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("couldn't list revocations: %w", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var r Revocation
		var at int64
		if err := rows.Scan(&r.Serial, &r.Reason, &at); err != nil {
			return nil, fmt.Errorf("couldn't list revocations: %w", err)
		}
		r.At = time.UnixMilli(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list revocations: %w", err)
	}
	return out, nil
}

// finalOwedRecords lists the records owing their final submission from
// the tables t (see Store.FinalOwed).
func (t tables) issued(ctx context.Context, db queryer, since time.Time, after string, limit int) ([]*Record, error) {
	ms := since.UnixMilli()
	return t.records(ctx, db, "issuances",
		"SELECT serial FROM "+t.issuances+" WHERE issued_ms IS NOT NULL AND (issued_ms > ? OR (issued_ms = ? AND serial > ?)) ORDER BY issued_ms, serial LIMIT ?",
		ms, ms, after, limit)
}

func (t tables) finalOwedRecords(ctx context.Context, db queryer, limit int) ([]*Record, error) {
	return t.records(ctx, db, "owed final submissions",
		"SELECT o.serial FROM "+t.finalOwed+" o JOIN "+t.issuances+" i ON i.serial = o.serial ORDER BY i.issued_ms, o.serial LIMIT ?", limit)
}

// records runs query, which selects serials, and returns their records in
// its order; what names the list in errors.
func (t tables) records(ctx context.Context, db queryer, what, query string, args ...any) ([]*Record, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't list %s: %w", what, err)
	}
	var serials []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, fmt.Errorf("couldn't list %s: %w", what, err)
		}
		serials = append(serials, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list %s: %w", what, err)
	}
	out := make([]*Record, 0, len(serials))
	for _, s := range serials {
		r, err := t.get(ctx, db, s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
