package loadgen

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// testCA is a root and an intermediate like the staging hierarchy's ECDSA
// branch (P-384), made fresh for each test.
type testCA struct {
	root, inter *x509.Certificate
	interKey    crypto.Signer
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	now := time.Now()
	rootKey := mustKey(t)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loadgen test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	root := mustCert(t, rootTmpl, rootTmpl, rootKey, rootKey)
	interKey := mustKey(t)
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "loadgen test intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(3, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return &testCA{root: root, inter: mustCert(t, interTmpl, root, interKey, rootKey), interKey: interKey}
}

func mustKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *testCA) config(notAfter time.Time) *Config {
	return &Config{Issuer: c.inter, IssuerSigner: c.interKey, Chain: []*x509.Certificate{c.root}, NotAfter: notAfter}
}

func TestPrecertsAreUniquePoisonedAndChain(t *testing.T) {
	tca := newTestCA(t)
	now := time.Now()
	notAfter := now.AddDate(0, 0, 90).UTC().Truncate(time.Second)
	iss, err := newPrecertIssuer(tca.config(notAfter), now)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	pcs, err := iss.generate(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(tca.root)
	inters.AddCert(tca.inter)
	serials, names := map[string]bool{}, map[string]bool{}
	for i, p := range pcs {
		if len(p.chain) != 3 || !bytes.Equal(p.chain[1].Data, tca.inter.Raw) || !bytes.Equal(p.chain[2].Data, tca.root.Raw) {
			t.Fatalf("precert %d: chain is not precert, intermediate, root", i)
		}
		c, err := x509.ParseCertificate(p.chain[0].Data)
		if err != nil {
			t.Fatalf("precert %d: %v", i, err)
		}
		checkPoison(t, c)
		if serials[c.SerialNumber.String()] || names[c.Subject.CommonName] {
			t.Errorf("precert %d: serial %x or name %q repeats", i, c.SerialNumber, c.Subject.CommonName)
		}
		serials[c.SerialNumber.String()], names[c.Subject.CommonName] = true, true
		if len(c.DNSNames) != 1 || c.DNSNames[0] != c.Subject.CommonName {
			t.Errorf("precert %d: SANs %q, want the common name %q", i, c.DNSNames, c.Subject.CommonName)
		}
		if !c.NotAfter.Equal(notAfter) {
			t.Errorf("precert %d: NotAfter %s, want %s", i, c.NotAfter, notAfter)
		}
		c.UnhandledCriticalExtensions = nil // the poison, checked above
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now}); err != nil {
			t.Errorf("precert %d does not chain to the issuer: %v", i, err)
		}
		checkLeaf(t, &p, tca.inter)
	}
}

func checkPoison(t *testing.T, c *x509.Certificate) {
	t.Helper()
	var found int
	for _, e := range c.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}) {
			found++
			if !e.Critical || !bytes.Equal(e.Value, []byte{0x05, 0x00}) {
				t.Errorf("%s: poison extension critical=%v value=%x, want critical ASN.1 NULL", c.Subject.CommonName, e.Critical, e.Value)
			}
		}
	}
	if found != 1 {
		t.Errorf("%s: %d poison extensions, want 1", c.Subject.CommonName, found)
	}
}

// checkLeaf checks the precomputed leaf against RFC 6962 section 3.2: the
// issuer's key hash and the TBS without the poison.
func checkLeaf(t *testing.T, p *precert, issuer *x509.Certificate) {
	t.Helper()
	c, err := ctx509.ParseCertificate(p.chain[0].Data)
	if ctx509.IsFatal(err) {
		t.Fatal(err)
	}
	tbs, err := ctx509.BuildPrecertTBS(c.RawTBSCertificate, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := p.leaf.TimestampedEntry
	if e.EntryType != ct.PrecertLogEntryType || e.PrecertEntry == nil {
		t.Fatalf("leaf entry type %v, want a precert entry", e.EntryType)
	}
	if e.PrecertEntry.IssuerKeyHash != sha256.Sum256(issuer.RawSubjectPublicKeyInfo) {
		t.Error("leaf issuer key hash is not the intermediate's")
	}
	if !bytes.Equal(e.PrecertEntry.TBSCertificate, tbs) {
		t.Error("leaf TBS is not the precertificate's TBS without the poison")
	}
}
