package sctverify

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// The ct-cpp vectors: Google's CT reference test certificates
// (shared/testdata/ct-cpp, Apache 2.0). Their one log's key is
// ct-server-key-public.pem (ECDSA P-256); rsa/ holds an RSA-2048 log key
// and SCTs signed with it.

func ctcppCert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	blocks := readPEMBlocks(t, filepath.Join(dir, name))
	if len(blocks) == 0 {
		t.Fatalf("%s: no PEM block", name)
	}
	c, err := x509.ParseCertificate(blocks[0])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func ctcppKey(t *testing.T, dir, name string) []byte {
	t.Helper()
	blocks := readPEMBlocks(t, filepath.Join(dir, name))
	if len(blocks) != 1 {
		t.Fatalf("%s: %d PEM blocks", name, len(blocks))
	}
	return blocks[0]
}

// ctcppLogList lists the ct-cpp log keys as two usable logs of one operator.
func ctcppLogList(t *testing.T, dir string) *LogList {
	t.Helper()
	ll := &loglist3.LogList{Operators: []*loglist3.Operator{{Name: "ct-cpp", Email: []string{}, Logs: []*loglist3.Log{
		{Description: "ct-cpp ECDSA", Key: ctcppKey(t, dir, "ct-server-key-public.pem"), URL: "http://ct-cpp.invalid/", MMD: 86400,
			State: &loglist3.LogStates{Usable: &loglist3.LogState{Timestamp: time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{Description: "ct-cpp RSA", Key: ctcppKey(t, dir, "rsa/ct-server-key-public-rsa.pem"), URL: "http://ct-cpp-rsa.invalid/", MMD: 86400,
			State: &loglist3.LogStates{Usable: &loglist3.LogState{Timestamp: time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	}}}}
	b, err := json.Marshal(ll)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLogList(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCTCPPEmbedded verifies the embedded SCT of every ct-cpp certificate
// that has one, with its issuer given after a decoy (the issuer is found
// by name and signature, not by position), and the invalid one fails.
func TestCTCPPEmbedded(t *testing.T) {
	dir := sharedTestdata(t, "ct-cpp")
	v := &Verifier{Logs: ctcppLogList(t, dir), Policies: []string{}}
	ca := ctcppCert(t, dir, "ca-cert.pem")
	inter := ctcppCert(t, dir, "intermediate-cert.pem")
	preCA := ctcppCert(t, dir, "ca-pre-cert.pem")
	interPre := ctcppCert(t, dir, "intermediate-pre-cert.pem")
	for _, tc := range []struct {
		cert   string
		chain  []*x509.Certificate
		status string
		reason string
	}{
		{"test-embedded-cert.pem", []*x509.Certificate{preCA, ca}, StatusValid, ""},
		{"test-embedded-with-preca-cert.pem", []*x509.Certificate{preCA, ca}, StatusValid, ""},
		{"test-embedded-with-intermediate-cert.pem", []*x509.Certificate{ca, interPre, inter}, StatusValid, ""},
		{"test-embedded-with-intermediate-preca-cert.pem", []*x509.Certificate{interPre, ca, inter}, StatusValid, ""},
		{"test-invalid-embedded-cert.pem", []*x509.Certificate{ca}, StatusInvalid, "signature does not verify"},
		{"test-embedded-cert.pem", []*x509.Certificate{preCA, inter}, StatusInvalid, "issuer not found"},
	} {
		t.Run(tc.cert, func(t *testing.T) {
			leaf := ctcppCert(t, dir, tc.cert)
			r, err := v.Verify(context.Background(), Input{Chain: append([]*x509.Certificate{leaf}, tc.chain...)})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.SCTs) != 1 {
				t.Fatalf("%d SCTs, want 1: %+v", len(r.SCTs), r)
			}
			s := r.SCTs[0]
			if s.Status != tc.status || !strings.Contains(s.Reason, tc.reason) {
				t.Errorf("status %q (%s), want %q (%s)", s.Status, s.Reason, tc.status, tc.reason)
			}
			if s.Status == StatusValid && (s.Log != "ct-cpp ECDSA" || s.Timestamp.Year() != 2013) {
				t.Errorf("SCT from %q at %v", s.Log, s.Timestamp)
			}
			if r.OK != (tc.status == StatusValid) {
				t.Errorf("OK = %v", r.OK)
			}
		})
	}
}

// TestCTCPPDelivered verifies the SCTs the ct-cpp log issued for whole
// certificates (X.509 entries, as TLS or OCSP deliver them), with the
// ECDSA and the RSA log key, and one given for the wrong certificate.
func TestCTCPPDelivered(t *testing.T) {
	dir := sharedTestdata(t, "ct-cpp")
	v := &Verifier{Logs: ctcppLogList(t, dir), Policies: []string{}}
	ca := ctcppCert(t, dir, "ca-cert.pem")
	inter := ctcppCert(t, dir, "intermediate-cert.pem")
	for _, tc := range []struct {
		cert, proof string
		issuer      *x509.Certificate
		status, log string
	}{
		{"test-cert.pem", "test-cert.proof", ca, StatusValid, "ct-cpp ECDSA"},
		{"test-cert.pem", "rsa/test-cert-rsa.proof", ca, StatusValid, "ct-cpp RSA"},
		{"test-intermediate-cert.pem", "test-intermediate-cert.proof", inter, StatusValid, "ct-cpp ECDSA"},
		{"test-intermediate-cert.pem", "test-cert.proof", inter, StatusInvalid, "ct-cpp ECDSA"},
	} {
		t.Run(tc.cert+"+"+tc.proof, func(t *testing.T) {
			sct, err := os.ReadFile(filepath.Join(dir, tc.proof))
			if err != nil {
				t.Fatal(err)
			}
			r, err := v.Verify(context.Background(), Input{Chain: []*x509.Certificate{ctcppCert(t, dir, tc.cert), tc.issuer}, TLSSCTs: [][]byte{sct}})
			if err != nil {
				t.Fatal(err)
			}
			if s := r.SCTs[0]; s.Status != tc.status || s.Log != tc.log || s.Source != SourceTLS {
				t.Errorf("got %+v, want %s from %s", s, tc.status, tc.log)
			}
		})
	}
}

// TestCTCPPPrecertProofs verifies the SCTs ct-cpp's log issued for
// precertificates (the .proof files beside each pre-cert) against the
// precertificate entry rebuilt from the final certificate: issuer key
// hash of the final issuer and the final TBS with the SCT list cut out.
// For the precertificates of a precertificate-signing CA (preca) this is
// RFC 6962 section 3.1's rule that the log entry names the final issuer,
// not the precertificate signer.
func TestCTCPPPrecertProofs(t *testing.T) {
	dir := sharedTestdata(t, "ct-cpp")
	ll := ctcppLogList(t, dir)
	ca := ctcppCert(t, dir, "ca-cert.pem")
	inter := ctcppCert(t, dir, "intermediate-cert.pem")
	for _, tc := range []struct {
		final, proof string
		issuer       *x509.Certificate
	}{
		{"test-embedded-cert.pem", "test-embedded-pre-cert.proof", ca},
		{"test-embedded-cert.pem", "rsa/test-embedded-pre-cert-rsa.proof", ca},
		{"test-embedded-with-preca-cert.pem", "test-embedded-with-preca-pre-cert.proof", ca},
		{"test-embedded-with-intermediate-cert.pem", "test-embedded-with-intermediate-pre-cert.proof", inter},
		{"test-embedded-with-intermediate-preca-cert.pem", "test-embedded-with-intermediate-preca-pre-cert.proof", inter},
	} {
		t.Run(tc.proof, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, tc.proof))
			if err != nil {
				t.Fatal(err)
			}
			sct, err := ParseSCT(raw)
			if err != nil {
				t.Fatal(err)
			}
			final := ctcppCert(t, dir, tc.final)
			tbs, err := RemoveSCTList(final.RawTBSCertificate)
			if err != nil {
				t.Fatal(err)
			}
			l := ll.Lookup(sct.LogID)
			if l == nil {
				t.Fatalf("log %x not in the list", sct.LogID)
			}
			entry := precertEntry(sha256.Sum256(tc.issuer.RawSubjectPublicKeyInfo), tbs)
			if err := verifySignature(l.PublicKey, sct.HashAlg, sct.SigAlg, sct.Signature, signedData(sct, entry)); err != nil {
				t.Errorf("%s: %v", l.Description, err)
			}
		})
	}
}

// TestRemoveSCTListMatchesCTGo: on the ct-cpp certificates, which are DER
// as ct-go would encode them, cutting the extension out gives the bytes
// ct-go's re-encoding gives.
func TestRemoveSCTListMatchesCTGo(t *testing.T) {
	dir := sharedTestdata(t, "ct-cpp")
	for _, name := range []string{"test-embedded-cert.pem", "test-embedded-with-preca-cert.pem", "test-embedded-with-intermediate-cert.pem", "test-embedded-with-intermediate-preca-cert.pem"} {
		c := ctcppCert(t, dir, name)
		got, err := RemoveSCTList(c.RawTBSCertificate)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ctx509.RemoveSCTList(c.RawTBSCertificate)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: RemoveSCTList differs from ct-go's", name)
		}
	}
}
