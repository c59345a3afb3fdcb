package tiled

import (
	"bytes"
	"crypto/sha256"
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
	parsed map[[32]byte]*ctx509.Certificate
}

// maxParsed bounds the parsed issuers kept; beyond it, new ones are parsed
// each time (a log sees a few hundred issuers, not thousands).
const maxParsed = 4096

func newChainVerifier(roots [][]byte) (*chainVerifier, error) {
	v := &chainVerifier{links: map[[64]byte]bool{}, parsed: map[[32]byte]*ctx509.Certificate{}}
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
	certs := make([]*ctx509.Certificate, len(chain))
	for i, der := range chain {
		c, err := cv.parse(der, i > 0)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain does not parse: %v", i, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	poisoned := hasPoison(leaf)
	switch {
	case precert && !poisoned:
		return nil, errors.New("add-pre-chain: the leaf has no critical CT poison extension (RFC 6962 section 3.1)")
	case !precert && poisoned:
		return nil, errors.New("add-chain: the leaf is a precertificate; use add-pre-chain")
	}
	if !start.IsZero() && (leaf.NotAfter.Before(start) || !leaf.NotAfter.Before(limit)) {
		return nil, fmt.Errorf("NotAfter %s is outside this log's interval [%s, %s)",
			leaf.NotAfter.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339), limit.UTC().Format(time.RFC3339))
	}
	for i := 0; i+1 < len(certs); i++ {
		if err := cv.link(certs[i], certs[i+1], i == 0); err != nil {
			return nil, fmt.Errorf("certificate %d is not signed by certificate %d: %v", i, i+1, err)
		}
	}
	issuers := chain[1:]
	last := certs[len(certs)-1]
	if !cv.isRoot(last) {
		root := cv.rootOf(last)
		if root == nil {
			return nil, errors.New("the chain does not end at, or under, an accepted root")
		}
		issuers = append(issuers[:len(issuers):len(issuers)], root.Raw)
	}
	if len(issuers) == 0 {
		return nil, errors.New("the chain has no issuer: a root cannot be logged")
	}
	out := &verified{precert: precert, leaf: chain[0], issuers: issuers}
	for _, iss := range issuers {
		out.fingerprint = append(out.fingerprint, sha256.Sum256(iss))
	}
	if precert {
		if err := out.precertParts(cv, certs, issuers); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parse parses a certificate of a chain; an issuer is parsed once and
// kept. The certificates kept are never modified.
func (cv *chainVerifier) parse(der []byte, issuer bool) (*ctx509.Certificate, error) {
	if !issuer {
		return parse(der)
	}
	fp := sha256.Sum256(der)
	cv.mu.Lock()
	c := cv.parsed[fp]
	cv.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := parse(der)
	if err != nil {
		return nil, err
	}
	cv.mu.Lock()
	if len(cv.parsed) < maxParsed {
		cv.parsed[fp] = c
	}
	cv.mu.Unlock()
	return c, nil
}

// precertParts sets the TBSCertificate and the issuer key hash of a
// precertificate, whose issuer is the second certificate, or the third
// when the second is a precertificate signing certificate (RFC 6962
// section 3.1): then the TBS is rewritten to name the real issuer.
func (v *verified) precertParts(cv *chainVerifier, certs []*ctx509.Certificate, issuers [][]byte) error {
	issuer, err := cv.parse(issuers[0], true)
	if err != nil {
		return err
	}
	var preIssuer *ctx509.Certificate
	if isPrecertSigner(issuer) {
		if len(issuers) < 2 {
			return errors.New("a precertificate signing certificate needs its own issuer in the chain")
		}
		preIssuer = issuer
		if issuer, err = cv.parse(issuers[1], true); err != nil {
			return err
		}
	}
	var tbs []byte
	if preIssuer == nil {
		// Only the poison goes: cut out byte for byte, which is the DER
		// ct-go's BuildPrecertTBS re-encodes, at a tenth of the cost.
		tbs, err = sctverify.RemoveExtension(certs[0].RawTBSCertificate, sctverify.OIDPoisonDER)
	} else {
		tbs, err = ctx509.BuildPrecertTBS(certs[0].RawTBSCertificate, preIssuer)
	}
	if err != nil {
		return fmt.Errorf("couldn't rebuild the precertificate's TBSCertificate: %v", err)
	}
	v.tbs, v.issuerKey = tbs, sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
	return nil
}

// link checks that parent signed child; a link between two issuers is
// cached once verified (a leaf's is not: every leaf is new).
func (cv *chainVerifier) link(child, parent *ctx509.Certificate, isLeaf bool) error {
	var key [64]byte
	if !isLeaf {
		a, b := sha256.Sum256(child.Raw), sha256.Sum256(parent.Raw)
		copy(key[:32], a[:])
		copy(key[32:], b[:])
		cv.mu.Lock()
		ok := cv.links[key]
		cv.mu.Unlock()
		if ok {
			return nil
		}
	}
	if !parent.IsCA && !isPrecertSigner(parent) {
		return errors.New("the signer is not a CA")
	}
	if err := child.CheckSignatureFrom(parent); err != nil {
		return err
	}
	if !isLeaf {
		cv.mu.Lock()
		cv.links[key] = true
		cv.mu.Unlock()
	}
	return nil
}

func (cv *chainVerifier) isRoot(c *ctx509.Certificate) bool {
	for _, r := range cv.roots {
		if bytes.Equal(r.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// rootOf is the accepted root that signed c, or nil.
func (cv *chainVerifier) rootOf(c *ctx509.Certificate) *ctx509.Certificate {
	for _, r := range cv.roots {
		if bytes.Equal(r.RawSubject, c.RawIssuer) && cv.link(c, r, false) == nil {
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
