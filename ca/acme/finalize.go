package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/ca/ratelimit"
)

// finalize checks the CSR and issues through the CA (section 7.4). It
// answers once the certificate is issued (status valid) or issuance
// failed (status invalid, with the order's error), and counts the outcome.
func (s *Server) finalize(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	o, err := s.loadOrder(r.Context(), q, r.PathValue("id"))
	if err != nil {
		return err
	}
	err = s.finalizeOrder(w, r, q, o)
	s.metrics.finalize(err)
	return err
}

// finalizeOrder finalizes o, an order of the requesting account.
func (s *Server) finalizeOrder(w http.ResponseWriter, r *http.Request, q *request, o *Order) error {
	if err := s.checkReady(r.Context(), o); err != nil {
		return err
	}
	var req struct {
		CSR string `json:"csr"`
	}
	if err := decodePayload(q.payload, &req); err != nil {
		return err
	}
	csr, err := checkCSR(req.CSR, o, q.account)
	if err != nil {
		return err
	}
	// ready -> processing is a compare-and-swap: of concurrent finalize
	// requests, one takes the order; the others read it again and find
	// it processing (or valid): orderNotReady, and no second certificate.
	for {
		o.Status, o.Processing = statusProcessing, s.opts.Now()
		err := s.opts.Store.UpdateOrder(r.Context(), o)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrStale) {
			return err
		}
		if o, err = s.opts.Store.Order(r.Context(), o.ID); err != nil {
			return err
		}
		if err := s.checkReady(r.Context(), o); err != nil {
			return err
		}
	}
	// The issuance runs on even if the client goes away, so that the
	// order's state stays consistent; Options.IssueTimeout bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.IssueTimeout)
	defer cancel()
	if err := s.issue(ctx, o, csr.PublicKey); err != nil {
		return err
	}
	return s.writeOrder(w, r, o, http.StatusOK)
}

// checkReady answers orderNotReady unless o is ready.
func (s *Server) checkReady(ctx context.Context, o *Order) error {
	st, _, err := s.orderStatus(ctx, o)
	if err != nil {
		return err
	}
	if st != statusReady {
		return orderNotReady("order is %s, not ready", st)
	}
	return nil
}

// checkCSR parses and checks a finalize CSR: signature, exactly the
// order's names, a supported key that is not the account's.
func checkCSR(b64 string, o *Order, a *Account) (*x509.CertificateRequest, error) {
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil {
		return nil, badCSR("csr is not base64url")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, badCSR("couldn't parse the CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, badCSR("CSR signature is invalid: %v", err)
	}
	if err := checkCSRKey(csr.PublicKey, a); err != nil {
		return nil, err
	}
	if err := checkSANTypes(csr); err != nil {
		return nil, err
	}
	got := csrNames(csr)
	want := names(o.Identifiers)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return nil, badCSR("CSR names %v are not the order's %v", got, want)
	}
	return csr, nil
}

// checkSANTypes refuses a CSR that asks for a name of a type the order
// cannot hold: only dNSName and iPAddress are identifiers here (RFC 8555
// section 7.1.4, RFC 8738). An email, URI, otherName or directory name is
// badCSR, as Boulder refuses it, rather than silently dropped.
func checkSANTypes(csr *x509.CertificateRequest) error {
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return badCSR("the CSR asks for email or URI names (%v %v); a certificate here names only the order's identifiers",
			csr.EmailAddresses, csr.URIs)
	}
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) > 0 {
			return badCSR("the CSR's subjectAltName extension does not parse")
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || (n.Tag != sanDNSName && n.Tag != sanIPAddress) {
				return badCSR("the CSR asks for a subjectAltName of type [%d]; only DNS names and IP addresses are allowed", n.Tag)
			}
		}
	}
	return nil
}

// The subjectAltName extension and its GeneralName tags (RFC 5280 section
// 4.2.1.6) that identifiers map to.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

const (
	sanDNSName   = 2
	sanIPAddress = 7
)

