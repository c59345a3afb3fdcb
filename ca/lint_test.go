package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestLintBuild checks, for both intermediates and both kinds of
// subscriber key, that the lint certificate is what Boulder's linting needs:
// a certificate whose TBSCertificate is byte for byte the one the real
// issuer then signs, signed by the lint issuer with a key of the real
// issuer's type and size (zlint infers the issuer's curve from the
// signature's length), with the real issuer's signature algorithm.
func TestLintBuild(t *testing.T) {
	_, h := generated(t)
	l, err := newLinter([]*Issuer{h.ECDSAIntermediate, h.RSAIntermediate})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ecdsa-p256", "rsa-2048"} {
		t.Run(key, func(t *testing.T) {
			pub := testKey(t, key)
			n, err := Request{PublicKey: pub, Names: []string{"example.com"}}.normalize()
			if err != nil {
				t.Fatal(err)
			}
			for _, iss := range []*Issuer{h.ECDSAIntermediate, h.RSAIntermediate} {
				serial, err := randomSerial()
				if err != nil {
					t.Fatal(err)
				}
				tmpl, err := n.leafTemplate(serial, time.Now(), issuerURLs{"http://x/i.der", "http://x/c.crl"}, poisonExt)
				if err != nil {
					t.Fatal(err)
				}
				lintDER, tbs, err := l.build(tmpl, pub, iss)
				if err != nil {
					t.Fatal(err)
				}
				lc, err := x509.ParseCertificate(lintDER)
				if err != nil {
					t.Fatalf("lint certificate: %v", err)
				}
				if !bytes.Equal(lc.RawTBSCertificate, tbs) {
					t.Error("build returned a TBSCertificate other than the lint certificate's")
				}
				li := l.issuers[iss]
				if err := lc.CheckSignatureFrom(li.cert); err != nil {
					t.Errorf("lint certificate not signed by the lint issuer: %v", err)
				}
				real, err := x509.CreateCertificate(rand.Reader, tmpl, iss.Cert, pub, iss.signer)
				if err != nil {
					t.Fatal(err)
				}
				rc, err := x509.ParseCertificate(real)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(rc.RawTBSCertificate, tbs) {
					t.Error("the real issuer's TBSCertificate differs from the linted one")
				}
				if lc.SignatureAlgorithm != rc.SignatureAlgorithm {
					t.Errorf("lint signature algorithm %v, real %v", lc.SignatureAlgorithm, rc.SignatureAlgorithm)
				}
				if ec, ok := iss.signer.Public().(*ecdsa.PublicKey); ok {
					if ec.Curve.Params().BitSize == 384 && len(lc.Signature) <= 72 {
						t.Errorf("lint signature of %d bytes: zlint would take it for P-256", len(lc.Signature))
					}
				} else if len(lc.Signature) != len(rc.Signature) {
					t.Errorf("lint signature of %d bytes, real %d", len(lc.Signature), len(rc.Signature))
				}
				if err := l.lint(lintDER); err != nil {
					t.Errorf("lint: %v", err)
				}
			}
		})
	}
}

// TestLintRefuses checks that the linter runs zlint's lints (the registry
// is not empty) and refuses a certificate that breaks one.
func TestLintRefuses(t *testing.T) {
	_, h := generated(t)
	l, err := newLinter([]*Issuer{h.ECDSAIntermediate})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.lints) < 100 {
		t.Fatalf("%d lints, want zlint's hundreds", len(l.lints))
	}
	pub := testKey(t, "ecdsa-p256")
	n, err := Request{PublicKey: pub, Names: []string{"example.com"}}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	serial, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := n.leafTemplate(serial, time.Now(), issuerURLs{"http://x/i.der", "http://x/c.crl"}, poisonExt)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotAfter = tmpl.NotBefore.Add(400 * 24 * time.Hour) // beyond the BRs' maximum
	der, _, err := l.build(tmpl, pub, h.ECDSAIntermediate)
	if err != nil {
		t.Fatal(err)
	}
	err = l.lint(der)
	if !errors.Is(err, ErrLint) || !strings.Contains(err.Error(), "validity") {
		t.Errorf("lint of a 400-day certificate: %v, want ErrLint naming a validity lint", err)
	}
}
