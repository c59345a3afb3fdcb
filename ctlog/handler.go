package ctlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/trillian/ctfe"
)

func (s *Server) newMux() http.Handler {
	mux := http.NewServeMux()
	for _, sh := range s.shards {
		f := s.byName[sh.cfg.Name]
		for path, h := range sh.instance.Handlers {
			mux.Handle(path, f.wrap(s.shardHandler(sh, path, h)))
		}
	}
	for _, t := range s.tiled {
		f := s.byName[t.cfg.Name]
		mux.Handle("/"+t.cfg.Name+"/", f.wrap(http.StripPrefix("/"+t.cfg.Name, t.log.Handler())))
	}
	mux.HandleFunc("GET /log.v3.json", s.serveLogList)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	return mux
}

// shardHandler puts ctstage's front-end rules around one ctfe endpoint:
// bounded bodies refused with 400, get-entries cut to the shard's limit,
// submissions counted, Retry-After on 503.
func (s *Server) shardHandler(sh *shard, path string, app ctfe.AppHandler) http.Handler {
	var h http.Handler = app
	if sh.clock != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if sh.clock.f.skew.Load() != 0 {
				s.serveSkewed(app, w, r)
				return
			}
			app.ServeHTTP(w, r)
		})
	}
	endpoint := path[strings.LastIndex(path, "/")+1:]
	isAdd := strings.HasSuffix(path, ct.AddChainPath) || strings.HasSuffix(path, ct.AddPreChainPath)
	limit := s.opts.Config.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, scanTS: isAdd}
		switch {
		case isAdd && r.Method == http.MethodPost:
			if err := bufferBody(r, limit); err != nil {
				http.Error(rw, "Bad Request\n"+err.Error(), http.StatusBadRequest)
				break
			}
			h.ServeHTTP(rw, r)
		case strings.HasSuffix(path, ct.GetEntriesPath):
			clampGetEntries(r, sh.cfg.MaxGetEntries)
			if !s.serveEntries(sh, rw, r) {
				h.ServeHTTP(rw, r)
			}
		case strings.HasSuffix(path, ct.GetProofByHashPath):
			if msg := s.checkTreeSize(r, sh); msg != "" {
				http.Error(rw, "Bad Request\n"+msg, http.StatusBadRequest)
				break
			}
			h.ServeHTTP(rw, r)
		default:
			h.ServeHTTP(rw, r)
		}
		if isAdd {
			s.metrics.submissions.WithLabelValues(sh.cfg.Name, endpoint, outcome(rw.status)).Inc()
			if rw.status == http.StatusOK && rw.ts != 0 {
				s.byName[sh.cfg.Name].noteSCT(rw.ts, time.Now())
			}
		}
	})
}

// checkTreeSize refuses a get-proof-by-hash whose tree_size is beyond
// the tree: Trillian v1.8.0 does not check it and fails with Unknown,
// which ctfe answers 500. A tree_size that does not parse is left to
// ctfe, which answers 400. It returns the refusal's text, or "".
func (s *Server) checkTreeSize(r *http.Request, sh *shard) string {
	size, err := strconv.ParseInt(r.URL.Query().Get("tree_size"), 10, 64)
	if err != nil || size <= 0 {
		return ""
	}
	root, err := s.latestRoot(r.Context(), sh)
	if err != nil {
		return "" // ctfe's own call reports the storage's state
	}
	if uint64(size) > root.TreeSize {
		return fmt.Sprintf("tree_size %d is beyond the tree's size %d", size, root.TreeSize)
	}
	return ""
}

func outcome(status int) string {
	switch {
	case status == http.StatusOK:
		return "accepted"
	case status >= 400 && status < 500:
		return "rejected"
	default:
		return "error"
	}
}

// bufferBody reads the request body into memory, refusing one over limit
// bytes, so that ctfe sees a complete body and an oversized one gets a 400
// that says why.
func bufferBody(r *http.Request, limit int64) error {
	if r.ContentLength > limit {
		return fmt.Errorf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("couldn't read request body: %v", err)
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("request body exceeds the limit of %d bytes", limit)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// clampGetEntries cuts a get-entries range to at most limit entries, as
// RFC 6962 section 4.6 allows a log to return fewer than asked for.
func clampGetEntries(r *http.Request, limit int64) {
	q := r.URL.Query()
	start, err1 := strconv.ParseInt(q.Get("start"), 10, 64)
	end, err2 := strconv.ParseInt(q.Get("end"), 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || end-start < limit {
		return // ctfe answers malformed ranges itself
	}
	q.Set("end", strconv.FormatInt(start+limit-1, 10))
	r.URL.RawQuery = q.Encode()
	r.Form = nil
}

// statusWriter records the status and adds a jittered Retry-After to 503s,
// which ctstage answers when storage cannot take writes.
type statusWriter struct {
	http.ResponseWriter
	status int
	// scanTS asks for the SCT's timestamp, read from the answer into ts.
	scanTS bool
	ts     int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter()))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.scanTS && w.ts == 0 {
		w.ts = jsonTimestamp(b)
	}
	return w.ResponseWriter.Write(b)
}

// retryAfter is 5 to 10 seconds, jittered so that clients don't return together.
func retryAfter() int { return 5 + rand.IntN(6) }

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter()))
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// jsonTimestamp reads the number after "timestamp": in an add-chain
// answer without decoding it; 0 when there is none.
func jsonTimestamp(b []byte) int64 {
	i := bytes.Index(b, []byte(`"timestamp":`))
	if i < 0 {
		return 0
	}
	var n int64
	for _, c := range bytes.TrimLeft(b[i+len(`"timestamp":`):], " ") {
		if c < '0' || c > '9' || n > 1e17 {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
