package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/ca/store"
)

// Options configure a CA.
type Options struct {
	// Hierarchy signs: ECDSA subscriber keys under the ECDSA intermediate,
	// RSA keys under the RSA intermediate.
	Hierarchy *Hierarchy
	// Submitter obtains the SCTs.
	Submitter *ctpolicy.Submitter
	// Store records every issuance.
	Store store.Store
	// BaseURL is where Handler is reachable, e.g.
	// "http://127.0.0.1:6962/ca": certificates point there for their
	// issuer (AIA caIssuers) and CRL.
	BaseURL string
	// SubmitFinal submits each final certificate to the logs that gave its
	// SCTs, in the background, after Issue returns.
	SubmitFinal bool
	// FinalTimeout bounds the background submission of one final
	// certificate. Default 30s.
	FinalTimeout time.Duration
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives one line per issuance. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// CA issues certificates with embedded SCTs. It is safe for concurrent use.
type CA struct {
	opts    Options
	linter  *linter
	metrics *metrics
	urls    map[*Issuer]issuerURLs
	crls    *crlCache // see Revoke and Handler

	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc

	// tamperFinal, when set by a test, changes the final certificate's
	// template after it is built from the precertificate's.
	tamperFinal func(*x509.Certificate)
}

// issuerURLs are where a leaf's AIA and CRL distribution point point.
type issuerURLs struct{ issuer, crl string }

// Issuance is the result of one issuance.
type Issuance struct {
	Serial         *big.Int
	Profile        string
	Precertificate []byte // DER
	Certificate    []byte // DER, with the SCTs embedded
	// Chain is the certificate and its intermediate, DER, as a server sends it.
	Chain  [][]byte
	Issuer *Issuer
	SCTs   []ctpolicy.SCT
}

// ChainPEM is Chain in PEM, leaf first.
func (i *Issuance) ChainPEM() []byte {
	var b bytes.Buffer
	for _, c := range i.Chain {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	return b.Bytes()
}

// New builds a CA. Close it to wait for background submissions. With
// Options.SubmitFinal, it starts submitting in the background the final
// certificates whose submission a previous process left owed (see
// resubmitOwed); build it once the logs serve.
func New(opts Options) (*CA, error) {
	if opts.Hierarchy == nil || opts.Submitter == nil || opts.Store == nil {
		return nil, errors.New("ca: Hierarchy, Submitter and Store are required")
	}
	if !strings.HasPrefix(opts.BaseURL, "http://") {
		return nil, fmt.Errorf("ca: BaseURL %q must be an http:// URL (AIA and CRL URLs are plain HTTP)", opts.BaseURL)
	}
	if opts.FinalTimeout == 0 {
		opts.FinalTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := opts.Hierarchy
	l, err := newLinter([]*Issuer{h.ECDSAIntermediate, h.RSAIntermediate})
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	c := &CA{opts: opts, linter: l, metrics: m, crls: newCRLCache(), urls: map[*Issuer]issuerURLs{
		h.ECDSAIntermediate: {issuer: base + "/issuers/ecdsa.der", crl: base + "/crl/ecdsa.crl"},
		h.RSAIntermediate:   {issuer: base + "/issuers/rsa.der", crl: base + "/crl/rsa.crl"},
	}}
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	if opts.SubmitFinal {
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			c.resubmitOwed()
		}()
	}
	return c, nil
}

// Close waits for background submissions of final certificates until ctx
// ends, then cancels those left.
func (c *CA) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.bg.Wait(); close(done) }()
	select {
	case <-done:
		c.bgCancel()
		return nil
	case <-ctx.Done():
		c.bgCancel()
		<-done
		return fmt.Errorf("couldn't finish submitting final certificates: %w", ctx.Err())
	}
}

// Wait blocks until the background submissions started so far end,
// including the resubmission of owed final certificates that New starts.
func (c *CA) Wait() { c.bg.Wait() }

// Record returns the CA's record of the certificate with serial (lower-case
// hex): its precertificate, certificate, SCTs and revocation; an error
// wrapping store.ErrNotFound when the CA has none.
func (c *CA) Record(ctx context.Context, serial string) (*store.Record, error) {
	return c.opts.Store.Get(ctx, serial)
}

// issuerFor picks the intermediate of the subscriber key's type.
func (c *CA) issuerFor(pub crypto.PublicKey) *Issuer {
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		return c.opts.Hierarchy.ECDSAIntermediate
	}
	return c.opts.Hierarchy.RSAIntermediate
}

