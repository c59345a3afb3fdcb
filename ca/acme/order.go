package acme

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ratelimit"
	castore "github.com/ctstage/ctstage/ca/store"
)

// orderJSON is the order object (RFC 8555 section 7.1.3).
type orderJSON struct {
	Status         string       `json:"status"`
	Expires        time.Time    `json:"expires"`
	Identifiers    []Identifier `json:"identifiers"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate,omitempty"`
	Error          *Problem     `json:"error,omitempty"`
	Profile        string       `json:"profile,omitempty"`
	Replaces       string       `json:"replaces,omitempty"`
}

type newOrderReq struct {
	Identifiers []Identifier `json:"identifiers"`
	NotBefore   string       `json:"notBefore"`
	NotAfter    string       `json:"notAfter"`
	Profile     string       `json:"profile"`
	Replaces    string       `json:"replaces"`
}

// newOrder creates an order and one new authorization per identifier
// (section 7.4).
func (s *Server) newOrder(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	var req newOrderReq
	if err := decodePayload(q.payload, &req); err != nil {
		return err
	}
	if req.NotBefore != "" || req.NotAfter != "" {
		return malformed("notBefore and notAfter are not supported; choose a profile instead")
	}
	profile := req.Profile
	if profile == "" {
		profile = ca.DefaultProfile
	}
	if _, ok := ca.Profiles[profile]; !ok {
		return invalidProfile("unknown profile %q", req.Profile)
	}
	ids, err := checkIdentifiers(req.Identifiers, profile)
	if err != nil {
		return err
	}
	if req.Replaces != "" {
		if err := s.checkReplaces(r.Context(), q.account, req.Replaces, ids); err != nil {
			return err
		}
	}
	if err := s.checkOrderLimits(r.Context(), q.account, ids, req.Replaces != ""); err != nil {
		return err
	}
	o, authzs := s.buildOrder(q.account, ids, req.Profile, req.Replaces)
	if err := s.opts.Store.CreateOrder(r.Context(), o, authzs); err != nil {
		return err
	}
	s.metrics.orders.Inc()
	if err := s.recordLimit(r.Context(), ratelimit.OrdersPerAccount, q.account.ID); err != nil {
		return err
	}
	// The status from the authorizations just stored, not read back.
	st, err := s.pendingStatusOf(o, func(i int) (*Authz, error) { return authzs[i], nil })
	if err != nil {
		return err
	}
	return s.writeOrderAs(w, r, o, http.StatusCreated, st, nil)
}

// checkOrderLimits applies the limits checked at newOrder. Renewals
// through ARI (replaces) are exempt from the order and certificate limits,
// as on Let's Encrypt.
func (s *Server) checkOrderLimits(ctx context.Context, a *Account, ids []Identifier, ari bool) error {
	for _, id := range ids {
		if err := s.checkLimit(ctx, ratelimit.FailedValidations, a.ID+":"+id.Value); err != nil {
			return err
		}
	}
	if ari {
		return nil
	}
	if err := s.checkLimit(ctx, ratelimit.OrdersPerAccount, a.ID); err != nil {
		return err
	}
	for _, d := range ratelimit.RegisteredDomains(names(ids)) {
		if err := s.checkLimit(ctx, ratelimit.CertificatesPerDomain, d); err != nil {
			return err
		}
	}
	return s.checkLimit(ctx, ratelimit.DuplicateCertificates, ratelimit.NamesKey(names(ids)))
}

func (s *Server) buildOrder(a *Account, ids []Identifier, profile, replaces string) (*Order, []*Authz) {
	now := s.opts.Now()
	exp := now.Add(s.opts.OrderLifetime).UTC().Truncate(time.Second)
	o := &Order{ID: newID(), AccountID: a.ID, Status: statusPending, Expires: exp, Identifiers: ids,
		Profile: profile, Replaces: replaces, Created: now}
	var authzs []*Authz
	for _, id := range ids {
		az := &Authz{ID: newID(), AccountID: a.ID, Identifier: id, Status: statusPending, Expires: exp}
		types := []string{"http-01", "dns-01", "tls-alpn-01"}
		switch {
		case strings.HasPrefix(id.Value, "*."):
			az.Wildcard, types = true, []string{"dns-01"}
		case id.Type == "ip":
			types = []string{"http-01", "tls-alpn-01"}
		}
		for _, t := range types {
			az.Challenges = append(az.Challenges, Challenge{Type: t, Token: newToken(), Status: statusPending})
		}
		authzs = append(authzs, az)
		o.AuthzIDs = append(o.AuthzIDs, az.ID)
	}
	return o, authzs
}

