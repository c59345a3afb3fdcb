package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ctstage/ctstage/storage/sqlite"
)

// ErrUnavailable is wrapped by the errors that Backend.Unavailable turns
// a storage outage into: a request that failed because the database could
// not be reached, not because of the request. Servers answer it with 503
// and Retry-After. It carries gRPC code Unavailable, so that an error that
// wraps it keeps its meaning through Trillian's in-process gRPC server.
var ErrUnavailable error = unavailableError{}

type unavailableError struct{}

func (unavailableError) Error() string { return "storage unavailable" }

// GRPCStatus makes status.FromError and status.Code see Unavailable.
func (unavailableError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, "storage unavailable")
}

// Unreachable reports whether err is, by its type or its number, one that
// the database's going away causes: the connection refused, reset or
// dropped; the server shutting down, out of connections or read-only;
// a lock wait cut short by a restart. It looks through wrapped errors and
// does not touch the network. See Backend.Unavailable for errors that lost
// their chain.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var me *gomysql.MySQLError
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, sqlite.ErrUnavailable):
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// A request's own deadline or cancellation, not an outage
		// (context.DeadlineExceeded is a net.Error): answered as before,
		// without a Retry-After that would hold clients back seconds.
		return false
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, gomysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &ne):
		return true
	case errors.As(err, &me):
		switch me.Number {
		case 1040, // ER_CON_COUNT_ERROR: too many connections
			1053, // ER_SERVER_SHUTDOWN
			1205, // ER_LOCK_WAIT_TIMEOUT
			1213, // ER_LOCK_DEADLOCK
			1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only
			1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
			1836, // ER_READ_ONLY_MODE
			1927, // ER_CONNECTION_KILLED (MariaDB)
			4031: // ER_CLIENT_INTERACTION_TIMEOUT
			return true
		}
	}
	return false
}

// clientCodes are gRPC codes that say a request was wrong or ran out of
// time, never that the storage failed.
var clientCodes = map[codes.Code]bool{
	codes.InvalidArgument: true, codes.NotFound: true, codes.AlreadyExists: true, codes.PermissionDenied: true,
	codes.FailedPrecondition: true, codes.OutOfRange: true, codes.Unauthenticated: true, codes.ResourceExhausted: true,
	codes.Canceled: true, codes.DeadlineExceeded: true, codes.Unimplemented: true, codes.Unavailable: true,
}

// pingTimeout bounds the probe of Unavailable.
const pingTimeout = time.Second

// Unavailable reports whether err, returned by something that used the
// storage, is the storage's outage. It is Unreachable(err), or, for an
// error that is neither a request's fault nor recognisably the
// database's (Trillian and Tessera wrap some driver errors with %v,
// which loses the chain), whether the database fails a ping right now.
// The ping runs only on that error path. On SQLite it is Unreachable.
func (b *Backend) Unavailable(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if Unreachable(err) {
		return true
	}
	if s, ok := status.FromError(err); ok && clientCodes[s.Code()] {
		return false
	}
	if errors.Is(err, context.Canceled) || b == nil || b.DB == nil {
		return false
	}
	if msg := err.Error(); strings.Contains(msg, "connection refused") || strings.Contains(msg, "invalid connection") ||
		strings.Contains(msg, "bad connection") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset") {
		return true
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
	defer cancel()
	return b.DB.PingContext(pctx) != nil
}

// MarkUnavailable returns err wrapped with ErrUnavailable when
// b.Unavailable says it is the storage's outage, and err unchanged
// otherwise.
func (b *Backend) MarkUnavailable(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !b.Unavailable(ctx, err) {
		return err
	}
	return errors.Join(ErrUnavailable, err)
}
