package acme

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// request is an authenticated POST (RFC 8555 section 6.2).
type request struct {
	payload []byte
	account *Account         // requests signed with a kid
	jwk     *jose.JSONWebKey // requests signed with a jwk
	url     string
}

// postAsGet reports a POST-as-GET (empty payload, section 6.3).
func (q *request) postAsGet() bool { return len(q.payload) == 0 }

type keyMode int

const (
	kidOnly keyMode = iota
	jwkOnly
	kidOrJWK
)

// authenticate reads, parses and verifies a POST: its url is the request's,
// its nonce one issued and unused, its key the account's (kid) or the one
// it carries (jwk), as mode allows; the account must be valid.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, mode keyMode) (*request, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	p, prob := parseJWS(body, false)
	if prob != nil {
		return nil, prob
	}
	q := &request{url: s.url(r, r.URL.Path)}
	if p.hdr.URL != q.url {
		return nil, unauthorized("JWS url %q is not the request's URL %q", p.hdr.URL, q.url)
	}
	if ok, err := s.nonces.redeem(r.Context(), p.hdr.Nonce); err != nil {
		return nil, err
	} else if !ok {
		return nil, badNonce("JWS nonce %q is unknown or was used", p.hdr.Nonce)
	}
	key := p.jwk
	switch {
	case p.jwk != nil && mode == kidOnly:
		return nil, malformed("this request must be signed with an account's kid, not a jwk")
	case p.jwk == nil && mode == jwkOnly:
		return nil, malformed("this request must be signed with a jwk, not a kid")
	case p.jwk == nil:
		if q.account, err = s.accountForKID(r, p.hdr.KID); err != nil {
			return nil, err
		}
		key = q.account.Key
	}
	if q.payload, prob = p.verify(key); prob != nil {
		return nil, prob
	}
	q.jwk = p.jwk
	return q, nil
}

func (s *Server) accountForKID(r *http.Request, kid string) (*Account, error) {
	id, ok := strings.CutPrefix(kid, s.url(r, pathAccount))
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, accountDoesNotExist("kid %q is not an account URL of this server", kid)
	}
	a, err := s.opts.Store.Account(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return nil, accountDoesNotExist("no account %s", id)
	}
	if err != nil {
		return nil, err
	}
	if a.Status != statusValid {
		return nil, unauthorized("account %s is %s", id, a.Status)
	}
	return a, nil
}

// decodePayload decodes a JSON object payload into v. Unknown fields are
// ignored, as clients add their own (RFC 8555 section 7.1 allows it).
func decodePayload(payload []byte, v any) error {
	if !bytes.HasPrefix(bytes.TrimSpace(payload), []byte("{")) {
		return malformed("payload must be a JSON object")
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return malformed("couldn't decode payload: %v", err)
	}
	return nil
}

// own refuses access to a resource of another account with unauthorized,
// as Boulder does (not 404: the URL was valid).
func own(q *request, accountID, what string) error {
	if q.account == nil || q.account.ID != accountID {
		return unauthorized("%s belongs to another account", what)
	}
	return nil
}
