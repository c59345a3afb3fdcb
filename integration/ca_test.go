package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/internal/serve"
)

// startCAStage runs ctstage serve with its CA and management endpoint.
func startCAStage(t testing.TB, noFinal bool) *serve.Stage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := serve.Start(ctx, serve.Options{
		DataDir: t.TempDir(), Storage: "sqlite", Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0"},
		CA:   serve.CAOptions{MgmtAddr: "127.0.0.1:0", NoFinalSubmission: noFinal},
	})
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := st.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return st
}

// TestCAIssueEndToEnd issues through the management endpoint of a running
// ctstage and checks the certificate against its logs: SCTs from two
// operators that verify with ctutil against the log list's keys, each
// precertificate included in its log, the final certificate logged after
// the background submission.
func TestCAIssueEndToEnd(t *testing.T) {
	st := startCAStage(t, false)
	rsp, err := http.Get(st.LogURL + "/healthz")
	if err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %v %v", err, rsp)
	}
	rsp.Body.Close()
	ir := mgmtIssue(t, st.MgmtURL, []string{"example.com", "www.example.com"})
	chain := parsePEMChain(t, ir.Chain)
	if len(chain) != 2 {
		t.Fatalf("chain of %d certificates, want leaf and intermediate", len(chain))
	}
	scts := chain[0].SCTList.SCTList
	if len(scts) < 2 {
		t.Fatalf("%d embedded SCTs, want 2 or more", len(scts))
	}
	byID := logsByID(st.Logs.LogList())
	operators := map[string]bool{}
	kinds := map[bool]bool{} // tiled or not
	for _, raw := range scts {
		var sct ct.SignedCertificateTimestamp
		if _, err := cttls.Unmarshal(raw.Val, &sct); err != nil {
			t.Fatal(err)
		}
		ll := byID[sct.LogID.KeyID]
		l, op := ll.log, ll.operator
		if l == nil {
			t.Fatalf("SCT from unknown log %x", sct.LogID.KeyID)
		}
		operators[op] = true
		pk, err := x509.ParsePKIXPublicKey(l.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctutil.VerifySCT(pk, chain, &sct, true); err != nil {
			t.Errorf("ctutil.VerifySCT(embedded) for %s: %v", l.Description, err)
		}
		kinds[ll.tiled != nil] = true
		checkPrecertIncluded(t, ll, chain, &sct)
		checkFinalLogged(t, ll, chain[0].Raw)
	}
	if len(operators) < 2 || len(kinds) < 2 {
		t.Errorf("SCTs from %d operators and %d kinds of log, want 2 and 2 (RFC 6962 and tiled)", len(operators), len(kinds))
	}
}

// checkPrecertIncluded verifies an inclusion proof for the precertificate
// leaf the SCT was issued for (rebuilt from the final certificate as
// RFC 6962 section 3.2 says, with the SCT's extensions).
func checkPrecertIncluded(t *testing.T, l listedLog, chain []*ctx509.Certificate, sct *ct.SignedCertificateTimestamp) {
	t.Helper()
	leaf, err := ct.MerkleTreeLeafForEmbeddedSCT(chain, sct.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	leaf.TimestampedEntry.Extensions = sct.Extensions
	h, err := ct.LeafHashForLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	proveIncluded(t, l, h, sct)
}

// checkFinalLogged waits until the log holds an X.509 entry for cert.
func checkFinalLogged(t *testing.T, l listedLog, cert []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, b := range logLeaves(t, l) {
			if e := leafOf(t, b).TimestampedEntry; e.EntryType == ct.X509LogEntryType && e.X509Entry != nil && bytes.Equal(e.X509Entry.Data, cert) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("%s: final certificate not in the log after 30s", l.log.Description)
}

func mgmtIssue(t testing.TB, base string, names []string) *ca.IssueResponse {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	body := mustJSON(t, ca.IssueRequest{CSR: base64.StdEncoding.EncodeToString(csr), Profile: "classic"})
	rsp, err := http.Post(base+"/issue", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("POST /issue: %s: %s", rsp.Status, b)
	}
	var ir ca.IssueResponse
	if err := json.Unmarshal(b, &ir); err != nil {
		t.Fatal(err)
	}
	return &ir
}

func parsePEMChain(t testing.TB, s string) []*ctx509.Certificate {
	t.Helper()
	var out []*ctx509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := ctx509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// issueClients are the concurrent clients BenchmarkIssue runs with, one
// sub-benchmark each: 1 for the latency of an issuance alone, 8 (the
// figure docs/benchmarks.md reports) to keep both cores of the reference
// machine busy, 32 for a CA with many clients at once.
var issueClients = []int{1, 8, 32}

// BenchmarkIssue issues certificates through the CA of a running ctstage
// (SQLite storage), each with 2 SCTs from the in-process logs over loopback
// HTTP, without the background final submission: ECDSA P-256 subscriber
// keys, so the ECDSA P-384 intermediate signs. Each sub-benchmark runs
// b.N issuances from a fixed number of concurrent clients (closed loop: a
// client starts its next issuance when the last returns) and reports
// certificates/s, the p50 and p99 issuance latency, and the process's CPU
// time (user and system, the logs' included) per certificate, which
// depends far less than the others on what else the machine runs. By
// Little's law the mean latency is clients / throughput, so more clients
// than the pipeline needs to stay busy only add queueing.
func BenchmarkIssue(b *testing.B) {
	st := startCAStage(b, true)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	req := ca.Request{PublicKey: key.Public(), Names: []string{"bench.example.com"}}
	for range 32 { // warm up connections
		if _, err := st.CA.Issue(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	for _, clients := range issueClients {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchIssue(b, st.CA, req, clients)
		})
	}
}

func benchIssue(b *testing.B, c *ca.CA, req ca.Request, clients int) {
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				iss, err := c.Issue(context.Background(), req)
				if err != nil {
					b.Error(err)
					return
				}
				if len(iss.SCTs) != 2 {
					b.Errorf("%d SCTs, want 2", len(iss.SCTs))
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	if b.Failed() {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "certs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/cert")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
