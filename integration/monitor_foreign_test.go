package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"
	cttls "github.com/google/certificate-transparency-go/tls"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/ctstage/ctstage/monitor"
	"github.com/ctstage/ctstage/sctverify"
)

// foreignLog is an RFC 6962 log that is not ctstage's: ct-go's types and
// transparency-dev/merkle's reference tree behind a test HTTP server,
// serving get-sth, get-sth-consistency, get-entries (at most 7 at once)
// and get-proof-by-hash.
type foreignLog struct {
	key     *ecdsa.PrivateKey
	mu      sync.Mutex
	tree    *testonly.Tree
	entries []ct.LeafEntry
	srv     *httptest.Server
}

func newForeignLog(t *testing.T) *foreignLog {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l := &foreignLog{key: k, tree: testonly.New(rfc6962.DefaultHasher)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ct/v1/get-sth", l.sth)
	mux.HandleFunc("GET /ct/v1/get-sth-consistency", func(w http.ResponseWriter, r *http.Request) {
		first, second := qint(r, "first"), qint(r, "second")
		l.mu.Lock()
		p, err := l.tree.ConsistencyProof(first, second)
		l.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		jsonOut(w, ct.GetSTHConsistencyResponse{Consistency: p})
	})
	mux.HandleFunc("GET /ct/v1/get-entries", func(w http.ResponseWriter, r *http.Request) {
		start, end := qint(r, "start"), qint(r, "end")
		l.mu.Lock()
		defer l.mu.Unlock()
		if start > end || start >= uint64(len(l.entries)) {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		end = min(end, start+6, uint64(len(l.entries))-1)
		jsonOut(w, ct.GetEntriesResponse{Entries: l.entries[start : end+1]})
	})
	mux.HandleFunc("GET /ct/v1/get-proof-by-hash", func(w http.ResponseWriter, r *http.Request) {
		h, _ := base64.StdEncoding.DecodeString(r.URL.Query().Get("hash"))
		size := qint(r, "tree_size")
		l.mu.Lock()
		defer l.mu.Unlock()
		for i := uint64(0); i < min(size, l.tree.Size()); i++ {
			if string(l.tree.LeafHash(i)) == string(h) {
				p, err := l.tree.InclusionProof(i, size)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				jsonOut(w, ct.GetProofByHashResponse{LeafIndex: int64(i), AuditPath: p})
				return
			}
		}
		http.NotFound(w, r)
	})
	l.srv = httptest.NewServer(mux)
	t.Cleanup(l.srv.Close)
	return l
}

func qint(r *http.Request, name string) uint64 {
	v, _ := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	return v
}

func jsonOut(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (l *foreignLog) sign(b []byte) ct.DigitallySigned {
	d := sha256.Sum256(b)
	sig, _ := l.key.Sign(rand.Reader, d[:], crypto.SHA256)
	return ct.DigitallySigned{Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA}, Signature: sig}
}

func (l *foreignLog) sth(w http.ResponseWriter, _ *http.Request) {
	l.mu.Lock()
	sth := ct.SignedTreeHead{Version: ct.V1, TreeSize: l.tree.Size(), Timestamp: uint64(time.Now().UnixMilli())}
	copy(sth.SHA256RootHash[:], l.tree.Hash())
	l.mu.Unlock()
	in, _ := ct.SerializeSTHSignatureInput(sth)
	sig, _ := cttls.Marshal(l.sign(in))
	jsonOut(w, ct.GetSTHResponse{TreeSize: sth.TreeSize, Timestamp: sth.Timestamp, SHA256RootHash: sth.SHA256RootHash[:], TreeHeadSignature: sig})
}

// add logs an X.509 chain (leaf first) as an RFC 6962 log does.
func (l *foreignLog) add(t *testing.T, chain [][]byte) {
	t.Helper()
	certs, err := parseChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ct.MerkleTreeLeafFromChain(certs, ct.X509LogEntryType, uint64(time.Now().UnixMilli()))
	if err != nil {
		t.Fatal(err)
	}
	in, err := cttls.Marshal(*leaf)
	if err != nil {
		t.Fatal(err)
	}
	var rest []ct.ASN1Cert
	for _, c := range chain[1:] {
		rest = append(rest, ct.ASN1Cert{Data: c})
	}
	extra, err := cttls.Marshal(ct.CertificateChain{Entries: rest})
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.entries = append(l.entries, ct.LeafEntry{LeafInput: in, ExtraData: extra})
	l.tree.AppendData(in)
	l.mu.Unlock()
}

// TestMonitorForeignLog follows a log that is not ctstage's: it reads
// every entry in the log's own batch size (7), finds the watched ones at
// their index, raises nothing; then the log alters a served entry and the
// monitor sees the root no longer match.
func TestMonitorForeignLog(t *testing.T) {
	ca, _ := newCA(t)
	l := newForeignLog(t)
	for i := range 30 {
		name := "plain" + strconv.Itoa(i) + ".example.org"
		if i%10 == 3 {
			name = "w" + strconv.Itoa(i) + ".watched.example.com"
		}
		chain, err := ca.Leaf(name, time.Now().AddDate(0, 0, 90), false)
		if err != nil {
			t.Fatal(err)
		}
		l.add(t, chain)
	}
	der, err := x509.MarshalPKIXPublicKey(l.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(der)
	b, err := json.Marshal(&loglist3.LogList{Version: "1", LogListTimestamp: time.Now(), Operators: []*loglist3.Operator{{Name: "Foreign", Email: []string{"ct@foreign.example"},
		Logs: []*loglist3.Log{{Description: "foreign", LogID: id[:], Key: der, URL: l.srv.URL + "/", MMD: 86400,
			State: &loglist3.LogStates{Usable: &loglist3.LogState{Timestamp: time.Now().Add(-time.Hour)}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "list.json")
	if err := os.WriteFile(list, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ll, err := sctverify.LoadLogList(t.Context(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	m, err := monitor.New(monitor.Options{Logs: ll, StateDir: t.TempDir(), Sink: ev, Watch: []string{"watched.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := m.Once(t.Context()); n != 0 {
		t.Fatalf("alerts on an honest foreign log: %+v", ev.alerts())
	}
	var idx []uint64
	for _, c := range ev.certs() {
		idx = append(idx, *c.Index)
	}
	if len(idx) != 3 || idx[0] != 3 || idx[1] != 13 || idx[2] != 23 {
		t.Errorf("watched entries at %v, want [3 13 23]", idx)
	}
	// The log grows and lies about an entry it serves.
	chain, err := ca.Leaf("late.example.org", time.Now().AddDate(0, 0, 90), false)
	if err != nil {
		t.Fatal(err)
	}
	l.add(t, chain)
	l.mu.Lock()
	bad := append([]byte(nil), l.entries[30].LeafInput...)
	bad[len(bad)-10] ^= 1
	l.entries[30].LeafInput = bad
	l.mu.Unlock()
	m.Once(t.Context())
	if a := ev.alerts(); len(a) == 0 || a[0].Alert != monitor.AlertRootMismatch && a[0].Alert != monitor.AlertBadEntry {
		t.Errorf("an altered entry: alerts %+v, want root_mismatch", a)
	}
}
