package tiled

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/transparency-dev/tessera/ctonly"

	"github.com/ctstage/ctstage/sctverify"
)

// chainVerifier checks submitted chains, RFC 6962 section 3.1's way:
// every certificate signed by the next, the last one a root or signed by
// one. A verified issuer-to-issuer link is cached, so that a submission
// under a known intermediate costs one signature check, the leaf's.
type chainVerifier struct {
	roots []*ctx509.Certificate
	mu    sync.Mutex
	links map[[64]byte]bool // sha256(child) || sha256(parent), verified
	// parsed holds the issuers seen, parsed once: a submission under a
	// known intermediate then parses only its leaf. Bounded by maxParsed.
	parsed map[[32]byte]*issuer
}

// issuer is an issuer parsed by ct-go's x509 and, where it takes it, by
// crypto/x509 for the leaf's fast path (leaf.go).
type issuer struct {
	ct  *ctx509.Certificate
	std *x509.Certificate // nil: crypto/x509 refused it
}

// maxParsed bounds the parsed issuers kept; beyond it, new ones are parsed
// each time (a log sees a few hundred issuers, not thousands).
const maxParsed = 4096

func newChainVerifier(roots [][]byte) (*chainVerifier, error) {
	v := &chainVerifier{links: map[[64]byte]bool{}, parsed: map[[32]byte]*issuer{}}
	for _, der := range roots {
		c, err := parse(der)
		if err != nil {
			return nil, fmt.Errorf("an accepted root does not parse: %w", err)
		}
		v.roots = append(v.roots, c)
	}
	if len(v.roots) == 0 {
		return nil, errors.New("tiled: no accepted roots")
	}
	return v, nil
}

// parse parses a certificate with ct-go's x509, which takes the
// precertificate poison; non-fatal errors are accepted, as ctfe does.
func parse(der []byte) (*ctx509.Certificate, error) {
	c, err := ctx509.ParseCertificate(der)
	if err != nil && ctx509.IsFatal(err) {
		return nil, err
	}
	return c, nil
}

// verified is a chain that passed: the leaf, the issuers as submitted
// (and the root when it was left out), and what the entry needs.
type verified struct {
	precert     bool
	leaf        []byte
	tbs         []byte // precert: the TBSCertificate without the poison
	issuerKey   [32]byte
	issuers     [][]byte
	fingerprint [][32]byte
}

func (v *verified) entry(ts uint64) *ctonly.Entry {
	e := &ctonly.Entry{Timestamp: ts, IsPrecert: v.precert, Certificate: v.leaf, FingerprintsChain: v.fingerprint}
	if v.precert {
		e.Certificate, e.Precertificate, e.IssuerKeyHash = v.tbs, v.leaf, v.issuerKey[:]
	}
	return e
}

func (cv *chainVerifier) verify(chain [][]byte, precert bool, start, limit time.Time) (*verified, error) {
	if len(chain) == 0 {
		return nil, errors.New("empty chain")
	}
	leaf, err := parseLeaf(chain[0])
	if err != nil {
		return nil, fmt.Errorf("certificate 0 of the chain does not parse: %v", err)
	}
	issuers := make([]*issuer, len(chain)-1)
	for i, der := range chain[1:] {
		if issuers[i], err = cv.parse(der); err != nil {
			return nil, fmt.Errorf("certificate %d of the chain does not parse: %v", i+1, err)
		}
	}
	switch {
	case precert && !leaf.poisoned:
		return nil, errors.New("add-pre-chain: the leaf has no critical CT poison extension (RFC 6962 section 3.1)")
	case !precert && leaf.poisoned:
		return nil, errors.New("add-chain: the leaf is a precertificate; use add-pre-chain")
	}
	if !start.IsZero() && (leaf.notAfter.Before(start) || !leaf.notAfter.Before(limit)) {
		return nil, fmt.Errorf("NotAfter %s is outside this log's interval [%s, %s)",
			leaf.notAfter.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339), limit.UTC().Format(time.RFC3339))
	}
	if len(issuers) == 0 {
		return cv.verifyLeafOnly(leaf, precert)
	}
	if err := leaf.signedBy(issuers[0]); err != nil {
		return nil, fmt.Errorf("certificate 0 is not signed by certificate 1: %v", err)
	}
	for i := 0; i+1 < len(issuers); i++ {
		if err := cv.link(issuers[i].ct, issuers[i+1].ct); err != nil {
			return nil, fmt.Errorf("certificate %d is not signed by certificate %d: %v", i+1, i+2, err)
		}
	}
	ders := chain[1:]
	if last := issuers[len(issuers)-1].ct; !cv.isRoot(last.Raw) {
		root := cv.rootOf(last)
		if root == nil {
			return nil, errors.New("the chain does not end at, or under, an accepted root")
		}
		ders = append(ders[:len(ders):len(ders)], root.Raw)
	}
	return cv.verifiedChain(leaf, precert, ders)
}

