package tiled

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	ctpkix "github.com/google/certificate-transparency-go/x509/pkix"

	"github.com/ctstage/ctstage/internal/testsupport/testca"
)

// TestPrecertTBS: the TBSCertificate a precertificate's entry holds, the
// poison cut out byte for byte, is the one ct-go's BuildPrecertTBS (which
// ctfe uses) re-encodes; the issuers are parsed once.
func TestPrecertTBS(t *testing.T) {
	ca, err := testca.New("precert tbs")
	if err != nil {
		t.Fatal(err)
	}
	cv, err := newChainVerifier([][]byte{ca.Root.Raw})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		chain, err := ca.Leaf("tbs.example.com", time.Now().AddDate(0, 0, 30+i), true)
		if err != nil {
			t.Fatal(err)
		}
		v, err := cv.verify(chain, true, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := parse(chain[0])
		if err != nil {
			t.Fatal(err)
		}
		want, err := ctx509.BuildPrecertTBS(leaf.RawTBSCertificate, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.tbs, want) {
			t.Errorf("precertificate %d: the entry's TBS differs from BuildPrecertTBS's", i)
		}
	}
	if n := len(cv.parsed); n != len(chainIssuers(t, ca)) {
		t.Errorf("%d issuers parsed and kept, want %d", n, len(chainIssuers(t, ca)))
	}
}

func chainIssuers(t *testing.T, ca *testca.CA) [][]byte {
	chain, err := ca.Leaf("x.example.com", time.Now().AddDate(0, 0, 30), false)
	if err != nil {
		t.Fatal(err)
	}
	return chain[1:]
}

// TestLeafParsers: a leaf is checked with crypto/x509 where that takes
// it, and with ct-go's x509 (ctfe's) otherwise; what either takes is
// accepted, and a refusal carries ct-go's error.
func TestLeafParsers(t *testing.T) {
	ca, err := testca.New("leaf parsers")
	if err != nil {
		t.Fatal(err)
	}
	cv, err := newChainVerifier([][]byte{ca.Root.Raw})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := ctx509.ParseCertificate(ca.Intermediate.Raw)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// leafWith signs a leaf under the intermediate with ct-go's x509,
	// which makes what crypto/x509 will not.
	leafWith := func(serial int64, alg ctx509.SignatureAlgorithm, key crypto.Signer) [][]byte {
		t.Helper()
		tmpl := &ctx509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: ctpkix.Name{CommonName: "leaf.example.com"},
			DNSNames: []string{"leaf.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(0, 0, 30),
			KeyUsage: ctx509.KeyUsageDigitalSignature, ExtKeyUsage: []ctx509.ExtKeyUsage{ctx509.ExtKeyUsageServerAuth},
			SignatureAlgorithm: alg,
		}
		der, err := ctx509.CreateCertificate(rand.Reader, tmpl, inter, ca.LeafKey.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		return [][]byte{der, ca.Intermediate.Raw, ca.Root.Raw}
	}
	for _, tc := range []struct {
		name               string
		chain              [][]byte
		std, ctChecked, ok bool
	}{
		{"ordinary", leafWith(5, ctx509.ECDSAWithSHA256, ca.IntermediateKey), true, false, true},
		{"negative serial: crypto/x509 refuses to parse", leafWith(-5, ctx509.ECDSAWithSHA256, ca.IntermediateKey), false, true, true},
		{"SHA-1: crypto/x509 refuses to check", leafWith(6, ctx509.ECDSAWithSHA1, ca.IntermediateKey), true, true, true},
		{"signed by another key", leafWith(7, ctx509.ECDSAWithSHA256, other), true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseLeaf(tc.chain[0])
			if err != nil {
				t.Fatal(err)
			}
			if (l.std != nil) != tc.std {
				t.Errorf("parsed by crypto/x509: %v, want %v", l.std != nil, tc.std)
			}
			iss, err := cv.parse(tc.chain[1])
			if err != nil {
				t.Fatal(err)
			}
			err = l.signedBy(iss)
			if (l.ct != nil) != tc.ctChecked {
				t.Errorf("checked by ct-go's x509: %v, want %v", l.ct != nil, tc.ctChecked)
			}
			if (err == nil) != tc.ok {
				t.Fatalf("signedBy: %v, want ok %v", err, tc.ok)
			}
			if _, err := cv.verify(tc.chain, false, time.Time{}, time.Time{}); (err == nil) != tc.ok {
				t.Fatalf("verify: %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				c, _ := parse(tc.chain[0])
				want := c.CheckSignatureFrom(inter)
				if want == nil || err.Error() != want.Error() {
					t.Errorf("signedBy: %v, want ct-go's %v", err, want)
				}
			}
		})
	}
}

// BenchmarkVerifyPrecert: a precertificate's chain as a submission
// brings it, from the add-pre-chain body to what the entry needs.
func BenchmarkVerifyPrecert(b *testing.B) {
	ca, err := testca.New("bench")
	if err != nil {
		b.Fatal(err)
	}
	cv, err := newChainVerifier([][]byte{ca.Root.Raw})
	if err != nil {
		b.Fatal(err)
	}
	chain, err := ca.Leaf("bench.example.com", time.Now().AddDate(0, 0, 90), true)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(ct.AddChainRequest{Chain: chain})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		chain, ok := decodeChain(body)
		if !ok {
			b.Fatal("decodeChain refused the body")
		}
		if _, err := cv.verify(chain, true, time.Time{}, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
