package integration

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/testca"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// backends are the storages every log test runs against.
var backends = []struct {
	name string
	spec func(testing.TB) string
}{
	{"sqlite", func(testing.TB) string { return "sqlite" }},
	{"mysql", testenv.MySQL},
}

// stage is a ctstage started in-process for a test, with an outside CA
// (testca) whose root is given as --extra-roots.
type stage struct {
	*serve.Stage
	opts serve.Options
	ca   *testca.CA
}

func newCA(t testing.TB) (*testca.CA, string) {
	t.Helper()
	ca, err := testca.New("ctstage integration")
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.WriteRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca, root
}

// startStage runs ctstage serve on dataDir and storage until the test ends.
func startStage(t testing.TB, dataDir, storage string, ca *testca.CA, rootFile string) *stage {
	t.Helper()
	opts := serve.Options{
		DataDir: dataDir,
		Storage: storage,
		Logger:  testLogger(),
		// No dashboard: its index would poll the logs under test.
		Logs: serve.LogOptions{Addr: "127.0.0.1:0", ExtraRoots: rootFile, NoDashboard: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := serve.Start(ctx, opts)
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	s := &stage{Stage: st, opts: opts, ca: ca}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *stage) stop(t testing.TB) {
	if s.Stage == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	s.Stage = nil
}

func testLogger() *slog.Logger {
	if os.Getenv("CTSTAGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// logList fetches and parses the stage's /log.v3.json with ct-go's loglist3.
func (s *stage) logList(t testing.TB) *loglist3.LogList {
	t.Helper()
	rsp, err := http.Get(s.LogURL + "/log.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		t.Fatal(err)
	}
	ll, err := loglist3.NewFromJSON(b)
	if err != nil {
		t.Fatalf("log list does not parse with loglist3: %v\n%s", err, b)
	}
	return ll
}

// shardFor returns the log list entry whose temporal interval holds notAfter.
func (s *stage) shardFor(t testing.TB, operator int, notAfter time.Time) *loglist3.Log {
	t.Helper()
	ll := s.logList(t)
	for _, l := range ll.Operators[operator].Logs {
		ti := l.TemporalInterval
		if ti != nil && !notAfter.Before(ti.StartInclusive) && notAfter.Before(ti.EndExclusive) {
			return l
		}
	}
	t.Fatalf("no shard of operator %d takes NotAfter %v", operator, notAfter)
	return nil
}

// client returns ct-go's client for a log, set up with the log's key so
// that it checks every SCT and STH signature.
func logClient(t testing.TB, l *loglist3.Log) *client.LogClient {
	t.Helper()
	c, err := client.New(l.URL, http.DefaultClient, jsonclient.Options{PublicKeyDER: l.Key, UserAgent: "ctstage-test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func asn1Chain(chain [][]byte) []ct.ASN1Cert {
	out := make([]ct.ASN1Cert, len(chain))
	for i, c := range chain {
		out[i] = ct.ASN1Cert{Data: c}
	}
	return out
}

// leafHash is the RFC 6962 Merkle leaf hash of a submission with its SCT.
func leafHash(t testing.TB, chain [][]byte, precert bool, sct *ct.SignedCertificateTimestamp) []byte {
	t.Helper()
	etype := ct.X509LogEntryType
	if precert {
		etype = ct.PrecertLogEntryType
	}
	certs, err := parseChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ct.MerkleTreeLeafFromChain(certs, etype, sct.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	leaf.TimestampedEntry.Extensions = sct.Extensions
	h, err := ct.LeafHashForLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return h[:]
}

// waitForSTH polls get-sth (signature checked by the client) until the tree
// holds at least size entries.
func waitForSTH(t testing.TB, c *client.LogClient, size uint64, within time.Duration) *ct.SignedTreeHead {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sth, err := c.GetSTH(context.Background())
		if err != nil {
			t.Fatalf("GetSTH: %v", err)
		}
		if sth.TreeSize >= size {
			return sth
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree size %d after %v, want >= %d", sth.TreeSize, within, size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sha(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
