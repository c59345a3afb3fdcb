package tiled

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	ct "github.com/google/certificate-transparency-go"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/crypto/cryptobyte"

	"github.com/ctstage/ctstage/internal/b64json"
)

// Handler serves the log under its prefix (the caller strips it): the
// submission API at ct/v1/add-chain, ct/v1/add-pre-chain and
// ct/v1/get-roots, and the monitoring API at checkpoint, tile/...,
// tile/data/... and issuer/<sha256 hex>. Nothing else under Dir (Tessera's
// .state) is served.
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ct/v1/add-chain", func(w http.ResponseWriter, r *http.Request) { l.countAdd(w, r, "add-chain", false) })
	mux.HandleFunc("POST /ct/v1/add-pre-chain", func(w http.ResponseWriter, r *http.Request) { l.countAdd(w, r, "add-pre-chain", true) })
	mux.HandleFunc("GET /ct/v1/get-roots", l.serveRoots)
	mux.HandleFunc("GET /checkpoint", l.serveCheckpoint)
	mux.HandleFunc("GET /tile/", l.serveTile)
	mux.HandleFunc("GET /issuer/{fp}", l.serveIssuer)
	return mux
}

// countAdd serves an add and counts its outcome.
func (l *Log) countAdd(w http.ResponseWriter, r *http.Request, endpoint string, precert bool) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	l.serveAdd(rec, r, precert)
	outcome := "accepted"
	switch {
	case rec.status >= 500:
		outcome = "error"
	case rec.status >= 400:
		outcome = "rejected"
	}
	l.CountSubmission(endpoint, outcome)
}