// verifyLeafOnly verifies a chain of the leaf alone: its issuer must be an
// accepted root, which the entry then names. A root itself is refused.
func (cv *chainVerifier) verifyLeafOnly(leaf *leaf, precert bool) (*verified, error) {
	if cv.isRoot(leaf.der) {
		return nil, errors.New("the chain has no issuer: a root cannot be logged")
	}
	for _, r := range cv.roots {
		if bytes.Equal(r.RawSubject, leaf.rawIssuer) && leaf.signedBy(&issuer{ct: r}) == nil {
			return cv.verifiedChain(leaf, precert, [][]byte{r.Raw})
		}
	}
	return nil, errors.New("the chain does not end at, or under, an accepted root")
}

// verifiedChain is what an entry needs of a verified chain: the issuers'
// DER (a root left out of the chain added) and their fingerprints.
func (cv *chainVerifier) verifiedChain(leaf *leaf, precert bool, issuers [][]byte) (*verified, error) {
	out := &verified{precert: precert, leaf: leaf.der, issuers: issuers}
	for _, iss := range issuers {
		out.fingerprint = append(out.fingerprint, sha256.Sum256(iss))
	}
	if precert {
		if err := out.precertParts(cv, leaf, issuers); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parse parses an issuer of a chain, once: it is kept, and never modified.
func (cv *chainVerifier) parse(der []byte) (*issuer, error) {
	fp := sha256.Sum256(der)
	cv.mu.Lock()
	iss := cv.parsed[fp]
	cv.mu.Unlock()
	if iss != nil {
		return iss, nil
	}
	c, err := parse(der)
	if err != nil {
		return nil, err
	}
	iss = &issuer{ct: c}
	if std, err := x509.ParseCertificate(der); err == nil {
		iss.std = std
	}
	cv.mu.Lock()
	if len(cv.parsed) < maxParsed {
		cv.parsed[fp] = iss
	}
	cv.mu.Unlock()
	return iss, nil
}

// precertParts sets the TBSCertificate and the issuer key hash of a
// precertificate, whose issuer is the second certificate, or the third
// when the second is a precertificate signing certificate (RFC 6962
// section 3.1): then the TBS is rewritten to name the real issuer.
func (v *verified) precertParts(cv *chainVerifier, leaf *leaf, issuers [][]byte) error {
	iss, err := cv.parse(issuers[0])
	if err != nil {
		return err
	}
	var preIssuer *ctx509.Certificate
	if isPrecertSigner(iss.ct) {
		if len(issuers) < 2 {
			return errors.New("a precertificate signing certificate needs its own issuer in the chain")
		}
		preIssuer = iss.ct
		if iss, err = cv.parse(issuers[1]); err != nil {
			return err
		}
	}
	var tbs []byte
	if preIssuer == nil {
		// Only the poison goes: cut out byte for byte, which is the DER
		// ct-go's BuildPrecertTBS re-encodes, at a tenth of the cost.
		tbs, err = sctverify.RemoveExtension(leaf.rawTBS, sctverify.OIDPoisonDER)
	} else {
		tbs, err = ctx509.BuildPrecertTBS(leaf.rawTBS, preIssuer)
	}
	if err != nil {
		return fmt.Errorf("couldn't rebuild the precertificate's TBSCertificate: %v", err)
	}
	v.tbs, v.issuerKey = tbs, sha256.Sum256(iss.ct.RawSubjectPublicKeyInfo)
	return nil
}

// link checks that parent, an issuer, signed child, another; the link is
// cached once verified.
func (cv *chainVerifier) link(child, parent *ctx509.Certificate) error {
	var key [64]byte
	a, b := sha256.Sum256(child.Raw), sha256.Sum256(parent.Raw)
	copy(key[:32], a[:])
	copy(key[32:], b[:])
	cv.mu.Lock()
	ok := cv.links[key]
	cv.mu.Unlock()
	if ok {
		return nil
	}
	if !parent.IsCA && !isPrecertSigner(parent) {
		return errNotCA
	}
	if err := child.CheckSignatureFrom(parent); err != nil {
		return err
	}
	cv.mu.Lock()
	cv.links[key] = true
	cv.mu.Unlock()
	return nil
}

// errNotCA refuses a signer that is neither a CA nor a precertificate
// signing certificate.
var errNotCA = errors.New("the signer is not a CA")

func (cv *chainVerifier) isRoot(der []byte) bool {
	for _, r := range cv.roots {
		if bytes.Equal(r.Raw, der) {
			return true
		}
	}
	return false
}

// rootOf is the accepted root that signed c, an issuer, or nil.
func (cv *chainVerifier) rootOf(c *ctx509.Certificate) *ctx509.Certificate {
	for _, r := range cv.roots {
		if bytes.Equal(r.RawSubject, c.RawIssuer) && cv.link(c, r) == nil {
			return r
		}
	}
	return nil
}

func hasPoison(c *ctx509.Certificate) bool {
	for _, ext := range c.Extensions {
		if ext.Id.Equal(ctx509.OIDExtensionCTPoison) {
			return ext.Critical
		}
	}
	return false
}

func isPrecertSigner(c *ctx509.Certificate) bool {
	for _, eku := range c.ExtKeyUsage {
		if eku == ctx509.ExtKeyUsageCertificateTransparency {
			return true
		}
	}
	return false
}
