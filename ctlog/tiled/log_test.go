package tiled_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/sunlight"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ctlog/tiled"
	"github.com/ctstage/ctstage/internal/mysqldb"
	"github.com/ctstage/ctstage/internal/testsupport/testca"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage"
)

// testLog is a tiled log behind a real HTTP server at /tiled/test/.
type testLog struct {
	log    *tiled.Log
	reg    *prometheus.Registry
	srv    *httptest.Server
	ca     *testca.CA
	key    *ecdsa.PrivateKey
	where  backend
	prefix string // submission and monitoring prefix, with the trailing slash
	// forked shows the log's split view (Log.ForkHandler) to every client.
	forked atomic.Bool
}

// backend is where a test log lives: a directory (POSIX), or a MySQL
// database.
type backend struct {
	dir string
	db  *sql.DB
}

// backends are the two storages a tiled log runs on; the MySQL one skips
// loudly without a server, and fails under CI=true.
var backends = []struct {
	name string
	new  func(t *testing.T) backend
}{
	{"posix", func(t *testing.T) backend { return backend{dir: t.TempDir()} }},
	{"mysql", func(t *testing.T) backend {
		dsn, err := storage.MySQLDSN(testenv.MySQL(t))
		if err != nil {
			t.Fatal(err)
		}
		db, err := mysqldb.Open(dsn, 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return backend{db: db}
	}},
}

// start starts a log on where, with the options set changed by set.
func start(t testing.TB, where backend, key *ecdsa.PrivateKey, ca *testca.CA, set ...func(*tiled.Options)) *testLog {
	t.Helper()
	tl := &testLog{ca: ca, key: key, where: where, reg: prometheus.NewRegistry()}
	tl.srv = httptest.NewUnstartedServer(nil)
	host := tl.srv.Listener.Addr().String()
	opts := tiled.Options{
		Origin: host + "/tiled/test", Dir: where.dir, DB: where.db, Key: key, Roots: [][]byte{ca.Root.Raw},
		Logger: slog.New(slog.DiscardHandler), Name: "test", Registerer: tl.reg,
	}
	for _, f := range set {
		f(&opts)
	}
	l, err := tiled.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	tl.log = l
	mux := http.NewServeMux()
	h := l.Handler()
	mux.Handle("/tiled/test/", http.StripPrefix("/tiled/test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tl.forked.Load() {
			ep := "checkpoint"
			switch {
			case strings.HasPrefix(r.URL.Path, "/tile/data/"):
				ep = "data-tile"
			case strings.HasPrefix(r.URL.Path, "/tile/"):
				ep = "tile"
			}
			if fh := l.ForkHandler(r.Context(), ep, r.URL.Path, h); fh != nil {
				fh.ServeHTTP(w, r)
				return
			}
		}
		h.ServeHTTP(w, r)
	})))
	tl.srv.Config.Handler = mux
	tl.srv.Start()
	tl.prefix = tl.srv.URL + "/tiled/test/"
	t.Cleanup(func() { tl.stop(t) })
	return tl
}

func (tl *testLog) stop(t testing.TB) {
	if tl.srv == nil {
		return
	}
	tl.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tl.log.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	tl.srv = nil
}

