package va

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testKeyAuth = "token-abc.thumbprint-xyz"
	testToken   = "token-abc"
)

// port is the port of a listener's address.
func port(t testing.TB, addr net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustAddr(t testing.TB, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// closedPort is a loopback port nothing listens on.
func closedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, l.Addr())
	l.Close()
	return p
}

// wantFailure checks that err is nil when kind is "", else a *Error of
// that kind whose detail contains every one of details.
func wantFailure(t *testing.T, err error, kind Kind, details ...string) {
	t.Helper()
	if kind == "" {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want a *va.Error of kind %s", err, err, kind)
	}
	if e.Kind != kind {
		t.Fatalf("got kind %s (%s), want %s", e.Kind, e.Detail, kind)
	}
	for _, d := range details {
		if !strings.Contains(e.Detail, d) {
			t.Errorf("detail %q does not mention %q", e.Detail, d)
		}
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
