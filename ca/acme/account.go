package acme

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/mail"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ctstage/ctstage/ca/ratelimit"
)

// accountJSON is the account object (RFC 8555 section 7.1.2).
type accountJSON struct {
	Status  string   `json:"status"`
	Contact []string `json:"contact,omitempty"`
	Orders  string   `json:"orders"`
	Key     any      `json:"key,omitempty"`
}

func (s *Server) writeAccount(w http.ResponseWriter, r *http.Request, a *Account, status int) error {
	w.Header().Set("Location", s.url(r, pathAccount+a.ID))
	return writeJSON(w, status, accountJSON{Status: a.Status, Contact: a.Contact, Orders: s.url(r, pathAccount+a.ID+"/orders"), Key: a.Key})
}

type newAccountReq struct {
	Contact                []string        `json:"contact"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
}

// newAccount creates an account or finds the one of the key (section 7.3).
func (s *Server) newAccount(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, jwkOnly)
	if err != nil {
		return err
	}
	var req newAccountReq
	if err := decodePayload(q.payload, &req); err != nil {
		return err
	}
	tp, err := thumbprint(q.jwk)
	if err != nil {
		return badPublicKey("couldn't compute the key's thumbprint: %v", err)
	}
	if a, err := s.opts.Store.AccountByThumbprint(r.Context(), tp); err == nil {
		return s.writeAccount(w, r, a, http.StatusOK)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if req.OnlyReturnExisting {
		return accountDoesNotExist("no account has this key")
	}
	if err := checkContacts(req.Contact); err != nil {
		return err
	}
	eabKID, err := s.checkEAB(r, req.ExternalAccountBinding, q.jwk)
	if err != nil {
		return err
	}
	ip := clientIP(r)
	if err := s.checkLimit(r.Context(), ratelimit.AccountsPerIP, ip); err != nil {
		return err
	}
	a := &Account{ID: newID(), Key: q.jwk, Thumbprint: tp, Contact: req.Contact, Status: statusValid,
		Created: s.opts.Now(), IP: ip, EABKeyID: eabKID}
	if err := s.opts.Store.CreateAccount(r.Context(), a); errors.Is(err, ErrConflict) {
		existing, err := s.opts.Store.AccountByThumbprint(r.Context(), tp)
		if err != nil {
			return err
		}
		return s.writeAccount(w, r, existing, http.StatusOK)
	} else if err != nil {
		return err
	}
	if err := s.recordLimit(r.Context(), ratelimit.AccountsPerIP, ip); err != nil {
		return err
	}
	return s.writeAccount(w, r, a, http.StatusCreated)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// checkContacts accepts mailto: URLs of one plain address each, as Let's
// Encrypt does.
func checkContacts(cs []string) error {
	for _, c := range cs {
		addr, ok := strings.CutPrefix(c, "mailto:")
		if !ok {
			return unsupportedContact("contact %q: only mailto: URLs are supported", c)
		}
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || a.Name != "" || strings.ContainsAny(addr, ",?") {
			return invalidContact("contact %q is not a valid email address", c)
		}
	}
	return nil
}

type accountUpdate struct {
	Status  string    `json:"status"`
	Contact *[]string `json:"contact"`
}

// account serves POST(-as-GET) to an account: read, update contacts,
// deactivate (section 7.3.2, 7.3.6).
func (s *Server) account(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	if err := own(q, r.PathValue("id"), "account"); err != nil {
		return err
	}
	a := q.account
	if q.postAsGet() {
		return s.writeAccount(w, r, a, http.StatusOK)
	}
	var u accountUpdate
	if err := decodePayload(q.payload, &u); err != nil {
		return err
	}
	switch u.Status {
	case "", statusDeactivated:
	default:
		return malformed("an account's status can only be set to deactivated")
	}
	if u.Contact != nil {
		if err := checkContacts(*u.Contact); err != nil {
			return err
		}
	}
	// A compare-and-swap: a request that loses the race to another change
	// of the account applies itself to the account as it now is, and a
	// deactivation that won makes it unauthorized.
	for {
		if u.Status == statusDeactivated {
			a.Status = statusDeactivated
		}
		if u.Contact != nil {
			a.Contact = *u.Contact
		}
		err := s.opts.Store.UpdateAccount(r.Context(), a)
		if err == nil {
			break
		}
		if a, err = s.reloadAccount(r.Context(), a.ID, err); err != nil {
			return err
		}
	}
	return s.writeAccount(w, r, a, http.StatusOK)
}

// reloadAccount reads account id again after its update failed with err:
// when err is ErrStale (another request changed the account first), it
// returns the account as it now is, or unauthorized if that change
// deactivated it; any other err is returned.
func (s *Server) reloadAccount(ctx context.Context, id string, err error) (*Account, error) {
	if !errors.Is(err, ErrStale) {
		return nil, err
	}
	a, err := s.opts.Store.Account(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.Status != statusValid {
		return nil, unauthorized("account is %s", a.Status)
	}
	return a, nil
}

// orderList serves an account's orders (section 7.1.2.1).
func (s *Server) orderList(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	if err := own(q, r.PathValue("id"), "account"); err != nil {
		return err
	}
	ids, err := s.opts.Store.OrderIDs(r.Context(), q.account.ID)
	if err != nil {
		return err
	}
	urls := make([]string, len(ids))
	for i, id := range ids {
		urls[i] = s.url(r, pathOrder+id)
	}
	return writeJSON(w, http.StatusOK, map[string][]string{"orders": urls})
}

type keyChangeReq struct {
	Account string          `json:"account"`
	OldKey  json.RawMessage `json:"oldKey"`
}

// keyChange rolls an account over to a new key (section 7.3.5).
func (s *Server) keyChange(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	inner, prob := parseJWS(q.payload, true)
	if prob != nil {
		return prob
	}
	if inner.hdr.URL != q.url {
		return malformed("inner JWS url %q is not the outer's", inner.hdr.URL)
	}
	payload, prob := inner.verify(inner.jwk)
	if prob != nil {
		return prob
	}
	var req keyChangeReq
	if err := decodePayload(payload, &req); err != nil {
		return err
	}
	acctURL := s.url(r, pathAccount+q.account.ID)
	if req.Account != acctURL {
		return malformed("keyChange account %q is not the signer's %q", req.Account, acctURL)
	}
	var old jose.JSONWebKey
	if err := old.UnmarshalJSON(req.OldKey); err != nil {
		return malformed("keyChange oldKey: %v", err)
	}
	oldTP, err := thumbprint(&old)
	if err != nil {
		return malformed("keyChange oldKey is not the account's key")
	}
	newTP, err := thumbprint(inner.jwk)
	if err != nil {
		return badPublicKey("couldn't compute the new key's thumbprint: %v", err)
	}
	if other, err := s.opts.Store.AccountByThumbprint(r.Context(), newTP); err == nil {
		return conflict(s.url(r, pathAccount+other.ID), "the new key is already in use by an account")
	}
	// A compare-and-swap on the account: of concurrent key changes, one
	// wins; the others find the account's key changed and are refused.
	a := q.account
	for {
		if oldTP != a.Thumbprint {
			return malformed("keyChange oldKey is not the account's key")
		}
		a.Key, a.Thumbprint = inner.jwk, newTP
		err := s.opts.Store.UpdateAccount(r.Context(), a)
		if errors.Is(err, ErrConflict) {
			return conflict("", "the new key is already in use by an account")
		}
		if err == nil {
			break
		}
		if a, err = s.reloadAccount(r.Context(), a.ID, err); err != nil {
			return err
		}
	}
	return s.writeAccount(w, r, a, http.StatusOK)
}

// checkEAB verifies an external account binding (section 7.3.4) when
// present or required, and returns its key ID.
func (s *Server) checkEAB(r *http.Request, eab json.RawMessage, jwk *jose.JSONWebKey) (string, error) {
	if len(eab) == 0 || string(eab) == "null" {
		if s.opts.ExternalAccountRequired {
			return "", externalAccountRequired("this server requires an external account binding")
		}
		return "", nil
	}
	if len(s.opts.EABKeys) == 0 {
		return "", nil // accepted and ignored, as Let's Encrypt does
	}
	sig, err := jose.ParseSignedJSON(string(eab), []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512})
	if err != nil || len(sig.Signatures) != 1 {
		return "", malformed("externalAccountBinding is not a JWS with an HMAC algorithm")
	}
	h := sig.Signatures[0].Protected
	key, ok := s.opts.EABKeys[h.KeyID]
	if !ok {
		return "", unauthorized("unknown external account binding key ID %q", h.KeyID)
	}
	if u, _ := h.ExtraHeaders["url"].(string); u != s.url(r, pathNewAccount) {
		return "", malformed("externalAccountBinding url is not the newAccount URL")
	}
	payload, err := sig.Verify(key)
	if err != nil {
		return "", unauthorized("external account binding signature is invalid")
	}
	var bound jose.JSONWebKey
	if err := bound.UnmarshalJSON(payload); err != nil {
		return "", malformed("externalAccountBinding payload is not a JWK")
	}
	if a, b := mustTP(&bound), mustTP(jwk); a == "" || a != b {
		return "", unauthorized("external account binding is for another key")
	}
	return h.KeyID, nil
}

func mustTP(k *jose.JSONWebKey) string {
	tp, _ := thumbprint(k)
	return tp
}

// checkLimit turns a ratelimit refusal into rateLimited with Retry-After.
func (s *Server) checkLimit(ctx context.Context, name ratelimit.Name, key string) error {
	err := s.limiter.Check(ctx, name, key)
	var ex *ratelimit.Exceeded
	if errors.As(err, &ex) {
		s.metrics.rateLimited.WithLabelValues(string(ex.Limit)).Inc()
		p := rateLimited("%s", ex.Error())
		p.RetryAfter = int(ex.RetryAfter.Seconds() + 0.999)
		return p
	}
	return err
}

func (s *Server) recordLimit(ctx context.Context, name ratelimit.Name, key string) error {
	return s.limiter.Record(ctx, name, key)
}
