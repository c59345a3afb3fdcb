package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// writeTx runs one of the write statements (the st* constants, see
// writer.go) in the transaction of a write: the SQLite writer's prepared
// statements (batchTx), or MySQL's texts in a plain transaction (mysqlTx).
// addCertificate and revoke are written once against it.
type writeTx interface {
	exec(ctx context.Context, st int, args ...any) (sql.Result, error)
	queryRow(ctx context.Context, st int, args ...any) *sql.Row
}

// addCertificate completes the record of serial (see Store.AddCertificate)
// within t; the caller commits.
func addCertificate(ctx context.Context, t writeTx, serial string, cert []byte, scts []SCT, at time.Time, owed bool) error {
	var have []byte
	err := t.queryRow(ctx, stSelectCert, serial).Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case have != nil:
		return ErrDuplicate
	}
	if _, err := t.exec(ctx, stUpdateCert, cert, at.UnixMilli(), serial); err != nil {
		return err
	}
	for i, sct := range scts {
		if _, err := t.exec(ctx, stInsertSCT, serial, i, sct.LogID, sct.LogURL, int64(sct.Timestamp), sct.SCT); err != nil {
			return fmt.Errorf("SCT %d: %w", i, err)
		}
	}
	if owed {
		if _, err := t.exec(ctx, stInsertOwed, serial); err != nil {
			return fmt.Errorf("owed final submission: %w", err)
		}
	}
	return nil
}

// certificateError wraps what addCertificate's transaction returned.
func certificateError(serial string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrDuplicate):
		return fmt.Errorf("certificate %s: %w", serial, err)
	case err != nil:
		return fmt.Errorf("couldn't store certificate %s: %w", serial, err)
	}
	return nil
}

// revoke records the revocation of serial (see Store.Revoke) within t;
// the caller commits.
func revoke(ctx context.Context, t writeTx, serial string, reason int, at time.Time) error {
	var revoked sql.NullInt64
	err := t.queryRow(ctx, stSelectRevoked, serial).Scan(&revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case revoked.Valid:
		return ErrAlreadyRevoked
	}
	_, err = t.exec(ctx, stRevoke, at.UnixMilli(), reason, serial)
	return err
}

// revokeError wraps what revoke's transaction returned.
func revokeError(serial string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrAlreadyRevoked):
		return fmt.Errorf("revoking %s: %w", serial, err)
	case err != nil:
		return fmt.Errorf("couldn't revoke %s: %w", serial, err)
	}
	return nil
}
