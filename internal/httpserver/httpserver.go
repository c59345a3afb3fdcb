// Package httpserver builds every HTTP server of ctstage with one set of
// limits, so that no listener is left open to a slow or oversized client.
package httpserver

import (
	"log/slog"
	"net/http"
	"time"
)

// The limits of every ctstage listener. ReadTimeout covers the headers
// and the body: a client that trickles its body is cut off by it.
// WriteTimeout is longer than any handler's own deadline (an ACME
// issuance is bounded by acme.issue_timeout, 1 min by default).
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 2 * time.Minute
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
)

// Limits are a server's timeouts and header bound; Default holds the
// constants above. Tests shorten them to measure that they hold.
type Limits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
}

// Default are the limits of every listener of `ctstage serve`.
var Default = Limits{
	ReadHeaderTimeout: ReadHeaderTimeout,
	ReadTimeout:       ReadTimeout,
	WriteTimeout:      WriteTimeout,
	IdleTimeout:       IdleTimeout,
	MaxHeaderBytes:    MaxHeaderBytes,
}

// New returns a server for h with limits l (zero fields take Default's)
// whose own errors (TLS handshakes, panics in handlers, accept errors) go
// to log at warning level.
func New(h http.Handler, l Limits, log *slog.Logger) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func (l Limits) withDefaults() Limits {
	pick := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	l.ReadHeaderTimeout = pick(l.ReadHeaderTimeout, ReadHeaderTimeout)
	l.ReadTimeout = pick(l.ReadTimeout, ReadTimeout)
	l.WriteTimeout = pick(l.WriteTimeout, WriteTimeout)
	l.IdleTimeout = pick(l.IdleTimeout, IdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = MaxHeaderBytes
	}
	return l
}
