package sctverify

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Verifier checks certificates against a log list.
type Verifier struct {
	// Logs is the log list SCTs are checked against.
	Logs *LogList
	// HTTPClient asks the logs for STHs and proofs; nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// Now is the time of check; nil means time.Now.
	Now func() time.Time
	// Inclusion asks each RFC 6962 log for an inclusion proof of every
	// valid SCT's entry.
	Inclusion bool
	// Policies to evaluate (PolicyChrome, PolicyApple, PolicyMozilla);
	// nil means AllPolicies.
	Policies []string
	// ChromeVersion is the Chrome whose rules apply; 0 is the one current
	// at the time of check (Check.ChromeVersion).
	ChromeVersion int
	// FetchIssuer fetches an issuer not among the certificates given from
	// any of the certificate's AIA caIssuers URLs; without it only
	// loopback URLs are fetched.
	FetchIssuer bool
}

// Input is a certificate and its SCTs from every source.
type Input struct {
	// Chain is the certificate first, then any certificates among which
	// its issuer is found (by name and signature, in any order).
	Chain []*x509.Certificate
	// TLSSCTs are the serialized SCTs of the TLS extension.
	TLSSCTs [][]byte
	// OCSPResponse is a DER OCSP response for the certificate (stapled,
	// or from a file), or nil.
	OCSPResponse []byte
	// PrecertSCTs are serialized SCTs for a precertificate (Chain[0]
	// with the CT poison), as add-pre-chain returned them or as the
	// final certificate embeds them: each must sign the precertificate's
	// entry. Ignored for a certificate without the poison.
	PrecertSCTs [][]byte
}

// ErrNoCertificate: Verify was given no certificate.
var ErrNoCertificate = errors.New("no certificate to verify")

// Verify checks every SCT of in and evaluates the policies. The error is
// only for input that cannot be checked at all; everything else is in
// the report.
func (v *Verifier) Verify(ctx context.Context, in Input) (*Report, error) {
	if len(in.Chain) == 0 || in.Chain[0] == nil {
		return nil, ErrNoCertificate
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	leaf := in.Chain[0]
	r := &Report{Subject: leaf.Subject.String(), Serial: leaf.SerialNumber.Text(16), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, CheckedAt: now.UTC()}
	issuer, issuerErr := FindIssuer(leaf, in.Chain[1:])
	if issuer == nil {
		if iss, from, err := v.issuerFromAIA(ctx, leaf, v.FetchIssuer); err == nil {
			issuer, issuerErr, r.IssuerFrom = iss, nil, from
		} else {
			issuerErr = fmt.Errorf("%w (%v)", issuerErr, err)
		}
	}
	if issuer != nil {
		r.Issuer = issuer.Subject.String()
	}
	c := &checker{v: v, now: now, report: r}

	if IsPrecertificate(leaf) {
		// A precertificate: its SCTs are given, over its own entry (the
		// TBS without the poison), and count as the final certificate's
		// embedded ones will.
		r.Precertificate = true
		c.each(SourcePrecert, in.PrecertSCTs, func() ([]byte, error) {
			if issuerErr != nil {
				return nil, issuerErr
			}
			tbs, err := RemoveExtension(leaf.RawTBSCertificate, OIDPoisonDER)
			if err != nil {
				return nil, err
			}
			return precertEntry(sha256.Sum256(issuer.RawSubjectPublicKeyInfo), tbs), nil
		})
		if len(in.PrecertSCTs) == 0 {
			r.Problems = append(r.Problems, "a precertificate, and no SCTs given for it (--scts FILE, or --host for the final certificate's)")
		}
		c.finish(ctx, r, leaf, now)
		return r, nil
	}
	list, err := EmbeddedSCTList(leaf)
	switch {
	case err != nil:
		r.Problems = append(r.Problems, err.Error())
	case list != nil:
		entry := func() ([]byte, error) {
			if issuerErr != nil {
				return nil, issuerErr
			}
			tbs, err := RemoveSCTList(leaf.RawTBSCertificate)
			if err != nil {
				return nil, err
			}
			return precertEntry(sha256.Sum256(issuer.RawSubjectPublicKeyInfo), tbs), nil
		}
		c.list(SourceEmbedded, list, entry)
	}
	certEntry := func() ([]byte, error) { return x509Entry(leaf.Raw), nil }
	c.each(SourceTLS, in.TLSSCTs, certEntry)
	if in.OCSPResponse != nil {
		c.ocsp(in.OCSPResponse, leaf, issuer, issuerErr, certEntry)
	}
	c.finish(ctx, r, leaf, now)
	return r, nil
}

// finish proves inclusion and evaluates the policies.
func (c *checker) finish(ctx context.Context, r *Report, leaf *x509.Certificate, now time.Time) {
	v := c.v
	if v.Inclusion {
		v.checkInclusion(ctx, c.jobs, now)
	}
	for _, res := range c.results {
		r.SCTs = append(r.SCTs, *res)
	}
	for _, p := range v.policies() {
		r.Policies = append(r.Policies, Evaluate(p, leaf.NotBefore, leaf.NotAfter, c.valid,
			Check{Now: now, ListTime: v.Logs.Timestamp, ChromeVersion: v.ChromeVersion}))
	}
	r.finish()
}

// IsPrecertificate reports whether cert carries the CT poison extension.
func IsPrecertificate(cert *x509.Certificate) bool {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDPoison) {
			return true
		}
	}
	return false
}

