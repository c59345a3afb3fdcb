package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
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
// issuer's type under a copy of the issuer certificate with the same name
// and key identifier, so that the TBSCertificate it lints is the one the
// real signature will cover.
type linter struct {
	registry lint.Registry
	issuers  map[*Issuer]*Issuer // real issuer -> lint issuer
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
	l := &linter{registry: reg, issuers: map[*Issuer]*Issuer{}}
	for _, iss := range issuers {
		li, err := lintIssuer(iss)
		if err != nil {
			return nil, err
		}
		l.issuers[iss] = li
	}
	return l, nil
}

// lintIssuer makes a self-signed certificate with the subject and key
// identifier of iss and a fresh key of the same type and size.
func lintIssuer(iss *Issuer) (*Issuer, error) {
	var key crypto.Signer
	var err error
	if checkP384(iss.Cert.PublicKey) == nil {
		key, err = newP384()
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
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("couldn't create the lint issuer for %s: %w", iss.Cert.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issuer{Cert: cert, Signer: key}, nil
}

func issuerRSABits(iss *Issuer) int {
	if k, ok := iss.Signer.Public().(interface{ Size() int }); ok {
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
	der, err = x509.CreateCertificate(rand.Reader, tmpl, li.Cert, pub, li.Signer)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't build certificate: %w", err)
	}
	tbs, err = tbsOf(der)
	return der, tbs, err
}

// lint runs zlint on a DER certificate or precertificate.
func (l *linter) lint(der []byte) error {
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto couldn't parse it: %v", ErrLint, err)
	}
	rs := zlint.LintCertificateEx(zc, l.registry)
	if !rs.ErrorsPresent && !rs.FatalsPresent && !rs.WarningsPresent {
		return nil
	}
	var bad []string
	for name, r := range rs.Results {
		if r.Status >= lint.Warn {
			s := fmt.Sprintf("%s (%s)", name, r.Status)
			if r.Details != "" {
				s += ": " + r.Details
			}
			bad = append(bad, s)
		}
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %s", ErrLint, strings.Join(bad, "; "))
}