// Issue runs the issuance pipeline for req:
//
//  1. check the request; pick a random serial (126 random bits);
//  2. build the precertificate with the critical poison extension
//     (RFC 6962 section 3.1), lint it (zlint), refuse on any error or
//     warning, sign it, and record it;
//  3. obtain SCTs from the logs until the CT policy is met (package ctpolicy);
//  4. build the final certificate from the same template with the SCT list
//     extension where the poison was; check, on DER and before signing,
//     that its TBSCertificate is the precertificate's but for that one
//     extension (CheckCorrespondence); lint it; sign it;
//  5. record the certificate and its SCTs; submit it to the logs in the
//     background when Options.SubmitFinal is set.
//
// Errors wrap ErrBadRequest, ErrLint, ErrMismatch or ctpolicy.ErrPolicy
// when one of those is the cause.
func (c *CA) Issue(ctx context.Context, req Request) (*Issuance, error) {
	start := time.Now()
	iss, err := c.issue(ctx, req)
	outcome := outcomeOf(err)
	c.metrics.issued(outcome, time.Since(start))
	if err != nil {
		c.opts.Logger.Warn("issuance failed", "outcome", outcome, "names", req.Names, "err", err)
		return nil, err
	}
	c.opts.Logger.Info("issued", "serial", iss.Serial.Text(16), "profile", iss.Profile, "names", req.Names,
		"issuer", iss.Issuer, "scts", len(iss.SCTs), "took", time.Since(start))
	return iss, nil
}

func (c *CA) issue(ctx context.Context, req Request) (*Issuance, error) {
	n, err := req.normalize()
	if err != nil {
		return nil, err
	}
	iss := c.issuerFor(n.pub)
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl, err := n.leafTemplate(serial, c.opts.Now(), c.urls[iss], poisonExt)
	if err != nil {
		return nil, err
	}
	out := &Issuance{Serial: serial, Profile: n.profile.Name, Issuer: iss}
	preTBS, err := c.precertificate(ctx, out, tmpl, n.pub)
	if err != nil {
		return nil, err
	}
	out.SCTs, err = c.opts.Submitter.GetSCTs(ctx, [][]byte{out.Precertificate, iss.Cert.Raw}, tmpl.NotBefore, tmpl.NotAfter)
	if err != nil {
		return nil, fmt.Errorf("couldn't get SCTs for precertificate %s: %w", serial.Text(16), err)
	}
	if err := c.final(ctx, out, tmpl, preTBS, n.pub); err != nil {
		return nil, err
	}
	if c.opts.SubmitFinal {
		c.submitFinal(out.Serial.Text(16), out.Chain, sctLogs(out.SCTs))
	}
	return out, nil
}

// precertificate lints, signs and records the precertificate of tmpl.
func (c *CA) precertificate(ctx context.Context, out *Issuance, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	lintDER, tbs, err := c.linter.build(tmpl, pub, out.Issuer)
	if err != nil {
		return nil, err
	}
	if err := c.linter.lint(lintDER); err != nil {
		return nil, fmt.Errorf("precertificate: %w", err)
	}
	der, err := c.sign(tmpl, pub, out.Issuer, tbs)
	if err != nil {
		return nil, fmt.Errorf("precertificate: %w", err)
	}
	out.Precertificate = der
	err = c.opts.Store.AddPrecertificate(ctx, &store.Record{
		Serial: out.Serial.Text(16), Profile: out.Profile, Precertificate: der, Created: c.opts.Now(),
	})
	return tbs, err
}

// final builds, checks, lints, signs and records the final certificate.
func (c *CA) final(ctx context.Context, out *Issuance, pre *x509.Certificate, preTBS []byte, pub crypto.PublicKey) error {
	list, err := sctList(out.SCTs)
	if err != nil {
		return err
	}
	ext, err := sctListExt(list)
	if err != nil {
		return err
	}
	tmpl := *pre
	tmpl.ExtraExtensions = append(pre.ExtraExtensions[:0:0], ext)
	if c.tamperFinal != nil {
		c.tamperFinal(&tmpl)
	}
	lintDER, tbs, err := c.linter.build(&tmpl, pub, out.Issuer)
	if err != nil {
		return err
	}
	if err := CheckCorrespondence(preTBS, tbs); err != nil {
		return fmt.Errorf("refusing to sign certificate %s: %w", out.Serial.Text(16), err)
	}
	if err := c.linter.lint(lintDER); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	der, err := c.sign(&tmpl, pub, out.Issuer, tbs)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	out.Certificate = der
	out.Chain = [][]byte{der, out.Issuer.Cert.Raw}
	return c.opts.Store.AddCertificate(ctx, out.Serial.Text(16), der, storeSCTs(out.SCTs), c.opts.Now(), c.opts.SubmitFinal)
}

// sign signs tmpl with the real issuer and checks that the signature covers
// exactly the TBSCertificate that was linted (and, for the final
// certificate, checked against the precertificate).
func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, iss *Issuer, wantTBS []byte) ([]byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.Cert, pub, iss.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign: %w", err)
	}
	tbs, err := tbsOf(der)
	if err != nil || !bytes.Equal(tbs, wantTBS) {
		return nil, errors.New("the signed TBSCertificate differs from the linted one")
	}
	return der, nil
}