func (v *Verifier) policies() []string {
	if v.Policies == nil {
		return AllPolicies
	}
	return v.Policies
}

// checker accumulates the results of one Verify.
type checker struct {
	v      *Verifier
	now    time.Time
	report *Report
	// results are the SCTResults in order; pointers, since inclusion
	// jobs keep them.
	results []*SCTResult
	valid   []PolicySCT
	jobs    []inclusionJob
}

func (c *checker) list(source string, list []byte, entry func() ([]byte, error)) {
	raws, err := ParseSCTList(list)
	if err != nil {
		c.report.Problems = append(c.report.Problems, fmt.Sprintf("%s %v", source, err))
		return
	}
	c.each(source, raws, entry)
}

func (c *checker) ocsp(der []byte, leaf, issuer *x509.Certificate, issuerErr error, entry func() ([]byte, error)) {
	if issuer == nil {
		c.report.Problems = append(c.report.Problems, fmt.Sprintf("OCSP response not checked: %v", issuerErr))
		return
	}
	rsp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		c.report.Problems = append(c.report.Problems, fmt.Sprintf("OCSP response: %v", err))
		return
	}
	n := 0
	for _, e := range rsp.Extensions {
		if !e.Id.Equal(OIDOCSPSCTList) {
			continue
		}
		if n++; n > 1 {
			c.report.Problems = append(c.report.Problems, "OCSP response: more than one SCT list extension")
			return
		}
		list, err := unwrapOctetString(e.Value)
		if err != nil {
			c.report.Problems = append(c.report.Problems, fmt.Sprintf("OCSP %v", err))
			return
		}
		c.list(SourceOCSP, list, entry)
	}
}

// each checks the serialized SCTs of one source.
func (c *checker) each(source string, raws [][]byte, entry func() ([]byte, error)) {
	seen := map[string]int{}
	var e []byte
	var eErr error
	entryOnce := func() ([]byte, error) {
		if e == nil && eErr == nil {
			e, eErr = entry()
		}
		return e, eErr
	}
	for i, raw := range raws {
		res := SCTResult{Source: source, Index: i + 1}
		if first, dup := seen[string(raw)]; dup {
			res.Status, res.Reason = StatusDuplicate, fmt.Sprintf("same bytes as %s SCT #%d, counted once", source, first)
			c.results = append(c.results, &res)
			continue
		}
		seen[string(raw)] = i + 1
		c.results = append(c.results, &res)
		c.one(&res, raw, entryOnce)
	}
}

// one checks a single SCT and, when it is valid, records it for the
// policies and the inclusion check.
func (c *checker) one(res *SCTResult, raw []byte, entry func() ([]byte, error)) {
	sct, err := ParseSCT(raw)
	if errors.Is(err, ErrUnsupportedVersion) {
		res.Status, res.Reason = StatusUnsupported, err.Error()
		return
	}
	if err != nil {
		res.Status, res.Reason = StatusInvalid, err.Error()
		return
	}
	res.LogID, res.Timestamp = sct.LogID[:], sct.Time()
	l := c.v.Logs.Lookup(sct.LogID)
	if l == nil {
		res.Status, res.Reason = StatusUnknownLog, "no log in the log list has this ID"
		return
	}
	res.Log, res.Operator, res.LogState = l.Description, l.OperatorAt(sct.Time()), l.StateAt(c.now)
	data, err := c.verify(l, sct, entry)
	if err != nil {
		res.Status, res.Reason = StatusInvalid, err.Error()
		return
	}
	res.Status = StatusValid
	if nb := c.report.NotBefore; sct.Time().Before(nb) {
		// No certificate is logged before it exists: the log's clock is
		// behind (or the certificate post-dated). Browsers accept it, but
		// a past timestamp can pass for one before a log's retirement.
		res.Warnings = append(res.Warnings, fmt.Sprintf("timestamp %s is %s before the certificate's notBefore %s: the log's clock is behind, or the certificate is post-dated",
			sct.Time().UTC().Format(time.RFC3339Nano), nb.Sub(sct.Time()).Round(time.Millisecond), nb.UTC().Format(time.RFC3339)))
	}
	idx, idxErr := LeafIndex(sct.Extensions)
	c.valid = append(c.valid, PolicySCT{Log: l, Source: res.Source, Index: res.Index, Time: sct.Time(), LeafIndex: idxErr == nil})
	if !c.v.Inclusion {
		return
	}
	job := inclusionJob{res: res, log: l, sct: sct, hash: leafHash(data)}
	if l.Tiled {
		if idxErr != nil {
			res.Inclusion = &Inclusion{Status: InclusionError, Detail: "static-ct-api log: " + idxErr.Error()}
			return
		}
		job.index = idx
	}
	c.jobs = append(c.jobs, job)
}

// verify checks the timestamp and signature; it returns the signed data.
func (c *checker) verify(l *Log, sct *SCT, entry func() ([]byte, error)) ([]byte, error) {
	if l.PublicKey == nil {
		return nil, l.KeyErr
	}
	if sct.Time().After(c.now) {
		return nil, fmt.Errorf("timestamp %s is in the future (time of check %s)", sct.Time().Format(time.RFC3339Nano), c.now.UTC().Format(time.RFC3339Nano))
	}
	e, err := entry()
	if err != nil {
		return nil, err
	}
	data := signedData(sct, e)
	if err := verifySignature(l.PublicKey, sct.HashAlg, sct.SigAlg, sct.Signature, data); err != nil {
		return nil, err
	}
	return data, nil
}
