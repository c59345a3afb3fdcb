package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"

	zx509 "github.com/zmap/zcrypto/x509"
	_ "github.com/zmap/zlint/v3" // registers every lint in the global registry
	"github.com/zmap/zlint/v3/lint"
)

// ErrLint reports a certificate that zlint finds an error or warning in.
var ErrLint = errors.New("certificate failed linting")

// IgnoredLints are the zlint lints the CA does not run, each with the
// reason. Everything else must report neither error nor warning.
var IgnoredLints = map[string]string{
	// The classic profile includes a commonName, as Let's Encrypt's does;
	// the Baseline Requirements only recommend against it.
	"w_subject_common_name_included": "the classic profile keeps the commonName, as Let's Encrypt's does",
	// RFC 5280 recommends a Subject Key Identifier, the Baseline
	// Requirements recommend against one in subscriber certificates (and
	// w_ext_subject_key_identifier_not_recommended_subscriber says so): the
	// CA follows the Baseline Requirements, as Let's Encrypt does.
	"w_ext_subject_key_identifier_missing_sub_cert": "the Baseline Requirements recommend against the SKID",
	// The AIA and CRL URLs point to the ctstage server, on loopback by
	// default: a staging hierarchy is local by design.
	"w_sub_cert_aia_contains_internal_names": "the staging CA's URLs are local by design",
	// It verifies every certificate's signature against one compromised
	// eMudhra key: 75% of zlint's time, and the staging intermediates are
	// not that key.
	"e_cert_issued_by_compromised_emudhra_ca": "the staging intermediates are not the compromised eMudhra key",
}

// linter lints certificates before the real issuer signs them, the way
// Boulder does: it signs the same template with a throwaway key of the
// issuer's type and size under a copy of the issuer certificate with the
// same name and key identifier, so that the TBSCertificate it lints is the
// one the real signature will cover.
//
// For an ECDSA issuer it avoids the expensive part of that (x509's
// CreateCertificate verifies every signature it makes, and a P-384
// verification costs three P-384 signatures): x509 encodes the
// TBSCertificate under a P-256 stand-in key, with the issuer's signature
// algorithm (ecdsa-with-SHA384 for P-384) set explicitly, and the lint
// certificate is that TBSCertificate signed by the throwaway P-384 key, not
// verified again. The signature has the issuer's curve's size, which zlint
// looks at (e_mp_ecdsa_signature_encoding_correct infers the curve from it).
type linter struct {
	lints   []*lint.CertificateLint // the registry's, fetched once
	config  lint.Configuration
	issuers map[*Issuer]*lintIssuer
}

// lintIssuer stands in for a real issuer when linting.
type lintIssuer struct {
	// cert is a self-signed certificate with the real issuer's subject and
	// key identifier, for key, a fresh key of the same type and size.
	cert *x509.Certificate
	key  crypto.Signer
	// For ECDSA issuers, tbsParent is cert with tbsKey's public key: the
	// parent under which x509 encodes the TBSCertificate, with the real
	// issuer's signature algorithm sigAlg, whose hash is hash. Nil for RSA.
	tbsParent *x509.Certificate
	tbsKey    crypto.Signer
	sigAlg    x509.SignatureAlgorithm
	hash      crypto.Hash
}

func newLinter(issuers []*Issuer) (*linter, error) {
	var exclude []string
	for name := range IgnoredLints {
		exclude = append(exclude, name)
	}
	slices.Sort(exclude)
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{ExcludeNames: exclude})
	if err != nil {
		return nil, fmt.Errorf("couldn't set up zlint: %w", err)
	}
	l := &linter{lints: reg.CertificateLints().Lints(), config: reg.GetConfiguration(), issuers: map[*Issuer]*lintIssuer{}}
	for _, iss := range issuers {
		li, err := newLintIssuer(iss)
		if err != nil {
			return nil, err
		}
		l.issuers[iss] = li
	}
	return l, nil
}