// sctList is the TLS-encoded SignedCertificateTimestampList (RFC 6962
// section 3.3) of scts.
func sctList(scts []ctpolicy.SCT) ([]byte, error) {
	var l ctx509.SignedCertificateTimestampList
	for _, s := range scts {
		b, err := tls.Marshal(*s.SCT)
		if err != nil {
			return nil, fmt.Errorf("couldn't encode SCT: %w", err)
		}
		l.SCTList = append(l.SCTList, ctx509.SerializedSCT{Val: b})
	}
	b, err := tls.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode SCT list: %w", err)
	}
	return b, nil
}

func storeSCTs(scts []ctpolicy.SCT) []store.SCT {
	out := make([]store.SCT, len(scts))
	for i, s := range scts {
		b, _ := tls.Marshal(*s.SCT) // encoded once already by sctList
		out[i] = store.SCT{LogID: s.Log.LogID[:], LogURL: s.Log.URL, Timestamp: s.SCT.Timestamp, SCT: b}
	}
	return out
}

func sctLogs(scts []ctpolicy.SCT) []*ctpolicy.Log {
	logs := make([]*ctpolicy.Log, len(scts))
	for i, s := range scts {
		logs[i] = s.Log
	}
	return logs
}

// submitFinal submits the final certificate chain of serial to logs in
// the background.
func (c *CA) submitFinal(serial string, chain [][]byte, logs []*ctpolicy.Log) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.submitFinalNow(serial, chain, logs)
	}()
}

// submitFinalNow submits the final certificate chain of serial to logs and,
// once every log has answered for good, records that it owes nothing more
// (store.Store.FinalSubmitted); otherwise it stays owed and the next CA on
// the store submits it again (resubmitOwed).
func (c *CA) submitFinalNow(serial string, chain [][]byte, logs []*ctpolicy.Log) {
	ctx, cancel := context.WithTimeout(c.bgCtx, c.opts.FinalTimeout)
	defer cancel()
	logs = c.stillTaking(serial, logs)
	var err error
	if len(logs) > 0 {
		err = c.opts.Submitter.SubmitFinal(ctx, chain, logs)
	}
	if err != nil {
		c.opts.Logger.Warn("couldn't submit final certificate", "serial", serial, "err", err)
	}
	if !finalSettled(err) {
		return
	}
	ctx, cancel = context.WithTimeout(context.WithoutCancel(c.bgCtx), 10*time.Second)
	defer cancel()
	if err := c.opts.Store.FinalSubmitted(ctx, serial); err != nil {
		c.opts.Logger.Warn("couldn't record the final submission", "serial", serial, "err", err)
	}
}

// stillTaking returns the logs of the current log list, among logs, that
// still take submissions: a log that retired (or became readonly or
// rejected), or left the list, can never take the final certificate,
// and what it was owed is dropped with a log line rather than retried.
func (c *CA) stillTaking(serial string, logs []*ctpolicy.Log) []*ctpolicy.Log {
	now := c.opts.Now()
	current := map[[32]byte]*ctpolicy.Log{}
	for _, l := range c.opts.Submitter.Logs() {
		current[l.LogID] = l
	}
	var out []*ctpolicy.Log
	for _, l := range logs {
		cur := current[l.LogID]
		switch {
		case cur == nil:
			c.opts.Logger.Info("final certificate not submitted: the log left the log list", "serial", serial, "log", l.Description)
		case !cur.UsableAt(now):
			c.opts.Logger.Info("final certificate not submitted: the log no longer takes submissions", "serial", serial, "log", l.Description, "state", cur.State)
		default:
			out = append(out, cur)
		}
	}
	return out
}

// finalSettled reports whether the error of a final submission (one error
// per failed log, joined) leaves nothing to retry. A log settles the debt
// when it answered 200, even with an SCT that does not check (the log took
// the certificate: a repeated add-chain returns the first SCT, whose
// timestamp may be stale by then), or refused it with a 4xx other than
// 408 and 429 (a permanent refusal: the same chain would be refused again).
// A log that could not be reached, timed out, or answered 5xx, 408 or 429
// may take it later: the certificate stays owed.
func finalSettled(err error) bool {
	if err == nil {
		return true
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, err := range errs {
		var se *ctpolicy.SubmitError
		if !errors.As(err, &se) {
			return false
		}
		switch se.Kind {
		case ctpolicy.FailTimeout, ctpolicy.FailTransport:
			return false
		case ctpolicy.FailStatus:
			var st *ctpolicy.StatusError
			if !errors.As(se, &st) || st.Code < 400 || st.Code >= 500 ||
				st.Code == http.StatusRequestTimeout || st.Code == http.StatusTooManyRequests {
				return false
			}
		}
	}
	return true
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "issued"
	case errors.Is(err, ErrBadRequest):
		return "bad_request"
	case errors.Is(err, ErrLint):
		return "lint"
	case errors.Is(err, ErrMismatch):
		return "mismatch"
	case errors.Is(err, ctpolicy.ErrPolicy):
		return "ct_policy"
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "error"
	}
}
