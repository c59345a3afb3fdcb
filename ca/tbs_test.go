package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"
)

// TestCheckCorrespondence builds precertificate and final TBSCertificates
// that differ in one way each and checks the DER comparison catches it.
func TestCheckCorrespondence(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	x := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 1}, Value: asn1.NullBytes}
	y := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 2}, Value: asn1.NullBytes}
	sct := pkix.Extension{Id: SCTListOID, Value: []byte{4, 2, 0, 0}}
	base := func(exts ...pkix.Extension) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "example.com"},
			NotBefore: time.Unix(1e9, 0), NotAfter: time.Unix(1e9+86400, 0),
			DNSNames: []string{"example.com"}, ExtraExtensions: exts,
		}
	}
	tbs := func(c *x509.Certificate) []byte {
		der, err := x509.CreateCertificate(rand.Reader, c, c, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := tbsOf(der)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pre := tbs(base(x, y, poisonExt))
	for _, tc := range []struct {
		name  string
		final *x509.Certificate
		ok    bool
	}{
		{"Corresponds", base(x, y, sct), true},
		{"ExtensionOrder", base(y, x, sct), false},
		{"SCTElsewhere", base(x, sct, y), false},
		{"ExtraExtension", base(x, y, sct, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 3}, Value: asn1.NullBytes}), false},
		{"MissingExtension", base(x, sct), false},
		{"NoSCTList", base(x, y, y), false},
		{"PoisonKept", base(x, y, poisonExt), false},
		{"PoisonAndSCT", base(x, y, sct, poisonExt), false},
		{"Name", func() *x509.Certificate { c := base(x, y, sct); c.DNSNames = []string{"example.org"}; return c }(), false},
		{"Validity", func() *x509.Certificate { c := base(x, y, sct); c.NotAfter = c.NotAfter.Add(time.Second); return c }(), false},
		{"Subject", func() *x509.Certificate { c := base(x, y, sct); c.Subject.CommonName = "x"; return c }(), false},
		{"Serial", func() *x509.Certificate { c := base(x, y, sct); c.SerialNumber = big.NewInt(43); return c }(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCorrespondence(pre, tbs(tc.final))
			if tc.ok && err != nil {
				t.Fatalf("CheckCorrespondence: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrMismatch) {
				t.Fatalf("CheckCorrespondence: %v, want ErrMismatch", err)
			}
		})
	}
	if err := CheckCorrespondence(pre, pre); !errors.Is(err, ErrMismatch) {
		t.Errorf("precertificate against itself: %v", err)
	}
	if err := CheckCorrespondence(pre[:len(pre)-1], pre); !errors.Is(err, ErrMismatch) {
		t.Errorf("truncated TBS: %v", err)
	}
}
