package acme

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	castore "github.com/ctstage/ctstage/ca/store"
)

// certificate serves POST-as-GET downloads (section 7.4.2):
// /acme/cert/{serial} is the default chain, /acme/cert/{serial}/1 the
// alternate; each links to the other with rel="alternate".
func (s *Server) certificate(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	alt := 0
	switch r.PathValue("alt") {
	case "":
	case "1":
		alt = 1
	default:
		return notFound("no such chain")
	}
	c, err := s.issuedBySerial(r.Context(), r.PathValue("serial"))
	if err != nil {
		return err
	}
	if err := own(q, c.AccountID, "certificate"); err != nil {
		return err
	}
	if !q.postAsGet() {
		return malformed("certificate download is POST-as-GET (empty payload)")
	}
	other := pathCert + c.Serial
	if alt == 0 {
		other += "/1"
	}
	w.Header().Add("Link", link(s.url(r, other), "alternate"))
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	_, err = w.Write(s.opts.Chains.pem(c.rec.Certificate, c.issuer, alt))
	return err
}

// issued is a certificate this server issued: the ACME store's link to
// its order and account, and the CA's record of it (the one copy of its
// DER, SCTs and revocation).
type issued struct {
	*Certificate
	rec    *castore.Record
	issuer string            // "ecdsa" or "rsa": which intermediate signed it
	parsed *x509.Certificate // by leaf, on first use
}

// leaf parses the certificate once, for the callers that need more than
// its bytes (ARI); a download sends the bytes as they are.
func (c *issued) leaf() (*x509.Certificate, error) {
	if c.parsed == nil {
		leaf, err := x509.ParseCertificate(c.rec.Certificate)
		if err != nil {
			return nil, fmt.Errorf("couldn't parse certificate %s from the CA's record: %w", c.Serial, err)
		}
		c.parsed = leaf
	}
	return c.parsed, nil
}

// issuedBySerial finds a certificate by serial (lower-case hex): a
// notFound problem when this server issued none.
func (s *Server) issuedBySerial(ctx context.Context, serial string) (*issued, error) {
	c, err := s.opts.Store.Certificate(ctx, serial)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound("no certificate %s", serial)
	} else if err != nil {
		return nil, err
	}
	rec, err := s.opts.CA.Record(ctx, serial)
	if errors.Is(err, castore.ErrNotFound) || (err == nil && rec.Certificate == nil) {
		return nil, fmt.Errorf("the CA has no certificate %s, which order %s links to", serial, c.OrderID)
	} else if err != nil {
		return nil, err
	}
	return &issued{Certificate: c, rec: rec,
		issuer: s.opts.Chains.issuerName(s.opts.Hierarchy.IntermediateByKeyID(rec.IssuerKeyID))}, nil
}

type revokeReq struct {
	Certificate string `json:"certificate"`
	Reason      *int   `json:"reason"`
}

// revoke revokes a certificate (section 7.6), signed by the account that
// ordered it (kid) or by the certificate's key (jwk), through the CA
// (ca.CA.Revoke): the revocation is in the CA's store, durably, before the
// 200, and the intermediate's CRL lists it from then on. The CA's store is
// the one record of revocations; ARI reads it too.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOrJWK)
	if err != nil {
		return err
	}
	var req revokeReq
	if err := decodePayload(q.payload, &req); err != nil {
		return err
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(req.Certificate, "="))
	if err != nil {
		return malformed("certificate is not base64url")
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return malformed("couldn't parse the certificate: %v", err)
	}
	c, err := s.issuedBySerial(r.Context(), leaf.SerialNumber.Text(16))
	var p *Problem
	if errors.As(err, &p) || (err == nil && !bytes.Equal(c.rec.Certificate, der)) {
		return notFound("this server did not issue this certificate")
	} else if err != nil {
		return err
	}
	if err := s.checkRevoker(r.Context(), q, c, leaf); err != nil {
		return err
	}
	reason := 0
	if req.Reason != nil {
		reason = *req.Reason
	}
	if !slices.Contains([]int{0, 1, 3, 4, 5}, reason) {
		return badRevocationReason("reason %d is not allowed (0, 1, 3, 4, 5)", reason)
	}
	err = s.opts.CA.Revoke(r.Context(), leaf.SerialNumber, reason, s.opts.Now())
	if errors.Is(err, castore.ErrAlreadyRevoked) {
		if rv, _ := s.opts.CA.Revocation(r.Context(), leaf.SerialNumber); rv != nil {
			return alreadyRevoked("certificate %s was revoked at %s", c.Serial, rv.At.UTC().Format(time.RFC3339))
		}
		return alreadyRevoked("certificate %s is already revoked", c.Serial)
	}
	if err != nil {
		return err
	}
	s.opts.Logger.Info("revoked", "serial", c.Serial, "reason", reason)
	s.metrics.revoked(reason)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) checkRevoker(ctx context.Context, q *request, c *issued, leaf *x509.Certificate) error {
	if q.account != nil {
		if q.account.ID == c.AccountID {
			return nil
		}
		// RFC 8555 section 7.6: an account that holds valid
		// authorizations for every name in the certificate may revoke
		// it, whoever ordered it (Boulder allows it too).
		ok, err := s.authorizedForAll(ctx, q.account, certNames(leaf))
		if err != nil {
			return err
		}
		if !ok {
			return unauthorized("the certificate is another account's, and this account holds no valid authorization for all of its names")
		}
		return nil
	}
	eq, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(q.jwk.Key) {
		return unauthorized("the JWS key is not the certificate's key")
	}
	return nil
}

