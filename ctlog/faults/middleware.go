package faults

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	ct "github.com/google/certificate-transparency-go"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/prometheus/client_golang/prometheus"
)

// Views serve the faults that need a log's internals. A shard that has
// no view of a kind returns false, and the request is served as usual.
type Views interface {
	// Rollback serves an older, validly signed tree head (get-sth, or the
	// checkpoint of a tiled shard).
	Rollback(w http.ResponseWriter, r *http.Request) bool
	// Fork is the handler that serves r, a read of endpoint, from the
	// split view's fork, falling back to next where the fork and the
	// log agree; nil when the shard has no fork to show (an empty log).
	Fork(r *http.Request, endpoint string, next http.Handler) http.Handler
}

// Middleware applies a shard's faults around its handler.
type Middleware struct {
	// Shard names the shard in log lines and metrics.
	Shard string
	// Set holds the shard's faults.
	Set *Set
	// Endpoint names the endpoint of a request ("" for none of them).
	Endpoint func(*http.Request) string
	// Views serve rollbacks and the split view; nil serves neither.
	Views Views
	// Logger receives one line per request a fault touched.
	Logger *slog.Logger
	// Hits counts the requests each fault touched (Metrics.Hits).
	Hits *prometheus.CounterVec
}

// NewHits is the counter Middleware.Hits takes, registered on reg when
// reg is not nil (a collector already registered is reused).
func NewHits(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ctstage_log_fault_hits_total",
		Help: "Requests that an injected fault touched, by shard and kind (for no_integrate, no_publish and sct_timestamp_skew: the submissions made while it was set).",
	}, []string{"shard", "kind"})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return c
}

// Hit records that fault kind touched a request to endpoint from client:
// the metric and one log line.
func (m *Middleware) Hit(kind Kind, endpoint, client string) {
	if m.Hits != nil {
		m.Hits.WithLabelValues(m.Shard, string(kind)).Inc()
	}
	if m.Logger != nil {
		m.Logger.Info("log fault applied", "shard", m.Shard, "fault", string(kind), "endpoint", endpoint, "client", client)
	}
}

// Client is the IP address of a request's peer.
func Client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Wrap returns h with the shard's faults applied.
func (m *Middleware) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.Set.any.Load() {
			h.ServeHTTP(w, r)
			return
		}
		ep := m.Endpoint(r)
		if ep == "" {
			h.ServeHTTP(w, r)
			return
		}
		m.serve(h, w, r, ep)
	})
}

func (m *Middleware) serve(h http.Handler, w http.ResponseWriter, r *http.Request, ep string) {
	client := Client(r)
	hit := func(k Kind) (Fault, bool) {
		f, ok := m.Set.Hits(k, ep, client)
		if ok {
			m.Hit(k, ep, client)
		}
		return f, ok
	}
	if _, ok := hit(Drop); ok {
		drop(w)
		return
	}
	if f, ok := hit(Delay); ok {
		d := time.Duration(f.MinMS) * time.Millisecond
		if f.MaxMS > f.MinMS {
			d += time.Duration(rand.Int64N(int64(f.MaxMS-f.MinMS)+1)) * time.Millisecond
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f, ok := hit(Unavailable); ok {
		if f.Status != http.StatusInternalServerError {
			ra := f.RetryAfterS
			if ra == 0 {
				ra = 5
			}
			w.Header().Set("Retry-After", strconv.Itoa(ra))
		}
		http.Error(w, http.StatusText(f.Status)+"\nctstage fault: unavailable", f.Status)
		return
	}
	if f, ok := m.Set.Hits(Reject, ep, client); ok {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "Bad Request\ncouldn't read the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if why := rejects(f, body); why != "" {
			m.Hit(Reject, ep, client)
			http.Error(w, "Bad Request\nctstage fault: reject: "+why, http.StatusBadRequest)
			return
		}
	}
	if m.Views != nil {
		forked := false
		if _, ok := m.Set.Hits(SplitView, ep, client); ok {
			if fh := m.Views.Fork(r, ep, h); fh != nil {
				m.Hit(SplitView, ep, client)
				h, forked = fh, true
			}
		}
		// A rollback is of the main view: a client shown the fork is
		// not shown it (the fork's own history is the main view's).
		if _, ok := m.Set.Hits(STHRollback, ep, client); ok && !forked && m.Views.Rollback(w, r) {
			m.Hit(STHRollback, ep, client)
			return
		}
	}
	// The faults the log applies itself are counted here, per request.
	for _, k := range []Kind{NoIntegrate, NoPublish, SCTTimestampSkew} {
		if _, ok := m.Set.Hits(k, ep, client); ok {
			m.Hit(k, ep, client)
		}
	}
	var mutate []Kind
	for _, k := range []Kind{BadSCTSignature, BadSTHSignature, BadProof, BadEntry} {
		if _, ok := m.Set.Hits(k, ep, client); ok {
			mutate = append(mutate, k)
		}
	}
	if len(mutate) == 0 {
		h.ServeHTTP(w, r)
		return
	}
	// The body is altered before any compression: ask the handler for
	// the identity encoding (clients take either).
	r.Header.Del("Accept-Encoding")
	rec := &recorder{header: w.Header(), status: http.StatusOK}
	h.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.status == http.StatusOK {
		for _, k := range mutate {
			if out, ok := corrupt(k, ep, body); ok {
				body = out
				m.Hit(k, ep, client)
			}
		}
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.status)
	w.Write(body)
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, as a crashed server gives
			}
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2: the stream is reset
}

type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}
func (r *recorder) Write(b []byte) (int, error) { r.wrote = true; return r.body.Write(b) }

