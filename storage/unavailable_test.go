package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage/sqlite"
)

func TestUnreachable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "connection refused"}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"dial refused", fmt.Errorf("begin: %w", refused), true},
		{"ECONNREFUSED", fmt.Errorf("x: %w", syscall.ECONNREFUSED), true},
		{"bad conn", driver.ErrBadConn, true},
		{"invalid conn", fmt.Errorf("query: %w", gomysql.ErrInvalidConn), true},
		{"conn done", sql.ErrConnDone, true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"server shutdown", &gomysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}, true},
		{"read only", &gomysql.MySQLError{Number: 1290, Message: "--read-only"}, true},
		{"connection killed", &gomysql.MySQLError{Number: 1927}, true},
		{"duplicate key", &gomysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		{"no such table", &gomysql.MySQLError{Number: 1146}, false},
		{"no rows", sql.ErrNoRows, false},
		{"sqlite unavailable", fmt.Errorf("disk: %w", sqlite.ErrUnavailable), true},
		{"marked", errors.Join(ErrUnavailable, errors.New("x")), true},
		{"plain", errors.New("leaf hash mismatch"), false},
		{"canceled", context.Canceled, false},
		{"a request's deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"a dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, true},
	} {
		if got := Unreachable(tc.err); got != tc.want {
			t.Errorf("%s: Unreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestUnavailableProbe checks the fallback for errors that lost their
// chain: a client's mistake is never an outage, and an unknown error is
// one only when the database does not answer a ping.
func TestUnavailableProbe(t *testing.T) {
	down, err := sql.Open("mysql", "u@tcp(127.0.0.1:1)/x?timeout=200ms") // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	b := &Backend{Kind: "mysql", DB: down}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"client's mistake", status.Error(codes.InvalidArgument, "bad leaf"), false},
		{"not found", status.Error(codes.NotFound, "no tree"), false},
		{"message only", status.Error(codes.Unknown, "failed to retrieve existing leaves: invalid connection"), true},
		{"unknown, ping fails", errors.New("something odd"), true},
		{"canceled", context.Canceled, false},
	} {
		if got := b.Unavailable(ctx, tc.err); got != tc.want {
			t.Errorf("%s: Unavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	if err := b.MarkUnavailable(ctx, errors.New("something odd")); !errors.Is(err, ErrUnavailable) || status.Code(err) != codes.Unavailable {
		t.Errorf("MarkUnavailable = %v (code %v), want it to wrap ErrUnavailable with code Unavailable", err, status.Code(err))
	}
	// SQLite: no pool to ping, so only what Unreachable knows.
	if (&Backend{Kind: "sqlite"}).Unavailable(ctx, errors.New("something odd")) {
		t.Error("SQLite: an unknown error counted as an outage")
	}
}

// TestUnavailableUp: with the database up, an unknown error is a bug to
// answer 500 for, not an outage.
func TestUnavailableUp(t *testing.T) {
	b, err := Open(context.Background(), testenv.MySQL(t), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Unavailable(context.Background(), errors.New("something odd")) {
		t.Error("an unknown error counted as an outage while the database answers")
	}
	if !b.Unavailable(context.Background(), fmt.Errorf("x: %w", gomysql.ErrInvalidConn)) {
		t.Error("a driver's connection error did not count as an outage")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
