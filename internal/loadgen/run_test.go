package loadgen

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// fakeLog is a tiny RFC 6962 log: it signs real SCTs and STHs, integrates
// what is pending on every integrateEvery-th get-sth (so that every STH it
// makes is seen by the one client polling it), and remembers, for each
// entry, its SCT timestamp and the timestamp of the first STH including it,
// to check Run's merge delays against. It fails the test when a submission
// is not a fresh precertificate chain under issuer, and can refuse
// submissions, sign SCTs with the wrong key, drop entries and truncate
// get-entries.
type fakeLog struct {
	t                      *testing.T
	key, wrongKey          *ecdsa.PrivateKey
	pubDER                 []byte
	logID                  [32]byte
	issuer                 *x509.Certificate
	integrateEvery         int // integrate on every n-th get-sth
	rejectEvery            int // answer 400 to every n-th add-pre-chain
	badSigEvery            int // sign every n-th SCT with the wrong key
	dropEvery              int // never integrate every n-th accepted entry
	maxEntries             int // get-entries returns at most this many
	mu                     sync.Mutex
	adds, sthCalls         int
	seen                   map[[32]byte]bool
	pending                []fakeEntry
	entries                []fakeEntry
	sth                    ct.SignedTreeHead
	rejected, badSigs, drp int
}

type fakeEntry struct {
	leafInput []byte
	sctTime   uint64
	sthTime   uint64 // of the first STH that includes it
}

func newFakeLog(t *testing.T, issuer *x509.Certificate) *fakeLog {
	t.Helper()
	f := &fakeLog{t: t, issuer: issuer, integrateEvery: 1, maxEntries: 1000, seen: map[[32]byte]bool{}}
	var err error
	if f.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if f.wrongKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if f.pubDER, err = x509.MarshalPKIXPublicKey(f.key.Public()); err != nil {
		t.Fatal(err)
	}
	f.logID = sha256.Sum256(f.pubDER)
	f.signSTH(uint64(time.Now().UnixMilli()))
	return f
}

func (f *fakeLog) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ct/v1/add-pre-chain", f.addPreChain)
	mux.HandleFunc("GET /ct/v1/get-sth", f.getSTH)
	mux.HandleFunc("GET /ct/v1/get-entries", f.getEntries)
	return mux
}

func (f *fakeLog) addPreChain(w http.ResponseWriter, r *http.Request) {
	var req ct.AddChainRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.t.Errorf("add-pre-chain: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	chain := make([]ct.ASN1Cert, len(req.Chain))
	for i, c := range req.Chain {
		chain[i] = ct.ASN1Cert{Data: c}
	}
	f.checkChain(chain)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adds++
	if f.rejectEvery > 0 && f.adds%f.rejectEvery == 0 {
		f.rejected++
		http.Error(w, "Bad Request\nfake rejection", http.StatusBadRequest)
		return
	}
	ts := uint64(time.Now().UnixMilli())
	leaf, err := ct.MerkleTreeLeafFromRawChain(chain, ct.PrecertLogEntryType, ts)
	if err != nil {
		f.t.Fatalf("add-pre-chain: %v", err)
	}
	key := f.key
	if f.badSigEvery > 0 && f.adds%f.badSigEvery == 0 {
		key = f.wrongKey
		f.badSigs++
	}
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: f.logID}, Timestamp: ts}
	input, err := ct.SerializeSCTSignatureInput(sct, ct.LogEntry{Leaf: *leaf})
	if err != nil {
		f.t.Fatal(err)
	}
	if f.dropEvery > 0 && f.adds%f.dropEvery == 0 {
		f.drp++
	} else {
		f.pending = append(f.pending, fakeEntry{leafInput: mustTLS(f.t, *leaf), sctTime: ts})
	}
	writeJSON(w, ct.AddChainResponse{
		SCTVersion: ct.V1, ID: f.logID[:], Timestamp: ts,
		Signature: mustTLS(f.t, mustSign(f.t, key, input)),
	})
}

