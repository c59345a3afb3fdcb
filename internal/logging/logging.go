// Package logging holds ctstage's slog helpers: one structured line per HTTP
// request, and klog (used by Trillian and ct-go) routed into slog.
package logging

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// Requests logs one line per request: method, path, status, bytes
// written, duration, the client's address, and whatever the handler added
// with Annotate (an ACME problem's type and detail, an internal error). The
// line is at Info level, Error for a 5xx other than 503.
func Requests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := NewRecorder(w)
		rw.logged = true
		next.ServeHTTP(rw, r)
		attrs := append([]slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rw.status),
			slog.Int64("bytes", rw.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr)}, rw.attrs...)
		// A 503 is a state (not ready yet, pushback), not a failure.
		level := slog.LevelInfo
		if rw.status >= 500 && rw.status != http.StatusServiceUnavailable {
			level = slog.LevelError
		}
		log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// Annotate adds attrs to the request's log line, if w is (or wraps) the
// Recorder of Requests; it reports whether it was.
func Annotate(w http.ResponseWriter, attrs ...slog.Attr) bool {
	for w != nil {
		if rw, ok := w.(*Recorder); ok && rw.logged {
			rw.attrs = append(rw.attrs, attrs...)
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

// Recorder is an http.ResponseWriter that records the status code and
// the bytes a handler writes, for logs and metrics.
type Recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	logged      bool        // the Recorder of Requests, which logs attrs
	attrs       []slog.Attr // from Annotate
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w, status: http.StatusOK}
}

// Status is the status code written, 200 when the handler wrote none.
func (r *Recorder) Status() int { return r.status }

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *Recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// RouteKlog sends klog's output (Trillian's, ct-go's and Tessera's
// logging) to log. Their informational chatter (every sequencer pass,
// every rejected submission) is demoted to Debug; errors stay errors.
//
// klog's logger is process-wide and read without a lock by every klog
// call, so it is set once, to a handler that forwards to the target of
// the latest RouteKlog, swapped atomically: a second Stage in one process
// (as in tests) redirects klog without racing the first one's Trillian.
func RouteKlog(log *slog.Logger) {
	h := log.Handler()
	klogTarget.Store(&h)
	klogOnce.Do(func() { klog.SetSlogLogger(slog.New(demote{klogForward{}})) })
}

var (
	klogTarget atomic.Pointer[slog.Handler]
	klogOnce   sync.Once
)

// klogForward is a slog.Handler that hands each record to klogTarget's
// handler, with the attributes and groups added on the way replayed on it.
type klogForward struct {
	ops []func(slog.Handler) slog.Handler
}

func (f klogForward) target() slog.Handler {
	h := *klogTarget.Load()
	for _, op := range f.ops {
		h = op(h)
	}
	return h
}

func (f klogForward) Enabled(ctx context.Context, l slog.Level) bool {
	return f.target().Enabled(ctx, l)
}

func (f klogForward) Handle(ctx context.Context, r slog.Record) error {
	return f.target().Handle(ctx, r)
}

func (f klogForward) WithAttrs(a []slog.Attr) slog.Handler {
	return klogForward{append(f.ops[:len(f.ops):len(f.ops)], func(h slog.Handler) slog.Handler { return h.WithAttrs(a) })}
}

func (f klogForward) WithGroup(n string) slog.Handler {
	return klogForward{append(f.ops[:len(f.ops):len(f.ops)], func(h slog.Handler) slog.Handler { return h.WithGroup(n) })}
}

// demote lowers Info records to Debug.
type demote struct{ slog.Handler }

func (d demote) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return d.Handler.Enabled(ctx, l)
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return d.Handler.Handle(ctx, r)
}

func (d demote) WithAttrs(a []slog.Attr) slog.Handler { return demote{d.Handler.WithAttrs(a)} }
func (d demote) WithGroup(n string) slog.Handler      { return demote{d.Handler.WithGroup(n)} }