// ctClient is ct-go's RFC 6962 client, which verifies every SCT's
// signature, extensions included, with the log's key.
func (tl *testLog) ctClient(t *testing.T) *client.LogClient {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(tl.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(tl.prefix, http.DefaultClient, jsonclient.Options{PublicKeyDER: der})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (tl *testLog) sunlight(t *testing.T) *sunlight.Client {
	t.Helper()
	c, err := sunlight.NewClient(&sunlight.ClientConfig{
		MonitoringPrefix: tl.prefix, PublicKey: tl.key.Public(),
		UserAgent: "ctstage tests (+https://github.com/ctstage/ctstage)",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func asn1(chain [][]byte) []ct.ASN1Cert {
	var out []ct.ASN1Cert
	for _, c := range chain {
		out = append(out, ct.ASN1Cert{Data: c})
	}
	return out
}

// leafIndex reads an SCT's leaf_index extension.
func leafIndex(t *testing.T, sct *ct.SignedCertificateTimestamp) uint64 {
	t.Helper()
	e := sct.Extensions
	if len(e) != 8 || e[0] != 0 || e[1] != 0 || e[2] != 5 {
		t.Fatalf("SCT extensions %x: want exactly one leaf_index extension", e)
	}
	var idx uint64
	for _, b := range e[3:] {
		idx = idx<<8 | uint64(b)
	}
	return idx
}

// TestTiledLog submits certificates and precertificates over HTTP with
// ct-go's client (which verifies each SCT), follows the log with
// Sunlight's client (checkpoint signature, every entry, and the SCTs'
// inclusion from tiles), and checks duplicates, refusals, the tile
// bound, and a restart, on the POSIX and the MySQL backend.
func TestTiledLog(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testTiledLog(t, b.new(t)) })
	}
}

func testTiledLog(t *testing.T, where backend) {
	ca, err := testca.New("tiled test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tl := start(t, where, key, ca)
	c := tl.ctClient(t)
	ctx := t.Context()
	notAfter := time.Now().AddDate(0, 0, 90)

	type sub struct {
		chain   [][]byte
		precert bool
		sct     *ct.SignedCertificateTimestamp
	}
	var subs []sub
	for i := range 6 {
		precert := i%2 == 1
		chain, err := ca.Leaf(fmt.Sprintf("tiled-%d.example.com", i), notAfter, precert)
		if err != nil {
			t.Fatal(err)
		}
		add := c.AddChain
		if precert {
			add = c.AddPreChain
		}
		sct, err := add(ctx, asn1(chain))
		if err != nil {
			t.Fatalf("add %d (precert %v): %v", i, precert, err)
		}
		if got := leafIndex(t, sct); got != uint64(i) {
			t.Errorf("submission %d got leaf_index %d", i, got)
		}
		subs = append(subs, sub{chain, precert, sct})
	}

	// A duplicate gets the original SCT: same index, same timestamp.
	again, err := c.AddChain(ctx, asn1(subs[0].chain))
	if err != nil {
		t.Fatal(err)
	}
	if again.Timestamp != subs[0].sct.Timestamp || leafIndex(t, again) != 0 {
		t.Errorf("duplicate: timestamp %d index %d, want %d and 0", again.Timestamp, leafIndex(t, again), subs[0].sct.Timestamp)
	}

	// A body of another shape (spaces, escaped slashes, as Python's json
	// writes) goes through encoding/json: the same duplicate's SCT.
	var parts []string
	for _, c := range subs[0].chain {
		parts = append(parts, `"`+strings.ReplaceAll(b64(c), "/", `\/`)+`"`)
	}
	srsp, err := http.Post(tl.prefix+"ct/v1/add-chain", "application/json",
		strings.NewReader(`{"chain": [`+strings.Join(parts, ", ")+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	var spaced ct.AddChainResponse
	err = json.NewDecoder(srsp.Body).Decode(&spaced)
	srsp.Body.Close()
	if err != nil || srsp.StatusCode != http.StatusOK || spaced.Timestamp != subs[0].sct.Timestamp {
		t.Errorf("add-chain with spaces and escapes: %d, timestamp %d (%v), want 200 and %d", srsp.StatusCode, spaced.Timestamp, err, subs[0].sct.Timestamp)
	}

	sc := tl.sunlight(t)
	checkpoint, _, err := sc.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Sunlight refuses the checkpoint: %v", err)
	}
	if checkpoint.N != int64(len(subs)) {
		t.Fatalf("checkpoint size %d, want %d", checkpoint.N, len(subs))
	}
	n := 0
	for i, e := range sc.Entries(ctx, checkpoint.Tree, 0) {
		if e.LeafIndex != i || e.IsPrecert != subs[i].precert || e.Timestamp != int64(subs[i].sct.Timestamp) {
			t.Errorf("entry %d: index %d precert %v timestamp %d, want %v %d", i, e.LeafIndex, e.IsPrecert, e.Timestamp, subs[i].precert, subs[i].sct.Timestamp)
		}
		if !subs[i].precert && !bytes.Equal(e.Certificate, subs[i].chain[0]) {
			t.Errorf("entry %d holds another certificate", i)
		}
		if subs[i].precert && !bytes.Equal(e.PreCertificate, subs[i].chain[0]) {
			t.Errorf("entry %d holds another precertificate", i)
		}
		n++
	}
	if err := sc.Err(); err != nil || n != len(subs) {
		t.Fatalf("Sunlight read %d entries: %v", n, err)
	}
	for i, s := range subs {
		raw, err := tls.Marshal(*s.sct)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := sc.CheckInclusion(ctx, checkpoint.Tree, raw); err != nil {
			t.Errorf("SCT %d: inclusion from tiles: %v", i, err)
		}
	}
	fp := subs[0].chain[1]
	if iss, err := sc.Issuer(ctx, sha256Sum(fp)); err != nil || !bytes.Equal(iss.Raw, fp) {
		t.Errorf("issuer/%x: %v", sha256Sum(fp), err)
	}

	// Bad input: 400 with a message, and nothing logged.
	other, _ := testca.New("not accepted")
	foreign, _ := other.Leaf("foreign.example.com", notAfter, false)
	pre, _ := ca.Leaf("pre.example.com", notAfter, true)
	for name, body := range map[string]string{
		"empty body":             "",
		"not JSON":               "{",
		"empty chain":            `{"chain":[]}`,
		"garbage certificate":    `{"chain":["AAAA"]}`,
		"unknown root":           chainJSON(foreign),
		"precert to add-chain":   chainJSON(pre),
		"leaf without its chain": chainJSON(foreign[:1]),
	} {
		rsp, err := http.Post(tl.prefix+"ct/v1/add-chain", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusBadRequest || len(b) < 20 {
			t.Errorf("%s: %d %q, want 400 with a message", name, rsp.StatusCode, b)
		}
	}

	// Never a tile wider than the published checkpoint, nor Tessera's state.
	for path, want := range map[string]int{
		fmt.Sprintf("tile/0/000.p/%d", len(subs)):    200,
		fmt.Sprintf("tile/data/000.p/%d", len(subs)): 200,
		fmt.Sprintf("tile/0/000.p/%d", len(subs)+1):  404,
		"tile/0/000":                        404,
		"tile/6/000":                        404,
		"tile/0/0001":                       404,
		".state/treeState":                  404,
		"tile/../.state/treeState":          404,
		"issuer/" + strings.Repeat("0", 64): 404,
	} {
		rsp, err := http.Get(tl.prefix + path)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, rsp.StatusCode, want)
		}
		if want == 200 && !strings.Contains(rsp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: Cache-Control %q", path, rsp.Header.Get("Cache-Control"))
		}
		if want != 200 && rsp.Header.Get("Cache-Control") != "" {
			t.Errorf("GET %s: an error with Cache-Control %q", path, rsp.Header.Get("Cache-Control"))
		}
	}

	// Data tiles come gzip-compressed to a client that accepts it.
	req, _ := http.NewRequest(http.MethodGet, tl.prefix+fmt.Sprintf("tile/data/000.p/%d", len(subs)), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rsp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(rsp.Body)
	if err != nil || rsp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("data tile with Accept-Encoding gzip: %v, Content-Encoding %q", err, rsp.Header.Get("Content-Encoding"))
	}
	zipped, _ := io.ReadAll(zr)
	rsp.Body.Close()
	rsp, err = http.Get(tl.prefix + fmt.Sprintf("tile/data/000.p/%d", len(subs)))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if !bytes.Equal(zipped, plain) || len(plain) == 0 {
		t.Errorf("the gzip data tile (%d bytes) is not the plain one (%d bytes)", len(zipped), len(plain))
	}

	// The metrics count what happened.
	for sample, want := range map[string]float64{
		`ctstage_tiled_submissions_total{endpoint="add-chain",outcome="accepted",shard="test"}`:     5,
		`ctstage_tiled_submissions_total{endpoint="add-pre-chain",outcome="accepted",shard="test"}`: 3,
		`ctstage_tiled_submissions_total{endpoint="add-chain",outcome="rejected",shard="test"}`:     7,
		`ctstage_tiled_checkpoint_size{shard="test"}`:                                               6,
		`ctstage_tiled_sct_seconds_count{shard="test"}`:                                             8,
	} {
		if got := gather(t, tl.reg, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}

	// A restart keeps the tree; the new checkpoint is the old one's size.
	tl.stop(t)
	tl = start(t, where, key, ca)
	sc = tl.sunlight(t)
	after, _, err := sc.Checkpoint(ctx)
	if err != nil || after.N != checkpoint.N || after.Hash != checkpoint.Hash {
		t.Errorf("after a restart: checkpoint %+v, %v; want %+v", after, err, checkpoint)
	}
	// The antispam index survived it: every duplicate gets its original
	// SCT, and the tree does not grow.
	c = tl.ctClient(t)
	for i, s := range subs {
		add := c.AddChain
		if s.precert {
			add = c.AddPreChain
		}
		dup, err := add(ctx, asn1(s.chain))
		if err != nil {
			t.Fatalf("duplicate %d after a restart: %v", i, err)
		}
		if dup.Timestamp != s.sct.Timestamp || leafIndex(t, dup) != uint64(i) {
			t.Errorf("duplicate %d after a restart: timestamp %d index %d, want %d and %d", i, dup.Timestamp, leafIndex(t, dup), s.sct.Timestamp, i)
		}
	}
	if got := gather(t, tl.reg, `ctstage_tiled_checkpoint_size{shard="test"}`); got != float64(len(subs)) {
		t.Errorf("after duplicates, checkpoint size %v, want %d", got, len(subs))
	}

	// Partial tiles are cut to the width asked: each width up to the tree
	// size serves exactly that many hashes, and a data tile of one entry
	// more than the one before.
	var prev []byte
	for w := 1; w <= len(subs); w++ {
		b := get(t, tl.prefix+fmt.Sprintf("tile/0/000.p/%d", w))
		if len(b) != 32*w {
			t.Errorf("tile/0/000.p/%d: %d bytes, want %d", w, len(b), 32*w)
		}
		d := get(t, tl.prefix+fmt.Sprintf("tile/data/000.p/%d", w))
		if len(d) <= len(prev) || !bytes.HasPrefix(d, prev) {
			t.Errorf("tile/data/000.p/%d (%d bytes) does not extend the tile of width %d (%d bytes)", w, len(d), w-1, len(prev))
		}
		prev = d
	}

	// Past the first tile: 300 more entries, submitted at once, make a
	// full data tile and a partial one, which Sunlight's client reads
	// entry by entry, proving each SCT's inclusion.
	type more struct {
		chain [][]byte
		sct   *ct.SignedCertificateTimestamp
	}
	extra := make([]more, 300)
	errs := make(chan error, len(extra))
	for i := range extra {
		go func() {
			chain, err := ca.Leaf(fmt.Sprintf("more-%d.example.com", i), notAfter, false)
			if err == nil {
				extra[i].chain = chain
				extra[i].sct, err = c.AddChain(ctx, asn1(chain))
			}
			errs <- err
		}()
	}
	for range extra {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	sc = tl.sunlight(t)
	cp, _, err := sc.Checkpoint(ctx)
	if err != nil || cp.N != int64(len(subs)+len(extra)) {
		t.Fatalf("checkpoint after %d more: %+v, %v", len(extra), cp, err)
	}
	// Sunlight's Entries may stop before a partial data tile: resumed
	// with the same tree, it reads the rest.
	byIndex := map[int64][]byte{}
	for round := 0; len(byIndex) < int(cp.N) && round < 3; round++ {
		for i, e := range sc.Entries(ctx, cp.Tree, int64(len(byIndex))) {
			byIndex[i] = e.Certificate
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if len(byIndex) != int(cp.N) {
		t.Fatalf("Sunlight read %d entries of %d", len(byIndex), cp.N)
	}
	// Every width of the last, partial tile is served exactly, also the
	// widths no batch ended at (300 concurrent submissions leave gaps).
	last := cp.N % 256
	var prevData []byte
	for w := int64(1); w <= last; w++ {
		h := get(t, fmt.Sprintf("%stile/0/001.p/%d", tl.prefix, w))
		d := get(t, fmt.Sprintf("%stile/data/001.p/%d", tl.prefix, w))
		if len(h) != 32*int(w) || len(d) <= len(prevData) || !bytes.HasPrefix(d, prevData) {
			t.Errorf("width %d of the partial tile: %d hash bytes, data %d bytes after %d", w, len(h), len(d), len(prevData))
		}
		prevData = d
	}
	for i, m := range extra {
		idx := leafIndex(t, m.sct)
		if !bytes.Equal(byIndex[int64(idx)], m.chain[0]) {
			t.Errorf("extra entry %d: not at its leaf_index %d", i, idx)
		}
		if i%50 == 0 {
			raw, _ := tls.Marshal(*m.sct)
			if _, _, err := sc.CheckInclusion(ctx, cp.Tree, raw); err != nil {
				t.Errorf("extra entry %d: inclusion: %v", i, err)
			}
		}
	}
}

// get fetches a URL that must answer 200.
func get(t *testing.T, url string) []byte {
	t.Helper()
	rsp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q", url, rsp.StatusCode, b)
	}
	return b
}

// TestTiledRepublish: the checkpoint of a log that does not grow is
// signed afresh every RepublishInterval, with the same tree, as an idle
// RFC 6962 shard's STH is: monitors tell a quiet log from a frozen one
// by it.
func TestTiledRepublish(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ca, err := testca.New("tiled republish")
			if err != nil {
				t.Fatal(err)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tl := start(t, b.new(t), key, ca, func(o *tiled.Options) { o.RepublishInterval = time.Second })
			chain, err := ca.Leaf("republish.example.com", time.Now().AddDate(0, 0, 30), false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tl.ctClient(t).AddChain(t.Context(), asn1(chain)); err != nil {
				t.Fatal(err)
			}
			first := get(t, tl.prefix+"checkpoint")
			body, ts := splitCheckpoint(t, first)
			deadline := time.Now().Add(15 * time.Second)
			for {
				time.Sleep(200 * time.Millisecond)
				cp := get(t, tl.prefix+"checkpoint")
				if b2, ts2 := splitCheckpoint(t, cp); ts2 > ts {
					if b2 != body {
						t.Fatalf("the re-signed checkpoint has another tree:\n%s\nwant\n%s", b2, body)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no checkpoint signed after %d in 15 s of an idle log (republish interval 1 s)", ts)
				}
			}
		})
	}
}

// splitCheckpoint is a checkpoint's body (origin, size, root) and its
// RFC6962NoteSignature's timestamp.
func splitCheckpoint(t *testing.T, cp []byte) (string, uint64) {
	t.Helper()
	body, sigs, ok := strings.Cut(string(cp), "\n\n")
	if !ok {
		t.Fatalf("not a signed note: %q", cp)
	}
	for _, line := range strings.Split(sigs, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(f[2])
		if err == nil && len(sig) >= 12 {
			return body, binary.BigEndian.Uint64(sig[4:12])
		}
	}
	t.Fatalf("no RFC6962NoteSignature in %q", cp)
	return "", 0
}

// gather reads one sample, written as in the text exposition format.
func gather(t *testing.T, reg *prometheus.Registry, sample string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			var labels []string
			for _, lp := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			name, value := mf.GetName(), 0.0
			switch {
			case m.Counter != nil:
				value = m.Counter.GetValue()
			case m.Gauge != nil:
				value = m.Gauge.GetValue()
			case m.Histogram != nil:
				name, value = name+"_count", float64(m.Histogram.GetSampleCount())
			}
			if name+"{"+strings.Join(labels, ",")+"}" == sample {
				return value
			}
		}
	}
	return -1
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func chainJSON(chain [][]byte) string {
	var parts []string
	for _, c := range chain {
		parts = append(parts, `"`+b64(c)+`"`)
	}
	return `{"chain":[` + strings.Join(parts, ",") + `]}`
}

// TestTiledVanished: a log whose checkpoint is gone while its tiles stay
// is refused; one stopped before its first checkpoint, with no entry
// (its identity recorded, nothing else), starts again.
func TestTiledVanished(t *testing.T) {
	ca, err := testca.New("vanished test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	open := func(dir string) (*tiled.Log, error) {
		return tiled.New(t.Context(), tiled.Options{Origin: "example.test/vanished", Dir: dir, Key: key,
			Roots: [][]byte{ca.Root.Raw}, Logger: slog.New(slog.DiscardHandler)})
	}
	// No entry: the checkpoint removed as if never written.
	empty := t.TempDir()
	l, err := open(empty)
	if err != nil {
		t.Fatal(err)
	}
	l.Close(t.Context())
	if err := os.Remove(filepath.Join(empty, "checkpoint")); err != nil {
		t.Fatal(err)
	}
	if l, err = open(empty); err != nil {
		t.Fatalf("a log with no entry and no checkpoint: %v, want it to start", err)
	}
	l.Close(t.Context())

	// Entries: refused.
	full := t.TempDir()
	tl := start(t, backend{dir: full}, key, ca)
	chain, err := ca.Leaf("vanished.example.com", time.Now().AddDate(0, 0, 30), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.ctClient(t).AddChain(t.Context(), asn1(chain)); err != nil {
		t.Fatal(err)
	}
	tl.stop(t)
	if err := os.Remove(filepath.Join(full, "checkpoint")); err != nil {
		t.Fatal(err)
	}
	if l, err := open(full); err == nil || !strings.Contains(err.Error(), "vanished") {
		if l != nil {
			l.Close(t.Context())
		}
		t.Errorf("a log with tiles and no checkpoint: %v, want a refusal", err)
	}
}
