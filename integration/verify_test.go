package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	"golang.org/x/crypto/ocsp"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/testca"
	"github.com/ctstage/ctstage/sctverify"
)

// verifyStage is a ctstage with its CA, and an outside test CA whose root
// every shard accepts (for certificates without embedded SCTs).
type verifyStage struct {
	*serve.Stage
	outside *testca.CA
	logList string // URL of /log.v3.json
}

func startVerifyStage(t testing.TB) *verifyStage {
	t.Helper()
	outside, root := newCA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := serve.Start(ctx, serve.Options{
		DataDir: t.TempDir(), Storage: "sqlite", Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0", ExtraRoots: root},
		CA:   serve.CAOptions{MgmtAddr: "127.0.0.1:0", NoFinalSubmission: true},
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
	return &verifyStage{Stage: st, outside: outside, logList: st.LogURL + "/log.v3.json"}
}

func (vs *verifyStage) verifier(t testing.TB, inclusion bool) *sctverify.Verifier {
	t.Helper()
	ll, err := sctverify.LoadLogList(context.Background(), vs.logList, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &sctverify.Verifier{Logs: ll, Inclusion: inclusion}
}

func (vs *verifyStage) issue(t testing.TB, lifetime time.Duration) *ca.Issuance {
	t.Helper()
	iss, _ := vs.issueKey(t, lifetime)
	return iss
}

// issueKey is issue, with the certificate's private key.
func (vs *verifyStage) issueKey(t testing.TB, lifetime time.Duration) (*ca.Issuance, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := vs.CA.Issue(context.Background(), ca.Request{PublicKey: key.Public(), Names: []string{"verify.example.com"}, Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	return iss, key
}

func parseDERs(t testing.TB, ders [][]byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// verifyIncluded runs Verify until every valid SCT is included (entries
// are integrated within about a second; until then they are "pending").
func verifyIncluded(t testing.TB, v *sctverify.Verifier, in sctverify.Input) *sctverify.Report {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := v.Verify(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		pending := false
		for _, s := range r.SCTs {
			pending = pending || (s.Inclusion != nil && s.Inclusion.Status == sctverify.InclusionPending)
		}
		if !pending || time.Now().After(deadline) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func reportText(r *sctverify.Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// TestVerifyCAIssued: certificates from ctstage's CA pass all three
// policies, every SCT valid and included in its running log; then the
// same through the ctstage binary.
func TestVerifyCAIssued(t *testing.T) {
	vs := startVerifyStage(t)
	v := vs.verifier(t, true)
	// The default topology has two shards per operator for a NotAfter (an
	// RFC 6962 and a tiled one): 2 SCTs below Apple's 181 days, 3 from
	// there. The CA's NotAfter is NotBefore + lifetime - 1 s, so a
	// lifetime of 180 days + 1 s is NotAfter - NotBefore of exactly 180
	// days: Chrome's last of 2, Apple's first of 3 (inclusive days).
	for _, lifetime := range []time.Duration{0, 180 * 24 * time.Hour, 180*24*time.Hour + time.Second, 181 * 24 * time.Hour} {
		iss := vs.issue(t, lifetime)
		certs := parseDERs(t, iss.Chain)
		want := 2
		if certs[0].NotAfter.Sub(certs[0].NotBefore) >= 180*24*time.Hour {
			want = 3
		}
		if len(iss.SCTs) != want {
			t.Errorf("lifetime %v (NotAfter - NotBefore %v): %d SCTs, want %d", lifetime, certs[0].NotAfter.Sub(certs[0].NotBefore), len(iss.SCTs), want)
		}
		r := verifyIncluded(t, v, sctverify.Input{Chain: parseDERs(t, iss.Chain)})
		if !r.OK {
			t.Fatalf("lifetime %v: not OK:\n%s", lifetime, reportText(r))
		}
		for _, s := range r.SCTs {
			if s.Source != sctverify.SourceEmbedded || s.Status != sctverify.StatusValid || s.Inclusion == nil ||
				s.Inclusion.Status != sctverify.InclusionIncluded || s.Inclusion.TreeSize == 0 {
				t.Errorf("SCT %d: %+v %+v", s.Index, s, s.Inclusion)
			}
		}
		if len(r.Policies) != 3 {
			t.Errorf("%d verdicts, want 3", len(r.Policies))
		}
		t.Logf("lifetime %v:\n%s", lifetime, reportText(r))
	}

	// The binary: a CA chain passes (exit 0); a certificate without SCTs
	// fails (exit 1) and says why; bad usage is 2.
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pem")
	if err := os.WriteFile(good, vs.issue(t, 0).ChainPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	bare, err := vs.outside.Leaf("bare.example.com", time.Now().Add(90*24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.der")
	if err := os.WriteFile(bad, bare[0], 0o644); err != nil {
		t.Fatal(err)
	}
	// The leaf alone: its issuer comes from its AIA caIssuers URL, which
	// is loopback here and so fetched without --fetch-issuer.
	leafOnly := filepath.Join(dir, "leaf.der")
	if err := os.WriteFile(leafOnly, vs.issue(t, 0).Chain[0], 0o644); err != nil {
		t.Fatal(err)
	}
	empty, junk := filepath.Join(dir, "empty.pem"), filepath.Join(dir, "junk.pem")
	if os.WriteFile(empty, nil, 0o644) != nil || os.WriteFile(junk, []byte("not a certificate\n"), 0o644) != nil {
		t.Fatal("couldn't write the bad inputs")
	}
	time.Sleep(2 * time.Second) // let the new entries be integrated
	bin := ctstageBinary(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"verify", "--log-list", vs.logList, good}, 0, "result: OK"},
		{[]string{"verify", good, "--log-list", vs.logList, "--json", "--policy", "apple"}, 0, `"compliant": true`},
		{[]string{"verify", "--log-list", vs.logList, bad}, 1, sctverify.RuleEmbeddedCount},
		{[]string{"verify", "--log-list", vs.logList}, 2, ""},
		{[]string{"verify", "--log-list", vs.logList, leafOnly}, 0, "issuer from  " + vs.LogURL + "/ca/"},
		{[]string{"verify", "--log-list", vs.logList, empty}, 1, "the file is empty"},
		{[]string{"verify", "--log-list", vs.logList, junk}, 1, "neither PEM"},
		{[]string{"verify", "--log-list", vs.logList, "--policy", "opera", good}, 2, ""},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		code := exitCode(t, err)
		if code != tc.code || !strings.Contains(string(out), tc.out) {
			t.Errorf("ctstage %q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.out, out)
		}
	}
}

// TestVerifyHost: a TLS server started here presents a certificate
// without embedded SCTs, one SCT (from one operator's log, for the
// certificate as an X.509 entry) in the TLS extension and one (from the
// other operator's) in a stapled OCSP response. --host finds both. The
// TLS/OCSP paths of Apple and Mozilla are met; Chrome 148 and later take
// no OCSP SCTs, so Chrome's is not, unless --chrome-version 147 asks for
// the Chrome before.
func TestVerifyHost(t *testing.T) {
	vs := startVerifyStage(t)
	notAfter := time.Now().Add(90 * 24 * time.Hour)
	chain, err := vs.outside.Leaf("host.example.com", notAfter, false)
	if err != nil {
		t.Fatal(err)
	}
	s := &stage{Stage: vs.Stage, ca: vs.outside}
	var scts [][]byte
	for op := range 2 {
		sct, err := logClient(t, s.shardFor(t, op, notAfter)).AddChain(context.Background(), asn1Chain(chain))
		if err != nil {
			t.Fatalf("add-chain: %v", err)
		}
		b, err := cttls.Marshal(*sct)
		if err != nil {
			t.Fatal(err)
		}
		scts = append(scts, b)
	}
	certs := parseDERs(t, chain)
	staple := ocspWithSCTs(t, vs.outside, certs[0], scts[1:])
	addr := serveTLS(t, tls.Certificate{Certificate: chain, PrivateKey: vs.outside.LeafKey, Leaf: certs[0],
		SignedCertificateTimestamps: scts[:1], OCSPStaple: staple})

	in, err := sctverify.FetchHost(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	v147 := vs.verifier(t, true)
	v147.ChromeVersion = 147
	r := verifyIncluded(t, v147, in)
	if !r.OK {
		t.Fatalf("not OK:\n%s", reportText(r))
	}
	sources := map[string]bool{}
	for _, s := range r.SCTs {
		sources[s.Source] = true
		if s.Status != sctverify.StatusValid || s.Inclusion == nil || s.Inclusion.Status != sctverify.InclusionIncluded {
			t.Errorf("%s SCT: %+v %+v", s.Source, s, s.Inclusion)
		}
	}
	if !sources[sctverify.SourceTLS] || !sources[sctverify.SourceOCSP] || len(r.SCTs) != 2 {
		t.Errorf("SCTs %+v, want one from TLS and one from OCSP", r.SCTs)
	}
	for _, v := range r.Policies {
		if v.Rule != sctverify.RuleCompliantDeliver {
			t.Errorf("%s: decided by %q, want %q", v.Policy, v.Rule, sctverify.RuleCompliantDeliver)
		}
	}
	t.Logf("\n%s", reportText(r))

	out, err := exec.Command(ctstageBinary(t), "verify", "--log-list", vs.logList, "--host", addr, "--json", "--chrome-version", "147").CombinedOutput()
	if err != nil {
		t.Fatalf("ctstage verify --host: %v\n%s", err, out)
	}
	var jr sctverify.Report
	if err := json.Unmarshal(out, &jr); err != nil || !jr.OK || len(jr.SCTs) != 2 {
		t.Errorf("--json: %v, %+v\n%s", err, jr, out)
	}
	// Today's Chrome: the OCSP SCT does not count, and says why.
	out, err = exec.Command(ctstageBinary(t), "verify", "--log-list", vs.logList, "--host", addr, "--json").CombinedOutput()
	if exitCode(t, err) != 1 {
		t.Fatalf("ctstage verify --host for Chrome 148: %v, want exit 1\n%s", err, out)
	}
	jr = sctverify.Report{}
	if err := json.Unmarshal(out, &jr); err != nil {
		t.Fatal(err)
	}
	for _, v := range jr.Policies {
		switch {
		case v.Policy != sctverify.PolicyChrome && (!v.Compliant || v.Rule != sctverify.RuleCompliantDeliver):
			t.Errorf("%s: %+v, want met through TLS/OCSP", v.Policy, v)
		case v.Policy == sctverify.PolicyChrome && (v.Compliant || len(v.NotCounted) != 1 || v.NotCounted[0].Source != sctverify.SourceOCSP ||
			!strings.Contains(v.NotCounted[0].Reason, "OCSP")):
			t.Errorf("chrome: %+v, want not met with the OCSP SCT not counted", v)
		}
	}
}

// ocspWithSCTs is a good OCSP response for cert, signed by the outside
// CA's intermediate, with the SCTs in its SCT list extension.
func ocspWithSCTs(t testing.TB, c *testca.CA, cert *x509.Certificate, scts [][]byte) []byte {
	t.Helper()
	var body []byte
	for _, s := range scts {
		body = append(body, byte(len(s)>>8), byte(len(s)))
		body = append(body, s...)
	}
	list := append([]byte{byte(len(body) >> 8), byte(len(body))}, body...)
	val, err := asn1.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ocsp.CreateResponse(c.Intermediate, c.Intermediate, ocsp.Response{
		Status: ocsp.Good, SerialNumber: cert.SerialNumber, ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: sctverify.OIDOCSPSCTList, Value: val}},
	}, c.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// serveTLS serves cert on a loopback port until the test ends; every
// connection gets a full handshake and is closed.
func serveTLS(t testing.TB, cert tls.Certificate) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// BenchmarkVerifyInclusion verifies certificates from ctstage's CA with
// inclusion proofs against the in-process logs over loopback HTTP: per
// certificate 2 embedded SCT signatures, the issuer's signature, and for
// each SCT a signature-checked get-sth and a get-proof-by-hash. One
// goroutine; the figure is certs/s. "signatures-only" is the same loop
// without inclusion, for comparison in the same run.
func BenchmarkVerifyInclusion(b *testing.B) {
	vs := startVerifyStage(b)
	const n = 16
	var ins []sctverify.Input
	for range n {
		ins = append(ins, sctverify.Input{Chain: parseDERs(b, vs.issue(b, 0).Chain)})
	}
	v := vs.verifier(b, true)
	for _, in := range ins {
		if r := verifyIncluded(b, v, in); !r.OK {
			b.Fatalf("not OK:\n%s", reportText(r))
		}
	}
	for _, inclusion := range []bool{true, false} {
		name := "inclusion"
		if !inclusion {
			name = "signatures-only"
		}
		b.Run(name, func(b *testing.B) {
			v := vs.verifier(b, inclusion)
			i := 0
			for b.Loop() {
				r, err := v.Verify(context.Background(), ins[i%n])
				if err != nil || !r.OK {
					b.Fatalf("%v\n%s", err, reportText(r))
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}

// TestVerifyTimeMachine runs the binary's --now: before the SCTs existed
// they are invalid (in the future); with one of the certificate's logs
// retiring tomorrow, three days on that log is retired and its SCT, from
// before the retirement, still counts; eighty days on the log list is
// too old for every browser, which then enforces nothing.
func TestVerifyTimeMachine(t *testing.T) {
	vs := startVerifyStage(t)
	iss := vs.issue(t, 0)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(pemFile, iss.ChainPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	u := strings.TrimSuffix(iss.SCTs[0].Log.URL, "/")
	shard := u[strings.LastIndex(u, "/")+1:]
	fs := &faultStage{Stage: vs.Stage}
	tomorrow := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	fs.set(t, shard, "state", `{"state":"retired","at":"`+tomorrow+`"}`)
	run := func(now time.Time) (sctverify.Report, int) {
		t.Helper()
		out, err := exec.Command(ctstageBinary(t), "verify", "--log-list", vs.logList, "--inclusion=false", "--json",
			"--now", now.UTC().Format(time.RFC3339), pemFile).CombinedOutput()
		var r sctverify.Report
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			t.Fatalf("--now %s: %v\n%s", now, jerr, out)
		}
		return r, exitCode(t, err)
	}
	r, code := run(time.Now().Add(-24 * time.Hour))
	if code != 1 || len(r.SCTs) == 0 || !strings.Contains(r.SCTs[0].Reason, "in the future") {
		t.Errorf("a day before issuance: exit %d, %+v", code, r.SCTs)
	}
	r, code = run(time.Now().Add(3 * 24 * time.Hour))
	if code != 0 {
		t.Errorf("three days on: exit %d, %+v", code, r.Policies)
	}
	for _, s := range r.SCTs {
		if s.Index == 1 && s.LogState != sctverify.StateRetired {
			t.Errorf("three days on, the retiring log is %q", s.LogState)
		}
	}
	for _, v := range r.Policies {
		found := false
		for _, c := range v.Counted {
			found = found || c.Index == 1 && strings.Contains(c.Reason, "before its retirement")
		}
		if v.Policy == sctverify.PolicyChrome && !found {
			t.Errorf("chrome three days on: the retired log's SCT is not counted as before its retirement: %+v", v)
		}
	}
	r, code = run(time.Now().Add(80 * 24 * time.Hour))
	if code != 0 {
		t.Errorf("eighty days on: exit %d", code)
	}
	for _, v := range r.Policies {
		if v.Enforced {
			t.Errorf("%s eighty days on a list of today: enforced (%s)", v.Policy, v.Detail)
		}
	}
}

// TestVerifyPrecert gives the binary a precertificate from ctstage's CA:
// with its SCTs as add-pre-chain answers (--scts), they verify against
// its entry and meet every policy as embedded SCTs; an SCT of another
// certificate does not verify; with --host serving the final
// certificate, the SCTs it embeds verify against the precertificate.
func TestVerifyPrecert(t *testing.T) {
	vs := startVerifyStage(t)
	iss, key := vs.issueKey(t, 0)
	other := vs.issue(t, 0)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	precert := write("precert.pem", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Precertificate}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Chain[1]})...))
	answers := func(scts ...ctpolicy.SCT) []byte {
		var b []byte
		for _, s := range scts {
			sig, err := cttls.Marshal(s.SCT.Signature)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, mustJSON(t, ct.AddChainResponse{SCTVersion: s.SCT.SCTVersion, ID: s.SCT.LogID.KeyID[:], Timestamp: s.SCT.Timestamp,
				Extensions: base64.StdEncoding.EncodeToString(s.SCT.Extensions), Signature: sig})...)
			b = append(b, '\n')
		}
		return b
	}
	good := write("scts.json", answers(iss.SCTs...))
	mixed := write("mixed.json", answers(iss.SCTs[0], other.SCTs[1]))
	run := func(args ...string) (sctverify.Report, int, string) {
		t.Helper()
		out, err := exec.Command(ctstageBinary(t), append([]string{"verify", "--log-list", vs.logList, "--inclusion=false", "--json"}, args...)...).CombinedOutput()
		var r sctverify.Report
		json.Unmarshal(out, &r)
		return r, exitCode(t, err), string(out)
	}
	r, code, out := run("--scts", good, precert)
	if code != 0 || !r.Precertificate || len(r.SCTs) != len(iss.SCTs) {
		t.Fatalf("precertificate with its SCTs: exit %d\n%s", code, out)
	}
	for _, s := range r.SCTs {
		if s.Source != sctverify.SourcePrecert || s.Status != sctverify.StatusValid {
			t.Errorf("SCT %d: %s %s (%s)", s.Index, s.Source, s.Status, s.Reason)
		}
	}
	r, code, out = run("--scts", mixed, precert)
	if code != 1 || len(r.SCTs) != 2 || r.SCTs[1].Status != sctverify.StatusInvalid {
		t.Errorf("an SCT of another certificate: exit %d\n%s", code, out)
	}
	if _, code, out = run(precert); code != 1 || !strings.Contains(out, "no SCTs given") {
		t.Errorf("a precertificate without SCTs: exit %d\n%s", code, out)
	}
	certs := parseDERs(t, iss.Chain)
	addr := serveTLS(t, tls.Certificate{Certificate: iss.Chain, PrivateKey: key, Leaf: certs[0]})
	if r, code, out = run("--host", addr, precert); code != 0 || len(r.SCTs) != len(iss.SCTs) {
		t.Errorf("precertificate with --host serving its final certificate: exit %d\n%s", code, out)
	}
}