// certNames are the identifiers a certificate names: DNS names, with a
// wildcard's "*." cut (its authorization is for the base name, as at
// Boulder), and IP addresses.
func certNames(leaf *x509.Certificate) []string {
	var out []string
	for _, d := range leaf.DNSNames {
		out = append(out, strings.TrimPrefix(strings.ToLower(d), "*."))
	}
	for _, ip := range leaf.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// authorizedForAll reports whether account a holds a valid, unexpired
// authorization for each of names, among the authorizations of its
// orders.
func (s *Server) authorizedForAll(ctx context.Context, a *Account, names []string) (bool, error) {
	need := map[string]bool{}
	for _, n := range names {
		need[n] = true
	}
	ids, err := s.opts.Store.OrderIDs(ctx, a.ID)
	if err != nil {
		return false, err
	}
	seen := map[string]bool{}
	for _, id := range ids {
		o, err := s.opts.Store.Order(ctx, id)
		if err != nil {
			return false, err
		}
		for _, azID := range o.AuthzIDs {
			if seen[azID] {
				continue
			}
			seen[azID] = true
			az, err := s.opts.Store.Authz(ctx, azID)
			if errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return false, err
			}
			if s.authzStatus(az) == statusValid {
				delete(need, strings.TrimPrefix(az.Identifier.Value, "*."))
			}
		}
		if len(need) == 0 {
			return true, nil
		}
	}
	return len(need) == 0, nil
}

// renewalInfo serves ARI (RFC 9773): GET /acme/renewal-info/{certID}
// with certID base64url(AKI) "." base64url(serial DER INTEGER content).
func (s *Server) renewalInfo(w http.ResponseWriter, r *http.Request) error {
	c, err := s.certByARIID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	leaf, err := c.leaf()
	if err != nil {
		return err
	}
	nb, na := leaf.NotBefore, leaf.NotAfter
	start := na.Add(-na.Sub(nb) / 3)
	end := na.Add(-na.Sub(nb) / 6)
	if c.rec.Revocation != nil {
		now := s.opts.Now()
		start, end = now.Add(-time.Hour), now.Add(-time.Minute)
	}
	w.Header().Set("Retry-After", "21600")
	return writeJSON(w, http.StatusOK, map[string]any{
		"suggestedWindow": map[string]time.Time{"start": start.UTC().Truncate(time.Second), "end": end.UTC().Truncate(time.Second)},
	})
}

// certByARIID finds the certificate of an ARI certID and checks its AKI.
func (s *Server) certByARIID(ctx context.Context, id string) (*issued, error) {
	akiB64, serialB64, ok := strings.Cut(id, ".")
	aki, err1 := base64.RawURLEncoding.DecodeString(akiB64)
	serial, err2 := base64.RawURLEncoding.DecodeString(serialB64)
	if !ok || err1 != nil || err2 != nil || len(serial) == 0 {
		return nil, malformed("%q is not an ARI certID (base64url AKI \".\" base64url serial)", id)
	}
	c, err := s.issuedBySerial(ctx, new(big.Int).SetBytes(serial).Text(16))
	var p *Problem
	if errors.As(err, &p) {
		return nil, notFound("no certificate with serial %s", hex.EncodeToString(serial))
	} else if err != nil {
		return nil, err
	}
	leaf, err := c.leaf()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(leaf.AuthorityKeyId, aki) {
		return nil, notFound("certID's authority key identifier is not the certificate's")
	}
	return c, nil
}

// checkReplaces checks an order's "replaces" (RFC 9773 section 5): a
// certificate of the same account, not already replaced, sharing a name.
func (s *Server) checkReplaces(ctx context.Context, a *Account, id string, ids []Identifier) error {
	c, err := s.certByARIID(ctx, id)
	if err != nil {
		var p *Problem
		if errors.As(err, &p) {
			return malformed("replaces: %s", p.Detail)
		}
		return err
	}
	if c.AccountID != a.ID {
		return unauthorized("replaces names a certificate of another account")
	}
	if c.ReplacedBy != "" {
		p := problem("alreadyReplaced", http.StatusConflict, "certificate %s was already replaced by order %s", c.Serial, c.ReplacedBy)
		return p
	}
	if !slices.ContainsFunc(ids, func(i Identifier) bool { return slices.Contains(c.Names, i.Value) }) {
		return malformed("replaces names a certificate that shares no identifier with this order")
	}
	return nil
}