// rejects reports why fault f refuses the add-chain body, or "".
func rejects(f Fault, body []byte) string {
	var req ct.AddChainRequest
	if json.Unmarshal(body, &req) != nil || len(req.Chain) == 0 {
		return "" // the log answers malformed bodies itself
	}
	leaf, err := ctx509.ParseCertificate(req.Chain[0])
	if ctx509.IsFatal(err) || leaf == nil {
		return ""
	}
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	for _, suffix := range f.Names {
		suffix = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(suffix), "."))
		for _, n := range names {
			n = strings.ToLower(n)
			if n != "" && (n == suffix || strings.HasSuffix(n, "."+suffix)) {
				return "the log refuses " + n
			}
		}
	}
	for _, cn := range f.Issuers {
		if strings.EqualFold(leaf.Issuer.CommonName, cn) {
			return "the log refuses certificates issued by " + cn
		}
	}
	return ""
}

// corrupt applies a corrupting fault to a 200 answer of endpoint; false
// when the answer has nothing it alters.
func corrupt(k Kind, ep string, body []byte) ([]byte, bool) {
	switch {
	case k == BadSCTSignature:
		return editJSON(body, func(m map[string]json.RawMessage) bool { return editB64(m, "signature", flipLast) })
	case k == BadSTHSignature && ep == "checkpoint":
		return corruptNoteSignature(body)
	case k == BadSTHSignature:
		return editJSON(body, func(m map[string]json.RawMessage) bool { return editB64(m, "tree_head_signature", flipLast) })
	case k == BadProof && ep == "tile":
		if len(body) < 32 {
			return nil, false
		}
		out := bytes.Clone(body)
		out[0] ^= 0x01
		return out, true
	case k == BadProof:
		field := "audit_path"
		if ep == "get-sth-consistency" {
			field = "consistency"
		}
		return editJSON(body, func(m map[string]json.RawMessage) bool { return corruptPath(m, field) })
	case k == BadEntry && ep == "data-tile":
		out := bytes.Clone(body)
		return out, flipEntry(out, 8)
	case k == BadEntry && ep == "get-entry-and-proof":
		return editJSON(body, func(m map[string]json.RawMessage) bool {
			return editB64(m, "leaf_input", func(b []byte) bool { return flipEntry(b, 10) })
		})
	case k == BadEntry:
		return editJSON(body, func(m map[string]json.RawMessage) bool {
			var entries []map[string]json.RawMessage
			if json.Unmarshal(m["entries"], &entries) != nil || len(entries) == 0 {
				return false
			}
			if !editB64(entries[0], "leaf_input", func(b []byte) bool { return flipEntry(b, 10) }) {
				return false
			}
			b, err := json.Marshal(entries)
			m["entries"] = b
			return err == nil
		})
	}
	return nil, false
}

func editJSON(body []byte, edit func(map[string]json.RawMessage) bool) ([]byte, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || !edit(m) {
		return nil, false
	}
	out, err := json.Marshal(m)
	return out, err == nil
}

// editB64 edits the bytes of the base64 string field of m.
func editB64(m map[string]json.RawMessage, field string, edit func([]byte) bool) bool {
	var s string
	if json.Unmarshal(m[field], &s) != nil {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !edit(b) {
		return false
	}
	out, err := json.Marshal(base64.StdEncoding.EncodeToString(b))
	m[field] = out
	return err == nil
}

// flipLast alters the last byte of a DigitallySigned: a byte of the
// signature's S, so that it still parses but no longer verifies.
func flipLast(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	b[len(b)-1] ^= 0x01
	return true
}

// corruptPath alters the first node of a proof, or adds a bogus one to
// an empty proof.
func corruptPath(m map[string]json.RawMessage, field string) bool {
	var path [][]byte
	if json.Unmarshal(m[field], &path) != nil {
		return false
	}
	if len(path) == 0 || len(path[0]) == 0 {
		path = append([][]byte{bytes.Repeat([]byte{0xfa}, 32)}, path...)
	} else {
		path[0][0] ^= 0x01
	}
	b, err := json.Marshal(path)
	m[field] = b
	return err == nil
}

// flipEntry alters a byte in the middle of the certificate (or
// precertificate TBS) of the entry whose entry_type is at b[off:]: a
// MerkleTreeLeaf's at 10, a data tile's TileLeaf's at 8. The structure
// still parses, but the leaf hash no longer matches the tree.
func flipEntry(b []byte, off int) bool {
	if len(b) < off+2 {
		return false
	}
	at := off + 2
	if b[off] == 0 && b[off+1] == 1 { // precert_entry: issuer_key_hash first
		at += 32
	}
	if len(b) < at+3 {
		return false
	}
	n := int(b[at])<<16 | int(b[at+1])<<8 | int(b[at+2])
	if n == 0 || len(b) < at+3+n {
		return false
	}
	b[at+3+n/2] ^= 0x01
	return true
}

// corruptNoteSignature alters the last byte of a checkpoint's signature.
func corruptNoteSignature(note []byte) ([]byte, bool) {
	lines := strings.Split(strings.TrimSuffix(string(note), "\n"), "\n")
	last := lines[len(lines)-1]
	i := strings.LastIndexByte(last, ' ')
	if !strings.HasPrefix(last, "— ") || i < 0 {
		return nil, false
	}
	sig, err := base64.StdEncoding.DecodeString(last[i+1:])
	if err != nil || !flipLast(sig) {
		return nil, false
	}
	lines[len(lines)-1] = last[:i+1] + base64.StdEncoding.EncodeToString(sig)
	return []byte(strings.Join(lines, "\n") + "\n"), true
}