// checkChain fails the test unless chain is a precertificate never seen
// before, then issuer, then one more certificate.
func (f *fakeLog) checkChain(chain []ct.ASN1Cert) {
	if len(chain) != 3 || !bytes.Equal(chain[1].Data, f.issuer.Raw) {
		f.t.Errorf("add-pre-chain: chain of %d, want precert, issuer, root", len(chain))
		return
	}
	c, err := ctx509.ParseCertificate(chain[0].Data)
	if ctx509.IsFatal(err) {
		f.t.Errorf("add-pre-chain: %v", err)
		return
	}
	if !c.IsPrecertificate() {
		f.t.Error("add-pre-chain: not a precertificate")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h := sha256.Sum256(chain[0].Data)
	if f.seen[h] {
		f.t.Error("add-pre-chain: duplicate precertificate")
	}
	f.seen[h] = true
}

func (f *fakeLog) getSTH(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sthCalls++
	if f.sthCalls%f.integrateEvery == 0 && len(f.pending) > 0 {
		now := uint64(time.Now().UnixMilli())
		for _, e := range f.pending {
			e.sthTime = now
			f.entries = append(f.entries, e)
		}
		f.pending = nil
		f.signSTH(now)
	}
	writeJSON(w, ct.GetSTHResponse{
		TreeSize: f.sth.TreeSize, Timestamp: f.sth.Timestamp, SHA256RootHash: f.sth.SHA256RootHash[:],
		TreeHeadSignature: mustTLS(f.t, f.sth.TreeHeadSignature),
	})
}

// signSTH makes the STH of every entry so far. The root hash is not a real
// Merkle tree hash: nothing here checks it.
func (f *fakeLog) signSTH(ts uint64) {
	f.sth = ct.SignedTreeHead{Version: ct.V1, TreeSize: uint64(len(f.entries)), Timestamp: ts,
		SHA256RootHash: sha256.Sum256([]byte(strconv.Itoa(len(f.entries))))}
	input, err := ct.SerializeSTHSignatureInput(f.sth)
	if err != nil {
		f.t.Fatal(err)
	}
	f.sth.TreeHeadSignature = mustSign(f.t, f.key, input)
}

func (f *fakeLog) getEntries(w http.ResponseWriter, r *http.Request) {
	start, err1 := strconv.ParseUint(r.URL.Query().Get("start"), 10, 64)
	end, err2 := strconv.ParseUint(r.URL.Query().Get("end"), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err1 != nil || err2 != nil || start > end || end >= f.sth.TreeSize {
		http.Error(w, "Bad Request\nbad range", http.StatusBadRequest)
		return
	}
	end = min(end, start+uint64(f.maxEntries)-1)
	var resp ct.GetEntriesResponse
	for _, e := range f.entries[start : end+1] {
		resp.Entries = append(resp.Entries, ct.LeafEntry{LeafInput: e.leafInput})
	}
	writeJSON(w, resp)
}

// wantMergeDelays is the merge delay of every integrated entry.
func (f *fakeLog) wantMergeDelays() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ds []time.Duration
	for _, e := range f.entries {
		ds = append(ds, time.Duration(e.sthTime-e.sctTime)*time.Millisecond)
	}
	return ds
}

func mustTLS(t *testing.T, v any) []byte {
	b, err := tls.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSign(t *testing.T, key *ecdsa.PrivateKey, data []byte) ct.DigitallySigned {
	h := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return ct.DigitallySigned{
		Algorithm: tls.SignatureAndHashAlgorithm{Hash: tls.SHA256, Signature: tls.ECDSA},
		Signature: sig,
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func TestRunAgainstFakeLog(t *testing.T) {
	tca := newTestCA(t)
	f := newFakeLog(t, tca.inter)
	f.integrateEvery, f.rejectEvery, f.badSigEvery, f.dropEvery, f.maxEntries = 3, 17, 23, 29, 7
	srv := httptest.NewServer(f.handler())
	defer srv.Close()

	cfg := *tca.config(time.Now().AddDate(0, 0, 90))
	cfg.LogURL, cfg.LogPublicKey = srv.URL+"/", f.pubDER
	cfg.Clients, cfg.Total = 8, 200
	cfg.STHInterval, cfg.MergeWait = 5*time.Millisecond, 500*time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", res)

	f.mu.Lock()
	rejected, badSigs, dropped := f.rejected, f.badSigs, f.drp
	f.mu.Unlock()
	accepted := 200 - rejected
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"submitted", res.Submitted, 200},
		{"accepted", res.Accepted, accepted},
		{"latencies", res.Latency.N, accepted},
		{"integrated", res.Integrated, accepted - dropped},
		{"not integrated", res.NotIntegrated, dropped},
		{"SCTs verified", res.SCTsVerified, accepted},
		{"invalid SCTs", res.InvalidSCTs, badSigs},
		{"failed", res.Failed, rejected + dropped + badSigs},
		{"rejections counted", res.Errors["HTTP 400: Bad Request fake rejection"], rejected},
		{"end tree size", int(res.EndSize), accepted - dropped},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if want := summarize(f.wantMergeDelays()); res.MergeDelay != want {
		t.Errorf("merge delay = %+v, want %+v", res.MergeDelay, want)
	}
	if res.OK() {
		t.Error("OK() with failures")
	}
}

func TestRunAtRate(t *testing.T) {
	tca := newTestCA(t)
	f := newFakeLog(t, tca.inter)
	srv := httptest.NewServer(f.handler())
	defer srv.Close()

	cfg := *tca.config(time.Now().AddDate(0, 0, 90))
	cfg.LogURL, cfg.Clients = srv.URL, 4
	cfg.Rate, cfg.Duration = 100, 95*time.Millisecond // Total = 10, at 0, 10, ... 90 ms
	cfg.STHInterval = 5 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Submitted != 10 || !res.OK() || res.Integrated != 10 {
		t.Errorf("submitted %d, integrated %d, OK %v; want 10, 10, true:\n%s", res.Submitted, res.Integrated, res.OK(), res)
	}
	if el := time.Duration(res.Elapsed); el < 90*time.Millisecond {
		t.Errorf("elapsed %s: the rate was not kept", el)
	}
	if res.SCTsVerified != 0 || !strings.Contains(res.String(), "not verified") {
		t.Errorf("verified %d SCTs without a public key", res.SCTsVerified)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	tca := newTestCA(t)
	cfg := *tca.config(time.Now())
	cfg.LogURL = "http://127.0.0.1:1/"
	cfg.Duration = time.Second // no Total, no Rate
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "Total") {
		t.Errorf("Run = %v, want an error about Total", err)
	}
}
