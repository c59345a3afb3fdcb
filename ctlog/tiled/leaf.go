package tiled

import (
	"crypto/x509"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/sctverify"
)

// leaf is a submitted chain's first certificate, as the chain's checks
// need it. It is parsed with crypto/x509 where that takes it, at a
// fraction of the cost of ct-go's reflective ASN.1, which ctfe uses and
// which stays the reference: a leaf crypto/x509 refuses (a negative
// serial number, a malformed extension ct-go lets through) is parsed by
// ct-go's x509, and so is one whose signature crypto/x509 will not check
// (SHA-1), before it is refused. What either takes is accepted, and what
// is refused is refused with ct-go's error.
type leaf struct {
	der       []byte
	std       *x509.Certificate   // nil: crypto/x509 refused it
	ct        *ctx509.Certificate // parsed when needed (std nil, or its check failed)
	rawTBS    []byte
	rawIssuer []byte
	notAfter  time.Time
	poisoned  bool // a critical CT poison extension (RFC 6962 section 3.1)
}

func parseLeaf(der []byte) (*leaf, error) {
	if c, err := x509.ParseCertificate(der); err == nil {
		l := &leaf{der: der, std: c, rawTBS: c.RawTBSCertificate, rawIssuer: c.RawIssuer, notAfter: c.NotAfter}
		for _, ext := range c.Extensions {
			if ext.Id.Equal(sctverify.OIDPoison) {
				l.poisoned = ext.Critical
				break
			}
		}
		return l, nil
	}
	c, err := parse(der)
	if err != nil {
		return nil, err
	}
	return &leaf{der: der, ct: c, rawTBS: c.RawTBSCertificate, rawIssuer: c.RawIssuer, notAfter: c.NotAfter, poisoned: hasPoison(c)}, nil
}

// signedBy checks that iss signed the leaf: with crypto/x509 when both
// parsed there and it agrees, else with ct-go's x509, whose error it is.
func (l *leaf) signedBy(iss *issuer) error {
	if !iss.ct.IsCA && !isPrecertSigner(iss.ct) {
		return errNotCA
	}
	if l.std != nil && iss.std != nil && l.std.CheckSignatureFrom(iss.std) == nil {
		return nil
	}
	if l.ct == nil {
		c, err := parse(l.der)
		if err != nil {
			return err
		}
		l.ct = c
	}
	return l.ct.CheckSignatureFrom(iss.ct)
}
