// Package logging holds ctstage's slog helpers: one structured line per HTTP
// request, and klog (used by Trillian and ct-go) routed into slog.
package logging

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/klog/v2"
)

// Requests logs one line per request at Info level: method, path, status,
// bytes written, duration and the client's address.
func Requests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := NewRecorder(w)
		next.ServeHTTP(rw, r)
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rw.status),
			slog.Int64("bytes", rw.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr))
	})
}

// Recorder is an http.ResponseWriter that records the status code and
// the bytes a handler writes, for logs and metrics.
type Recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
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

// RouteKlog sends klog's output (Trillian's and ct-go's logging) to log.
// Their informational chatter (every sequencer pass, every rejected
// submission) is demoted to Debug; errors stay errors.
func RouteKlog(log *slog.Logger) {
	klog.SetSlogLogger(slog.New(demote{log.Handler()}))
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
