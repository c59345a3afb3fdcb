// Package httpserver builds every HTTP server of ctstage with one set of
// limits, so that no listener is left open to a slow or oversized client.
package httpserver

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/netutil"
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
	// MaxInFlight is how many requests one listener works on at once;
	// beyond it, a request is answered 503 with Retry-After at once, so
	// that a flood costs no memory. The log benchmark's 64 clients are
	// far below it.
	MaxInFlight = 1024
	// MaxConns is how many connections one listener keeps open; beyond
	// it, new connections wait in the kernel's backlog, unaccepted, so
	// that a flood of idle connections cannot use up file descriptors.
	MaxConns = 8192
)

// Limits are a server's timeouts and header bound; Default holds the
// constants above. Tests shorten them to measure that they hold.
type Limits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	MaxInFlight, MaxConns                                     int
}

// Default are the limits of every listener of `ctstage serve`.
var Default = Limits{
	ReadHeaderTimeout: ReadHeaderTimeout,
	ReadTimeout:       ReadTimeout,
	WriteTimeout:      WriteTimeout,
	IdleTimeout:       IdleTimeout,
	MaxHeaderBytes:    MaxHeaderBytes,
	MaxInFlight:       MaxInFlight,
	MaxConns:          MaxConns,
}

// New returns a server for h with limits l (zero fields take Default's)
// whose own errors (TLS handshakes, panics in handlers, accept errors) go
// to log at warning level.
func New(h http.Handler, l Limits, log *slog.Logger) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           limitInFlight(h, l.MaxInFlight),
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
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = MaxInFlight
	}
	if l.MaxConns <= 0 {
		l.MaxConns = MaxConns
	}
	return l
}

// Listener bounds lis to l's MaxConns open connections.
func Listener(lis net.Listener, l Limits) net.Listener {
	return netutil.LimitListener(lis, l.withDefaults().MaxConns)
}

// limitInFlight serves at most max requests of h at once and answers the
// others 503 with a jittered Retry-After of 1 to 3 seconds.
func limitInFlight(h http.Handler, max int) http.Handler {
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			h.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", strconv.Itoa(1+rand.IntN(3)))
			http.Error(w, "Service Unavailable: too many requests in flight; retry later", http.StatusServiceUnavailable)
		}
	})
}