// order serves POST-as-GET to an order.
func (s *Server) order(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	o, err := s.loadOrder(r.Context(), q, r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.writeOrder(w, r, o, http.StatusOK)
}

func (s *Server) loadOrder(ctx context.Context, q *request, id string) (*Order, error) {
	o, err := s.opts.Store.Order(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound("no order %s", id)
	}
	if err != nil {
		return nil, err
	}
	return o, own(q, o.AccountID, "order")
}

// orderStatus is the order's status (section 7.1.6) and its error, computed
// on each read from what is stored: the status finalize stored, except
// that a pending order is ready or invalid by its authorizations and its
// expiry, and a processing order is judged by processingStatus.
func (s *Server) orderStatus(ctx context.Context, o *Order) (string, *Problem, error) {
	switch o.Status {
	case statusPending:
		st, err := s.pendingStatus(ctx, o)
		return st, nil, err
	case statusProcessing:
		return s.processingStatus(ctx, o)
	}
	return o.Status, o.Error, nil
}

// pendingStatus is pending, ready or invalid (expired, or an
// authorization failed) for an order finalize has not touched.
func (s *Server) pendingStatus(ctx context.Context, o *Order) (string, error) {
	return s.pendingStatusOf(o, func(i int) (*Authz, error) { return s.opts.Store.Authz(ctx, o.AuthzIDs[i]) })
}

// pendingStatusOf is pendingStatus with o's authorizations from authz(i),
// the one of o.AuthzIDs[i].
func (s *Server) pendingStatusOf(o *Order, authz func(i int) (*Authz, error)) (string, error) {
	if s.opts.Now().After(o.Expires) {
		return statusInvalid, nil
	}
	ready := true
	for i := range o.AuthzIDs {
		az, err := authz(i)
		if err != nil {
			return "", err
		}
		switch s.authzStatus(az) {
		case statusValid:
		case statusPending:
			ready = false
		default:
			return statusInvalid, nil
		}
	}
	if ready {
		return statusReady, nil
	}
	return statusPending, nil
}

// processingStatus judges an order stored processing. Its certificate
// recorded, it is valid (a crash came between recording the certificate
// and the order). Otherwise it stays processing while an issuance may
// still be running, for 2 x IssueTimeout from the start of finalize (the
// issuance is cut at IssueTimeout; the rest is margin for the store's
// last writes), even past its expiry, so that a running issuance never
// turns an invalid order valid. After that the server has given up: the
// order is invalid, as it is past its expiry.
//
// A certificate the CA recorded but the ACME store did not link (a crash
// between the two writes) is linked here, and the order is valid: the
// certificate exists and is logged. Nothing else is written back, and the
// answer is the same on every read and after a restart.
func (s *Server) processingStatus(ctx context.Context, o *Order) (string, *Problem, error) {
	if o.CertSerial != "" {
		_, err := s.opts.Store.Certificate(ctx, o.CertSerial)
		if err == nil {
			return statusValid, nil, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return "", nil, err
		}
		linked, err := s.linkRecorded(ctx, o)
		if err != nil || linked {
			return statusValid, nil, err
		}
	}
	if s.opts.Now().Sub(o.Processing) < 2*s.opts.IssueTimeout {
		return statusProcessing, nil, nil
	}
	return statusInvalid, serverInternal("issuance was interrupted (the server stopped while processing the order); order again"), nil
}

// linkRecorded links the certificate of a processing order to it when
// the CA has recorded that certificate, and reports whether it did.
func (s *Server) linkRecorded(ctx context.Context, o *Order) (bool, error) {
	rec, err := s.opts.CA.Record(ctx, o.CertSerial)
	if errors.Is(err, castore.ErrNotFound) || (err == nil && rec.Certificate == nil) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	c := &Certificate{Serial: o.CertSerial, AccountID: o.AccountID, OrderID: o.ID, Names: names(o.Identifiers)}
	if err := s.opts.Store.AddCertificate(ctx, c); err != nil && !errors.Is(err, ErrConflict) {
		return false, err
	}
	s.opts.Logger.Info("linked a certificate the CA recorded before an interruption", "order", o.ID, "serial", o.CertSerial)
	return true, nil
}

func (s *Server) writeOrder(w http.ResponseWriter, r *http.Request, o *Order, status int) error {
	st, p, err := s.orderStatus(r.Context(), o)
	if err != nil {
		return err
	}
	return s.writeOrderAs(w, r, o, status, st, p)
}

// writeOrderAs writes o with the status st and error p orderStatus gave.
func (s *Server) writeOrderAs(w http.ResponseWriter, r *http.Request, o *Order, status int, st string, p *Problem) error {
	j := orderJSON{Status: st, Expires: o.Expires, Identifiers: o.Identifiers, Error: p,
		Finalize: s.url(r, pathOrder+o.ID+"/finalize"), Profile: o.Profile, Replaces: o.Replaces}
	for _, id := range o.AuthzIDs {
		j.Authorizations = append(j.Authorizations, s.url(r, pathAuthz+id))
	}
	if st == statusValid {
		j.Certificate = s.url(r, pathCert+o.CertSerial)
	}
	w.Header().Set("Location", s.url(r, pathOrder+o.ID))
	return writeJSON(w, status, j)
}
