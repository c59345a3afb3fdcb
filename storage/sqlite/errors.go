package sqlite

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrUnavailable is wrapped by errors caused by the storage medium: the
	// disk is full, the file or its directory is not writable, an I/O error,
	// or a lock held by another process beyond the busy timeout. It carries
	// gRPC code Unavailable, so Trillian returns it as such and ctfe answers
	// HTTP 503. Check with errors.Is.
	ErrUnavailable error = &codeError{codes.Unavailable, "sqlite storage unavailable"}

	// ErrCorrupt is wrapped by errors caused by a damaged database file or
	// by a file that is not a ctstage Trillian database. Open reports it
	// before serving starts. It carries gRPC code DataLoss.
	ErrCorrupt error = &codeError{codes.DataLoss, "sqlite database corrupt or not a ctstage Trillian database"}

	// errClosed is returned by operations on a closed DB.
	errClosed = fmt.Errorf("storage is closed: %w", ErrUnavailable)
)

// codeError is a sentinel error that carries a gRPC code. status.FromError
// finds it through any %w wrapping, so the code survives up to ctfe.
type codeError struct {
	code codes.Code
	msg  string
}

// Error implements error.
func (e *codeError) Error() string { return e.msg }

// GRPCStatus returns the gRPC status of e.
func (e *codeError) GRPCStatus() *status.Status { return status.New(e.code, e.msg) }

// classify wraps err with ErrUnavailable or ErrCorrupt when the SQLite
// result code says so, and returns other errors unchanged.
func classify(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_PERM,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_NOLFS:
		if errors.Is(err, ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// wrap adds a "couldn't ..." context to err and classifies it; nil stays nil.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("couldn't "+format+": %w", append(args, classify(err))...)
}
