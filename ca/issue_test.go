package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/ctutil"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/ca/store"
	"github.com/ctstage/ctstage/internal/testsupport/fakelog"
)

// testCA is a CA on the shared hierarchy, whose intermediates count their
// signatures, submitting to fake logs.
type testCA struct {
	*CA
	logs  []*fakelog.Log
	signs *atomic.Int64
	store *store.SQLite
}

// countingSigner counts the signatures an issuer makes.
type countingSigner struct {
	crypto.Signer
	n *atomic.Int64
}

func (s countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(r, digest, opts)
}

var testKeys = sync.OnceValues(func() (map[string]crypto.Signer, error) {
	ec256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	r2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return map[string]crypto.Signer{"ecdsa-p256": ec256, "ecdsa-p384": ec384, "rsa-2048": r2048}, nil
})

func testKey(t testing.TB, name string) crypto.PublicKey {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys[name].Public()
}

// newTestCA starts one fake log per fault, operators alternating between
// "op-a" and "op-b" unless ops says otherwise, and a CA submitting to them.
func newTestCA(t *testing.T, opts ctpolicy.Options, logs ...*fakelog.Log) *testCA {
	t.Helper()
	_, shared := generated(t)
	n := &atomic.Int64{}
	h := *shared
	ei, ri := *shared.ECDSAIntermediate, *shared.RSAIntermediate
	ei.signer = countingSigner{ei.signer, n}
	ri.signer = countingSigner{ri.signer, n}
	h.ECDSAIntermediate, h.RSAIntermediate = &ei, &ri
	for _, l := range logs {
		t.Cleanup(l.Server.Close)
	}
	ll, err := ctpolicy.LogsFromList(fakelog.List(logs...), http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logs = ll
	opts.Logger = quiet()
	sub, err := ctpolicy.NewSubmitter(opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := New(Options{Hierarchy: &h, Submitter: sub, Store: st, BaseURL: "http://127.0.0.1:1/ca", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return &testCA{CA: c, logs: logs, signs: n, store: st}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func threeLogs(faults ...fakelog.Fault) []*fakelog.Log {
	ops := []string{"op-a", "op-b", "op-a", "op-b"}
	var out []*fakelog.Log
	for i, f := range faults {
		out = append(out, fakelog.New(ops[i], f))
	}
	return out
}

func TestIssueProfiles(t *testing.T) {
	c := newTestCA(t, ctpolicy.Options{}, threeLogs(fakelog.OK, fakelog.OK, fakelog.OK)...)
	for _, tc := range []struct {
		profile, key string
		names        []string
		lifetime     time.Duration
	}{
		{"classic", "ecdsa-p256", []string{"example.com", "www.example.com"}, 0},
		{"classic", "rsa-2048", []string{"example.com"}, 0},
		{"classic", "ecdsa-p384", []string{"*.example.com", "example.com"}, 30 * day},
		{"classic", "ecdsa-p256", []string{"long.example.com"}, 190 * day},
		{"tlsserver", "ecdsa-p256", []string{"example.org"}, 0},
		{"tlsserver", "rsa-2048", []string{"example.org", "a.example.org"}, 0},
		{"shortlived", "ecdsa-p256", []string{"example.net", "1.1.1.1", "2606:4700:4700::1111"}, 0},
		{"shortlived", "rsa-2048", []string{"example.net"}, 24 * time.Hour},
	} {
		t.Run(tc.profile+"/"+tc.key, func(t *testing.T) {
			pub := testKey(t, tc.key)
			iss, err := c.Issue(context.Background(), Request{PublicKey: pub, Names: tc.names, Profile: tc.profile, Lifetime: tc.lifetime})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			checkIssuance(t, c, iss, pub)
		})
	}
}

// checkIssuance checks an issuance: both certificates lint clean, the
// certificate embeds SCTs that verify with ctutil against the logs' keys
// and meet the policy, and the store holds it.
func checkIssuance(t *testing.T, c *testCA, iss *Issuance, pub crypto.PublicKey) {
	t.Helper()
	for name, der := range map[string][]byte{"precertificate": iss.Precertificate, "certificate": iss.Certificate} {
		if err := c.linter.lint(der); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := CheckCorrespondence(mustTBS(t, iss.Precertificate), mustTBS(t, iss.Certificate)); err != nil {
		t.Errorf("CheckCorrespondence on the issued pair: %v", err)
	}
	cert, err := x509.ParseCertificate(iss.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Error("certificate is not for the requested key")
	}
	if err := cert.CheckSignatureFrom(iss.Issuer.Cert); err != nil {
		t.Errorf("certificate signature: %v", err)
	}
	chain := parseCTChain(t, iss.Chain)
	if len(chain[0].SCTList.SCTList) != len(iss.SCTs) || len(iss.SCTs) < 2 {
		t.Fatalf("%d embedded SCTs, %d returned", len(chain[0].SCTList.SCTList), len(iss.SCTs))
	}
	var srcs []ctpolicy.Source
	for _, s := range iss.SCTs {
		pk, err := x509.ParsePKIXPublicKey(s.Log.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctutil.VerifySCT(pk, chain, s.SCT, true); err != nil {
			t.Errorf("ctutil.VerifySCT(embedded) for %s: %v", s.Log.Description, err)
		}
		srcs = append(srcs, ctpolicy.Source{Operator: s.Log.Operator, RFC6962: s.Log.RFC6962})
	}
	if err := ctpolicy.Check(cert.NotAfter.Sub(cert.NotBefore)+time.Second, srcs); err != nil {
		t.Errorf("embedded SCTs: %v", err)
	}
	rec, err := c.store.Get(context.Background(), iss.Serial.Text(16))
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	if string(rec.Certificate) != string(iss.Certificate) || string(rec.Precertificate) != string(iss.Precertificate) || len(rec.SCTs) != len(iss.SCTs) {
		t.Error("stored record differs from the issuance")
	}
}

func parseCTChain(t testing.TB, ders [][]byte) []*ctx509.Certificate {
	t.Helper()
	var out []*ctx509.Certificate
	for _, d := range ders {
		c, err := ctx509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func mustTBS(t testing.TB, der []byte) []byte {
	t.Helper()
	tbs, err := tbsOf(der)
	if err != nil {
		t.Fatal(err)
	}
	return tbs
}

// TestIssueRefusesMismatch tampers with the final certificate's template
// and checks that issuance fails with ErrMismatch before the real issuer
// signs anything but the precertificate.
func TestIssueRefusesMismatch(t *testing.T) {
	otherOID := asn1.ObjectIdentifier{1, 2, 3, 4}
	for _, tc := range []struct {
		name   string
		tamper func(*x509.Certificate)
	}{
		{"name", func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, "evil.example") }},
		{"commonName", func(c *x509.Certificate) { c.Subject.CommonName = "www.example.com" }},
		{"notAfter", func(c *x509.Certificate) { c.NotAfter = c.NotAfter.Add(time.Second) }},
		{"notBefore", func(c *x509.Certificate) { c.NotBefore = c.NotBefore.Add(-time.Second) }},
		{"serial", func(c *x509.Certificate) { c.SerialNumber.Add(c.SerialNumber, c.SerialNumber) }},
		{"keyUsage", func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageKeyAgreement }},
		{"extraExtension", func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: otherOID, Value: asn1.NullBytes})
		}},
		{"sctListMoved", func(c *x509.Certificate) {
			c.ExtraExtensions = append([]pkix.Extension{{Id: otherOID, Value: asn1.NullBytes}}, c.ExtraExtensions...)
		}},
		{"extensionOrder", func(c *x509.Certificate) {
			// The key usage, identical, moves from CreateCertificate's
			// first slot to the end.
			ku := mustMarshal(t, asn1.BitString{Bytes: []byte{0x80}, BitLength: 1})
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: ku})
			c.KeyUsage = 0
		}},
		{"poisonKept", func(c *x509.Certificate) { c.ExtraExtensions = append(c.ExtraExtensions, poisonExt) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCA(t, ctpolicy.Options{}, threeLogs(fakelog.OK, fakelog.OK)...)
			c.tamperFinal = tc.tamper
			_, err := c.Issue(context.Background(), Request{PublicKey: testKey(t, "ecdsa-p256"), Names: []string{"example.com"}})
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("Issue: %v, want ErrMismatch", err)
			}
			if n := c.signs.Load(); n != 1 {
				t.Errorf("the issuer made %d signatures, want 1 (the precertificate only)", n)
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIssueFaults: one of three logs broken still issues within the
// deadline; too few usable logs fails with ErrPolicy and signs no final
// certificate.
func TestIssueFaults(t *testing.T) {
	opts := ctpolicy.Options{Stagger: 100 * time.Millisecond, LogTimeout: time.Second, Deadline: 3 * time.Second}
	for _, tc := range []struct {
		name   string
		faults []fakelog.Fault
		ok     bool
	}{
		{"OneHangs", []fakelog.Fault{fakelog.Hang, fakelog.OK, fakelog.OK}, true},
		{"OneHangsOtherOperator", []fakelog.Fault{fakelog.OK, fakelog.Hang, fakelog.OK, fakelog.OK}, true},
		{"One500", []fakelog.Fault{fakelog.Status500, fakelog.OK, fakelog.OK}, true},
		{"OneBadSignature", []fakelog.Fault{fakelog.BadSig, fakelog.OK, fakelog.OK}, true},
		{"OneFuture", []fakelog.Fault{fakelog.Future, fakelog.OK, fakelog.OK}, true},
		{"OneStale", []fakelog.Fault{fakelog.Stale, fakelog.OK, fakelog.OK}, true},
		{"OneOperatorDown", []fakelog.Fault{fakelog.OK, fakelog.Hang, fakelog.OK}, false},
		{"AllDown", []fakelog.Fault{fakelog.Status500, fakelog.Status500, fakelog.Hang}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCA(t, opts, threeLogs(tc.faults...)...)
			start := time.Now()
			iss, err := c.Issue(context.Background(), Request{PublicKey: testKey(t, "ecdsa-p256"), Names: []string{"example.com"}})
			took := time.Since(start)
			if took > opts.Deadline+time.Second {
				t.Errorf("Issue took %v, deadline %v", took, opts.Deadline)
			}
			if !tc.ok {
				if !errors.Is(err, ctpolicy.ErrPolicy) {
					t.Fatalf("Issue: %v, want ErrPolicy", err)
				}
				if n := c.signs.Load(); n != 1 {
					t.Errorf("the issuer made %d signatures, want 1 (the precertificate only)", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			checkIssuance(t, c, iss, testKey(t, "ecdsa-p256"))
		})
	}
}

func TestIssueTooFewLogs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		logs     []*fakelog.Log
		lifetime time.Duration
		rule     string
	}{
		{"OneOperator", []*fakelog.Log{fakelog.New("op-a", fakelog.OK), fakelog.New("op-a", fakelog.OK)}, 0, ctpolicy.RuleOperators},
		{"OneLog", []*fakelog.Log{fakelog.New("op-a", fakelog.OK)}, 0, ctpolicy.RuleCount},
		{"TwoLogsLongLifetime", threeLogs(fakelog.OK, fakelog.OK), 190 * day, ctpolicy.RuleCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCA(t, ctpolicy.Options{}, tc.logs...)
			_, err := c.Issue(context.Background(), Request{PublicKey: testKey(t, "ecdsa-p256"), Names: []string{"example.com"}, Lifetime: tc.lifetime})
			if !errors.Is(err, ctpolicy.ErrPolicy) || !strings.Contains(err.Error(), tc.rule) {
				t.Fatalf("Issue: %v, want ErrPolicy naming %q", err, tc.rule)
			}
			for _, l := range tc.logs {
				if n := l.Requests.Load(); n != 0 {
					t.Errorf("log got %d submissions, want none", n)
				}
			}
			if n := c.signs.Load(); n != 1 {
				t.Errorf("the issuer made %d signatures, want 1 (the precertificate only)", n)
			}
		})
	}
}

func TestIssueBadRequests(t *testing.T) {
	c := newTestCA(t, ctpolicy.Options{}, threeLogs(fakelog.OK, fakelog.OK)...)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	good := testKey(t, "ecdsa-p256")
	for _, tc := range []struct {
		name string
		req  Request
	}{
		{"NoNames", Request{PublicKey: good}},
		{"NoKey", Request{Names: []string{"example.com"}}},
		{"RSA1024", Request{PublicKey: small.Public(), Names: []string{"example.com"}}},
		{"P224", Request{PublicKey: ec224.Public(), Names: []string{"example.com"}}},
		{"UnknownProfile", Request{PublicKey: good, Names: []string{"example.com"}, Profile: "nope"}},
		{"TooLong", Request{PublicKey: good, Names: []string{"example.com"}, Lifetime: 400 * day}},
		{"ShortlivedTooLong", Request{PublicKey: good, Names: []string{"example.com"}, Profile: "shortlived", Lifetime: 8 * day}},
		{"IPInClassic", Request{PublicKey: good, Names: []string{"192.0.2.1"}}},
		{"SingleLabel", Request{PublicKey: good, Names: []string{"localhost"}}},
		{"Underscore", Request{PublicKey: good, Names: []string{"a_b.example.com"}}},
		{"InnerWildcard", Request{PublicKey: good, Names: []string{"a.*.example.com"}}},
		{"NumericTLD", Request{PublicKey: good, Names: []string{"example.123"}}},
		{"ReservedTLD", Request{PublicKey: good, Names: []string{"example.com", "a.watched.test"}}},
		{"WildcardReservedTLD", Request{PublicKey: good, Names: []string{"*.corp.internal"}}},
		{"BadPunycode", Request{PublicKey: good, Names: []string{"xn--a.example.com"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Issue(context.Background(), tc.req); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("Issue: %v, want ErrBadRequest", err)
			}
		})
	}
	if n := c.signs.Load(); n != 0 {
		t.Errorf("the issuer made %d signatures for bad requests", n)
	}
}

func TestIssueSubmitsFinal(t *testing.T) {
	c := newTestCA(t, ctpolicy.Options{}, threeLogs(fakelog.OK, fakelog.OK)...)
	c.opts.SubmitFinal = true
	iss, err := c.Issue(context.Background(), Request{PublicKey: testKey(t, "ecdsa-p256"), Names: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Wait()
	for _, l := range c.logs {
		if n := l.Finals.Load(); n != 1 {
			t.Errorf("log %s got %d final certificates, want 1", l.Server.URL, n)
		}
	}
	if r, err := c.store.Get(context.Background(), iss.Serial.Text(16)); err != nil || r.FinalOwed {
		t.Errorf("after the final submission: FinalOwed %v, %v; want it owing nothing", r != nil && r.FinalOwed, err)
	}
}

// TestIssueDoesNotWaitForStagger checks that the race returns as soon as
// the first two submissions meet the policy, without waiting for the
// stagger (here an hour).
func TestIssueDoesNotWaitForStagger(t *testing.T) {
	c := newTestCA(t, ctpolicy.Options{Stagger: time.Hour}, threeLogs(fakelog.OK, fakelog.OK, fakelog.OK)...)
	start := time.Now()
	iss, err := c.Issue(context.Background(), Request{PublicKey: testKey(t, "ecdsa-p256"), Names: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Issue took %v", took)
	}
	if len(iss.SCTs) != 2 {
		t.Errorf("%d SCTs, want 2", len(iss.SCTs))
	}
}
