package sctverify

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// BenchmarkVerify compares this package's Verify (signatures only: no
// inclusion proofs) with ct-go's ctutil.VerifySCT in a loop, on the same
// certificates in the same run: 64 ECDSA P-256 certificates from a P-256
// CA, each with 2 embedded SCTs from P-256 logs of 2 operators. Both start
// from parsed certificates (stdlib for sctverify, ct-go's x509 fork for
// ctutil) and parse the SCTs from the certificate each time; ct-go is
// given the issuer at chain[1] and the log keys by ID. sctverify also
// finds the issuer by signature (one more ECDSA verification per
// certificate), cuts the TBS byte for byte, and evaluates three policies.
// The figure to compare is certs/s.
func BenchmarkVerify(b *testing.B) {
	a, o := newTestLog(b, "a", "A"), newTestLog(b, "b", "B")
	ca := newTestCA(b)
	v := &Verifier{Logs: makeLogList(b, a, o)}
	const n = 64
	var certs [][]*x509.Certificate
	var ctCerts [][]*ctx509.Certificate
	nb := time.Now().Add(-2 * time.Hour)
	for range n {
		c := ca.issue(b, nb, nb.Add(90*Day), []sctSpec{{log: a}, {log: o}}, nil)
		certs = append(certs, []*x509.Certificate{c, ca.cert})
		leaf, err := ctx509.ParseCertificate(c.Raw)
		if err != nil {
			b.Fatal(err)
		}
		iss, err := ctx509.ParseCertificate(ca.cert.Raw)
		if err != nil {
			b.Fatal(err)
		}
		ctCerts = append(ctCerts, []*ctx509.Certificate{leaf, iss})
	}
	b.Run("sctverify", func(b *testing.B) {
		i := 0
		for b.Loop() {
			r, err := v.Verify(context.Background(), Input{Chain: certs[i%n]})
			if err != nil || !r.OK {
				b.Fatalf("%v %+v", err, r)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
	b.Run("ctgo-ctutil", func(b *testing.B) {
		i := 0
		for b.Loop() {
			chain := ctCerts[i%n]
			for _, raw := range chain[0].SCTList.SCTList {
				var sct ct.SignedCertificateTimestamp
				if rest, err := cttls.Unmarshal(raw.Val, &sct); err != nil || len(rest) > 0 {
					b.Fatal(err)
				}
				l := v.Logs.Lookup(sct.LogID.KeyID)
				if err := ctutil.VerifySCT(l.PublicKey, chain, &sct, true); err != nil {
					b.Fatal(err)
				}
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
}
