package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ImportedSuffix is appended to the name of a SQLite store that
// ImportSQLite has copied.
const ImportedSuffix = ".imported"

// importPage is how many serials ImportSQLite reads at a time.
const importPage = 500

// ImportSQLite copies every record of the SQLite store at path (its
// precertificate, certificate, SCTs and revocation) into dst, then renames
// the file, and its -wal and -shm files if any, with ImportedSuffix so that
// it is not read again. What dst already has is skipped, so a run stopped
// halfway is completed by the next. A missing file imports nothing. It
// returns the number of records read.
//
// ctstage uses it when --storage moves to MySQL and --data still holds the
// ca.db that earlier versions kept there in every case.
func ImportSQLite(ctx context.Context, path string, dst Store) (int, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	src, err := OpenSQLite(ctx, path)
	if err != nil {
		return 0, err
	}
	n, err := src.copyTo(ctx, dst)
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("couldn't import %s: %w", path, err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		err := os.Rename(path+suffix, path+suffix+ImportedSuffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("couldn't set aside %s after importing it: %w", path, err)
		}
	}
	return n, nil
}

// copyTo writes every record of s to dst, in serial order.
func (s *SQLite) copyTo(ctx context.Context, dst Store) (int, error) {
	n, last := 0, ""
	for {
		page, err := s.serialsAfter(ctx, last)
		if err != nil || len(page) == 0 {
			return n, err
		}
		for _, serial := range page {
			r, err := s.Get(ctx, serial)
			if err != nil {
				return n, err
			}
			if err := importRecord(ctx, dst, r); err != nil {
				return n, err
			}
			n++
		}
		last = page[len(page)-1]
	}
}

func (s *SQLite) serialsAfter(ctx context.Context, after string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT serial FROM issuances WHERE serial > ? ORDER BY serial LIMIT ?", after, importPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var serial string
		if err := rows.Scan(&serial); err != nil {
			return nil, err
		}
		out = append(out, serial)
	}
	return out, rows.Err()
}

// importRecord writes r to dst, skipping each part dst already has.
func importRecord(ctx context.Context, dst Store, r *Record) error {
	if err := dst.AddPrecertificate(ctx, r); err != nil && !errors.Is(err, ErrDuplicate) {
		return err
	}
	if r.Certificate != nil {
		if err := dst.AddCertificate(ctx, r.Serial, r.Certificate, r.SCTs, r.Issued, r.FinalOwed); err != nil && !errors.Is(err, ErrDuplicate) {
			return err
		}
	}
	if v := r.Revocation; v != nil {
		if err := dst.Revoke(ctx, r.Serial, v.Reason, v.At); err != nil && !errors.Is(err, ErrAlreadyRevoked) {
			return err
		}
	}
	return nil
}