func csrNames(csr *x509.CertificateRequest) []string {
	var out []string
	for _, d := range csr.DNSNames {
		out = append(out, strings.ToLower(d))
	}
	for _, ip := range csr.IPAddresses {
		out = append(out, ip.String())
	}
	if cn := strings.ToLower(csr.Subject.CommonName); cn != "" {
		out = append(out, cn)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func checkCSRKey(pub crypto.PublicKey, a *Account) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return badCSR("unsupported ECDSA curve %s (want P-256 or P-384)", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if b := k.N.BitLen(); b < 2048 || b > 4096 || b%8 != 0 {
			return badCSR("RSA key of %d bits is weak or unsupported (want 2048 to 4096)", b)
		}
	default:
		return badCSR("unsupported key type %T (want ECDSA P-256, P-384 or RSA)", pub)
	}
	if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(a.Key.Key) {
		return badCSR("the certificate key must not be the account key")
	}
	return nil
}

// issue issues the order's certificate through the CA and records it;
// failures leave the order invalid with the problem as its error. The
// serial goes into the order (still processing) before the certificate
// is recorded, and the order turns valid last: a crash in between leaves
// an order that orderStatus reads valid once its certificate is recorded.
func (s *Server) issue(ctx context.Context, o *Order, pub crypto.PublicKey) error {
	iss, err := s.opts.CA.Issue(ctx, ca.Request{PublicKey: pub, Names: names(o.Identifiers), Profile: o.Profile})
	if err != nil {
		var p *Problem
		switch {
		case errors.Is(err, ca.ErrBadRequest):
			p = badCSR("the CA refused the request: %v", err)
		case errors.Is(err, ctpolicy.ErrPolicy):
			// Which logs failed is what the subscriber and the operator
			// need to know; it holds no internal state.
			p = serverInternal("the CA could not obtain enough SCTs: %v", err)
		default:
			s.opts.Logger.Error("issuance failed", "order", o.ID, "err", err)
			p = serverInternal("issuance failed; the server's log has the cause")
		}
		o.Status, o.Error = statusInvalid, p
		if err := s.opts.Store.UpdateOrder(ctx, o); err != nil {
			return errors.Join(p, err)
		}
		if p.Type == badCSR("").Type {
			return p // the client's fault: finalize answers the problem
		}
		// The server's fault (no SCTs, a failed signing): the order is
		// invalid with the problem in its error field, and finalize
		// answers that order, as RFC 8555 section 7.1.6 has a failed
		// order, rather than a bare 500.
		s.opts.Logger.Warn("order invalid: issuance failed", "order", o.ID, "detail", p.Detail)
		return nil
	}
	c := &Certificate{Serial: iss.Serial.Text(16), AccountID: o.AccountID, OrderID: o.ID, Names: names(o.Identifiers)}
	o.CertSerial = c.Serial
	if err := s.opts.Store.UpdateOrder(ctx, o); err != nil {
		return err
	}
	// The CA has recorded the certificate; the ACME store links it. A
	// reader that found the order processing may have linked it first
	// (processingStatus).
	if err := s.opts.Store.AddCertificate(ctx, c); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	if err := s.afterIssue(ctx, o, c); err != nil {
		return err
	}
	o.Status = statusValid
	s.metrics.certificate(o.Profile)
	return s.opts.Store.UpdateOrder(ctx, o)
}

// afterIssue records the rate limit events of a new certificate, or marks
// the certificate an ARI renewal replaces.
func (s *Server) afterIssue(ctx context.Context, o *Order, c *Certificate) error {
	if o.Replaces != "" {
		if old, err := s.certByARIID(ctx, o.Replaces); err == nil {
			old.ReplacedBy = o.ID
			return s.opts.Store.UpdateCertificate(ctx, old.Certificate)
		}
		return nil
	}
	for _, d := range ratelimit.RegisteredDomains(c.Names) {
		if err := s.recordLimit(ctx, ratelimit.CertificatesPerDomain, d); err != nil {
			return err
		}
	}
	return s.recordLimit(ctx, ratelimit.DuplicateCertificates, ratelimit.NamesKey(c.Names))
}