// newLintIssuer makes a self-signed certificate with the subject and key
// identifier of iss and a fresh key of the same type and size, and for an
// ECDSA issuer the P-256 stand-in that x509 encodes TBSCertificates under.
func newLintIssuer(iss *Issuer) (*lintIssuer, error) {
	var key crypto.Signer
	var err error
	ec, isEC := iss.signer.Public().(*ecdsa.PublicKey)
	if isEC {
		key, err = ecdsa.GenerateKey(ec.Curve, rand.Reader)
	} else {
		key, err = newRSA(issuerRSABits(iss))()
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't create a lint key: %w", err)
	}
	tmpl := *iss.Cert
	tmpl.RawSubject = iss.Cert.RawSubject
	tmpl.ExtraExtensions, tmpl.Extensions = nil, nil
	tmpl.PublicKey = key.Public()
	tmpl.SignatureAlgorithm = 0
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("couldn't create the lint issuer for %s: %w", iss.Cert.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	li := &lintIssuer{cert: cert, key: key}
	if !isEC {
		return li, nil
	}
	switch ec.Curve {
	case elliptic.P256():
		li.sigAlg, li.hash = x509.ECDSAWithSHA256, crypto.SHA256
	case elliptic.P384():
		li.sigAlg, li.hash = x509.ECDSAWithSHA384, crypto.SHA384
	case elliptic.P521():
		li.sigAlg, li.hash = x509.ECDSAWithSHA512, crypto.SHA512
	default:
		return nil, fmt.Errorf("issuer %s: unsupported curve %s", iss.Cert.Subject.CommonName, ec.Curve.Params().Name)
	}
	if li.tbsKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("couldn't create a lint key: %w", err)
	}
	parent := *cert
	parent.PublicKey = li.tbsKey.Public()
	li.tbsParent = &parent
	return li, nil
}

func issuerRSABits(iss *Issuer) int {
	if k, ok := iss.signer.Public().(interface{ Size() int }); ok {
		return k.Size() * 8
	}
	return 2048
}

// build signs tmpl for pub with the lint issuer standing in for iss and
// returns the certificate, to lint, and its TBSCertificate, which the real
// signature must cover unchanged.
func (l *linter) build(tmpl *x509.Certificate, pub crypto.PublicKey, iss *Issuer) (der, tbs []byte, err error) {
	li := l.issuers[iss]
	if li == nil {
		return nil, nil, fmt.Errorf("no lint issuer for %s", iss)
	}
	if li.tbsParent == nil {
		der, err = x509.CreateCertificate(rand.Reader, tmpl, li.cert, pub, li.key)
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't build certificate: %w", err)
		}
		tbs, err = tbsOf(der)
		return der, tbs, err
	}
	t := *tmpl
	t.SignatureAlgorithm = li.sigAlg
	der, err = x509.CreateCertificate(rand.Reader, &t, li.tbsParent, pub, li.tbsKey)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't build certificate: %w", err)
	}
	var c rawCertificate
	if rest, err := asn1.Unmarshal(der, &c); err != nil || len(rest) > 0 {
		return nil, nil, fmt.Errorf("couldn't parse the certificate x509 built: %v", err)
	}
	h := li.hash.New()
	h.Write(c.TBS.FullBytes)
	sig, err := li.key.Sign(rand.Reader, h.Sum(nil), li.hash)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't sign the lint certificate: %w", err)
	}
	c.Signature = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	if der, err = asn1.Marshal(c); err != nil {
		return nil, nil, fmt.Errorf("couldn't encode the lint certificate: %w", err)
	}
	return der, c.TBS.FullBytes, nil
}

// rawCertificate is a Certificate (RFC 5280 section 4.1) with its
// TBSCertificate and algorithm kept as encoded.
type rawCertificate struct {
	TBS       asn1.RawValue
	Algorithm asn1.RawValue
	Signature asn1.BitString
}

// lint runs zlint on a DER certificate or precertificate.
func (l *linter) lint(der []byte) error {
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto couldn't parse it: %v", ErrLint, err)
	}
	// What zlint.LintCertificateEx does, without its per-call costs (sorting
	// the registry's names, a map of every result).
	var bad []string
	for _, lt := range l.lints {
		r := lt.Execute(zc, l.config)
		if r.Status >= lint.Warn {
			s := fmt.Sprintf("%s (%s)", lt.Name, r.Status)
			if r.Details != "" {
				s += ": " + r.Details
			}
			bad = append(bad, s)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %s", ErrLint, strings.Join(bad, "; "))
}