// CountSubmission counts a submission to endpoint with its outcome
// (accepted, rejected, error) in ctstage_tiled_submissions_total: those
// Handler answers, and those refused before it (by the shard's state).
func (l *Log) CountSubmission(endpoint, outcome string) {
	l.metrics.submissions.WithLabelValues(endpoint, outcome).Inc()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (l *Log) serveAdd(w http.ResponseWriter, r *http.Request, precert bool) {
	body, err := readBody(w, r, l.opts.MaxBodyBytes)
	if err != nil {
		http.Error(w, "Bad Request\ncouldn't read the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	chain, ok := decodeChain(body)
	if !ok {
		var req ct.AddChainRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "Bad Request\nthe body is not an add-chain request: "+err.Error(), http.StatusBadRequest)
			return
		}
		chain = req.Chain
	}
	sct, err := l.Add(r.Context(), chain, precert)
	switch {
	case errors.Is(err, ErrBadSubmission):
		http.Error(w, "Bad Request\n"+err.Error(), http.StatusBadRequest)
		return
	case errors.Is(err, tessera.ErrPushback):
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Service Unavailable\nthe log is busy; retry", http.StatusServiceUnavailable)
		return
	case l.unavailable(r.Context(), err):
		l.opts.Logger.Warn("tiled add: storage unavailable", "origin", l.opts.Origin, "err", err)
		serveUnavailable(w)
		return
	case err != nil:
		l.opts.Logger.Error("tiled add failed", "origin", l.opts.Origin, "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	b, err := marshalSCT(sct)
	if err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// readBody reads a request body of at most max bytes, into a buffer of
// the size the request announces, up to maxPresized: a client that
// announces more and sends it slowly holds no more memory than what it
// sent.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= max {
		// ReadFrom wants MinRead bytes free for each read, the last one
		// (which sees the end) included.
		buf.Grow(int(min(n, maxPresized)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	return buf.Bytes(), err
}

// maxPresized bounds the buffer a body is read into before it comes: a
// chain of a few certificates is a few KB.
const maxPresized = 64 << 10

// decodeChain decodes an add-chain body, {"chain":["...",...]} (RFC 6962
// section 4.1), when it has the shape ct-go's client and Boulder write:
// that one member, no escapes, no whitespace but at the ends. ok is false
// for anything else, which encoding/json then decodes or refuses: its
// reflection and unquoting cost more than the verification's parse of
// the leaf. The certificates share one buffer.
func decodeChain(b []byte) (chain [][]byte, ok bool) {
	b = bytes.TrimSpace(b)
	const head = `{"chain":[`
	if !bytes.HasPrefix(b, []byte(head)) {
		return nil, false
	}
	b = b[len(head):]
	if string(b) == "]}" {
		return [][]byte{}, true
	}
	buf := make([]byte, 0, base64.StdEncoding.DecodedLen(len(b)))
	for {
		if len(b) == 0 || b[0] != '"' {
			return nil, false
		}
		at := len(buf)
		if buf, b, ok = b64json.AppendString(buf, b[1:]); !ok {
			return nil, false
		}
		chain = append(chain, buf[at:len(buf):len(buf)])
		switch {
		case len(b) > 0 && b[0] == ',':
			b = b[1:]
		case string(b) == "]}":
			return chain, true
		default:
			return nil, false
		}
	}
}

// unavailable reports whether err is an outage of the log's storage.
func (l *Log) unavailable(ctx context.Context, err error) bool {
	return err != nil && l.opts.Unavailable != nil && l.opts.Unavailable(ctx, err)
}

// serveUnavailable answers 503 with a Retry-After, for a storage outage.
func serveUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, "Service Unavailable\nthe log's storage is unavailable; retry", http.StatusServiceUnavailable)
}

func (l *Log) serveRoots(w http.ResponseWriter, _ *http.Request) {
	var rsp struct {
		Certificates []string `json:"certificates"`
	}
	for _, r := range l.chains.roots {
		rsp.Certificates = append(rsp.Certificates, base64.StdEncoding.EncodeToString(r.Raw))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rsp)
}

func (l *Log) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, _, err := l.servedCheckpoint(r.Context())
	if err != nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Service Unavailable\nno checkpoint yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, max-age=0") // mutable
	w.Write(cp)
}

// tilePath matches tile/<L>/<N>[.p/<W>] and tile/data/<N>[.p/<W>]
// (c2sp.org/static-ct-api): L 0-5, N in 3-digit elements all but the
// last prefixed x (1234067 is x001/x234/067), W 1-255, no leading zeroes.
var tilePath = regexp.MustCompile(`^tile/(data|[0-5])/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?$`)

// parseTile reads a tile path (without the log's prefix): its level
// (dataLevel for a data tile), index and width; false when p is not one.
func parseTile(p string) (level, n, width uint64, ok bool) {
	m := tilePath.FindStringSubmatch(p)
	if m == nil {
		return 0, 0, 0, false
	}
	n, err := strconv.ParseUint(strings.NewReplacer("x", "", "/", "").Replace(m[2]), 10, 64)
	if err == nil && layout.NWithSuffix(0, n, 0) != m[2] {
		// Not the one encoding of n (an element x000 in front).
		return 0, 0, 0, false
	}
	level = dataLevel
	if m[1] != "data" {
		level, _ = strconv.ParseUint(m[1], 10, 8)
	}
	width = entriesPerTile
	if m[3] != "" {
		width, _ = strconv.ParseUint(m[3], 10, 16)
	}
	if err != nil || width >= entriesPerTile && m[3] != "" {
		return 0, 0, 0, false
	}
	return level, n, width, true
}

func (l *Log) serveTile(w http.ResponseWriter, r *http.Request) {
	level, n, width, ok := parseTile(strings.TrimPrefix(r.URL.Path, "/"))
	if !ok {
		http.Error(w, "Not Found\nnot a tile path", http.StatusNotFound)
		return
	}
	// Never a tile wider than the published checkpoint: a partial tile
	// the checkpoint does not require is not served, even if written.
	need, ok := tileNeeds(hashLevel(level), n, width)
	if !ok {
		http.Error(w, "Not Found\nno such tile in the published tree", http.StatusNotFound)
		return
	}
	size, err := l.servedSize(r.Context(), need)
	if l.unavailable(r.Context(), err) {
		// Not a 404: a monitor would take that for a tile the log
		// committed to and lost.
		serveUnavailable(w)
		return
	}
	if err != nil || size < need {
		http.Error(w, "Not Found\nno such tile in the published tree", http.StatusNotFound)
		return
	}
	b, err := l.readTile(r.Context(), level, n, width)
	l.serveStored(w, r, b, err, "application/octet-stream", level == dataLevel)
}

// tileNeeds is the tree size that holds tile n of level with that width
// entirely; false when no tree of 2^40 entries or fewer does.
func tileNeeds(level, n, width uint64) (uint64, bool) {
	span := uint64(1) << (8 * level) // leaves per tile entry
	if level > 5 || n > (1<<40)/span/entriesPerTile {
		return 0, false
	}
	return (n*entriesPerTile + width) * span, true
}

func (l *Log) serveIssuer(w http.ResponseWriter, r *http.Request) {
	fp := r.PathValue("fp")
	if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
		http.Error(w, "Not Found\nan issuer is named by its lower-case hex SHA-256", http.StatusNotFound)
		return
	}
	b, err := l.store.issuer(r.Context(), fp)
	l.serveStored(w, r, b, err, "application/pkix-cert", false)
}

// serveStored serves an immutable resource read from storage (err is the
// read's: fs.ErrNotExist is a 404, others a 500 logged here),
// gzip-compressed when compress is set and the client accepts gzip (data
// tiles, which the spec says SHOULD be compressed).
func (l *Log) serveStored(w http.ResponseWriter, r *http.Request, b []byte, err error, ctype string, compress bool) {
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	if l.unavailable(r.Context(), err) {
		serveUnavailable(w)
		return
	}
	if err != nil {
		l.opts.Logger.Error("couldn't read from the log's storage", "origin", l.opts.Origin, "path", r.URL.Path, "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if compress && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(w)
		zw.Write(b)
		zw.Close()
		gzipWriters.Put(zw)
		return
	}
	w.Write(b)
}

// gzipWriters are reused: a new gzip.Writer allocates some 800 KB of
// state, which a data tile (up to ~400 KB) does not justify each time.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// checkpointSize reads a published checkpoint's tree size.
func checkpointSize(cp []byte, origin string) (uint64, error) {
	body, _, ok := strings.Cut(string(cp), "\n\n")
	if !ok {
		return 0, errors.New("tiled: the checkpoint has no signature")
	}
	size, _, err := parseCheckpointBody(body+"\n", origin)
	return size, err
}

// bundleEntries reads the timestamp and the end offset of every
// TileLeaf of a data tile (c2sp.org/static-ct-api, "Log entries").
func bundleEntries(bundle []byte) (timestamps []uint64, ends []int, err error) {
	s := cryptobyte.String(bundle)
	truncated := errors.New("tiled: truncated data tile")
	for !s.Empty() {
		var ts uint64
		var typ uint16
		var skip cryptobyte.String
		if !s.ReadUint64(&ts) || !s.ReadUint16(&typ) {
			return nil, nil, truncated
		}
		switch typ {
		case 0: // x509_entry: the certificate
			if !s.ReadUint24LengthPrefixed(&skip) {
				return nil, nil, truncated
			}
		case 1: // precert_entry: issuer key hash, TBS
			if !s.Skip(32) || !s.ReadUint24LengthPrefixed(&skip) {
				return nil, nil, truncated
			}
		default:
			return nil, nil, fmt.Errorf("tiled: entry type %d in a data tile", typ)
		}
		if !s.ReadUint16LengthPrefixed(&skip) { // extensions
			return nil, nil, truncated
		}
		if typ == 1 && !s.ReadUint24LengthPrefixed(&skip) { // pre_certificate
			return nil, nil, truncated
		}
		if !s.ReadUint16LengthPrefixed(&skip) { // certificate_chain
			return nil, nil, truncated
		}
		timestamps = append(timestamps, ts)
		ends = append(ends, len(bundle)-len(s))
	}
	return timestamps, ends, nil
}
