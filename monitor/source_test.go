package monitor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// TestParseLeaf: the monitor's own parse of a MerkleTreeLeaf gives what
// ct-go's gives: the names, the certificate (or pre_certificate) bytes;
// and refuses what is not a leaf.
func TestParseLeaf(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, key.Public(), key)
	ca, _ := x509.ParseCertificate(caDER)
	mk := func(precert bool) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "cn.example.com"}, DNSNames: []string{"a.example.com", "b.example.com"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		if precert {
			tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}, Critical: true, Value: asn1.NullBytes}}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	for _, precert := range []bool{false, true} {
		der := mk(precert)
		c, err := ctx509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		etype := ct.X509LogEntryType
		if precert {
			etype = ct.PrecertLogEntryType
		}
		cac, _ := ctx509.ParseCertificate(caDER)
		leaf, err := ct.MerkleTreeLeafFromChain([]*ctx509.Certificate{c, cac}, etype, 1234)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := tls.Marshal(*leaf)
		var extra []byte
		if precert {
			extra, _ = tls.Marshal(ct.PrecertChainEntry{PreCertificate: ct.ASN1Cert{Data: der}, CertificateChain: []ct.ASN1Cert{{Data: caDER}}})
		} else {
			extra, _ = tls.Marshal(ct.CertificateChain{Entries: []ct.ASN1Cert{{Data: caDER}}})
		}
		e := Entry{Index: 7}
		parseLeaf(&e, in, extra)
		want := []string{"a.example.com", "b.example.com", "cn.example.com"}
		if e.Err != nil || e.Precert != precert || !slices.Equal(e.Names, want) || string(e.Cert) != string(der) {
			t.Errorf("precert %v: %+v (err %v), names %v", precert, e.Precert, e.Err, e.Names)
		}
		if e.LeafHash != leafHash(in) {
			t.Error("leaf hash")
		}
		bad := Entry{}
		parseLeaf(&bad, in[:len(in)-1], extra)
		if bad.Err == nil {
			t.Errorf("precert %v: a truncated leaf parsed", precert)
		}
	}
}

// FuzzParseLeaf: log entries, which come from outside, never panic the
// parser; an entry that parses has a leaf hash and bytes.
func FuzzParseLeaf(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x30, 0, 0}, []byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}, []byte{0, 0, 1, 0x30})
	f.Fuzz(func(t *testing.T, in, extra []byte) {
		var e Entry
		parseLeaf(&e, in, extra)
		if e.Err == nil && len(e.Cert) == 0 {
			t.Fatal("parsed without a certificate")
		}
	})
}
