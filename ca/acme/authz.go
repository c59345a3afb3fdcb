package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/ca/va"
)

// authzJSON is the authorization object (RFC 8555 section 7.1.4).
type authzJSON struct {
	Identifier Identifier      `json:"identifier"`
	Status     string          `json:"status"`
	Expires    time.Time       `json:"expires"`
	Challenges []challengeJSON `json:"challenges"`
	Wildcard   bool            `json:"wildcard,omitempty"`
}

// challengeJSON is the challenge object (section 8).
type challengeJSON struct {
	Type      string     `json:"type"`
	URL       string     `json:"url"`
	Token     string     `json:"token"`
	Status    string     `json:"status"`
	Validated *time.Time `json:"validated,omitempty"`
	Error     *Problem   `json:"error,omitempty"`
}

func newToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) authzStatus(az *Authz) string {
	if az.Status == statusPending && s.opts.Now().After(az.Expires) {
		return "expired"
	}
	return az.Status
}

func (s *Server) authzJSON(r *http.Request, az *Authz) authzJSON {
	j := authzJSON{Identifier: az.Identifier, Status: s.authzStatus(az), Expires: az.Expires, Wildcard: az.Wildcard}
	j.Identifier.Value = strings.TrimPrefix(j.Identifier.Value, "*.")
	for i := range az.Challenges {
		j.Challenges = append(j.Challenges, s.challengeJSON(r, az, i))
	}
	return j
}

func (s *Server) challengeJSON(r *http.Request, az *Authz, i int) challengeJSON {
	c := az.Challenges[i]
	return challengeJSON{Type: c.Type, URL: s.url(r, pathChallenge+az.ID+"/"+strconv.Itoa(i)), Token: c.Token,
		Status: c.Status, Validated: c.Validated, Error: c.Error}
}

func (s *Server) loadAuthz(ctx context.Context, q *request, id string) (*Authz, error) {
	az, err := s.opts.Store.Authz(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound("no authorization %s", id)
	}
	if err != nil {
		return nil, err
	}
	return az, own(q, az.AccountID, "authorization")
}

// authz serves POST-as-GET to an authorization, and its deactivation
// (section 7.5.2).
func (s *Server) authz(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	az, err := s.loadAuthz(r.Context(), q, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !q.postAsGet() {
		var u struct {
			Status string `json:"status"`
		}
		if err := decodePayload(q.payload, &u); err != nil {
			return err
		}
		if u.Status != statusDeactivated {
			return malformed("an authorization's status can only be set to deactivated")
		}
		// A compare-and-swap: a request that loses the race to another
		// change reads the authorization again and checks anew.
		for {
			if st := s.authzStatus(az); st != statusPending && st != statusValid {
				return malformed("an authorization that is %s cannot be deactivated", st)
			}
			az.Status = statusDeactivated
			err := s.opts.Store.UpdateAuthz(r.Context(), az)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrStale) {
				return err
			}
			if az, err = s.opts.Store.Authz(r.Context(), az.ID); err != nil {
				return err
			}
		}
	}
	return writeJSON(w, http.StatusOK, s.authzJSON(r, az))
}

// challenge serves POST-as-GET to a challenge, and, with a payload ({}),
// validates it (section 7.5.1). Validation is synchronous: the answer
// already has the outcome.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request) error {
	q, err := s.authenticate(w, r, kidOnly)
	if err != nil {
		return err
	}
	az, err := s.loadAuthz(r.Context(), q, r.PathValue("authz"))
	if err != nil {
		return err
	}
	i, err := strconv.Atoi(r.PathValue("i"))
	if err != nil || i < 0 || i >= len(az.Challenges) {
		return notFound("no such challenge")
	}
	w.Header().Add("Link", link(s.url(r, pathAuthz+az.ID), "up"))
	if q.postAsGet() || s.authzStatus(az) != statusPending {
		return writeJSON(w, http.StatusOK, s.challengeJSON(r, az, i))
	}
	az, err = s.validate(r.Context(), q.account, az, i)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.challengeJSON(r, az, i))
}

// validate runs challenge i of az and stores the outcome: the challenge
// and the authorization become valid or invalid. The store's update is a
// compare-and-swap: when a concurrent response to a challenge of az has
// already decided it, this outcome is dropped, and validate returns az as
// stored, with that decision. Only a stored outcome counts towards the
// failed-validations limit.
func (s *Server) validate(ctx context.Context, a *Account, az *Authz, i int) (*Authz, error) {
	c := az.Challenges[i]
	start := time.Now()
	var err error
	if az.Identifier.Type == "dns" {
		err = s.opts.Validator.CheckCAA(az.Identifier.Value, az.Wildcard)
	}
	if err == nil && !s.opts.AlwaysValid {
		keyAuth := c.Token + "." + a.Thumbprint
		err = s.opts.Validator.Validate(ctx, c.Type, az.Identifier.Type, strings.TrimPrefix(az.Identifier.Value, "*."), c.Token, keyAuth)
	}
	now := s.opts.Now().UTC().Truncate(time.Second)
	var p *Problem
	status := statusValid
	if err != nil {
		p = vaProblem(err).WithIdentifier(az.Identifier)
		status = statusInvalid
		s.opts.Logger.Info("validation failed", "account", a.ID, "identifier", az.Identifier.Value, "type", c.Type, "err", err)
	}
	s.metrics.validated(c.Type, p, time.Since(start))
	for {
		ch := &az.Challenges[i]
		if status == statusValid {
			ch.Status, ch.Validated = statusValid, &now
		} else {
			ch.Status, ch.Error = statusInvalid, p
		}
		az.Status = status
		err := s.opts.Store.UpdateAuthz(ctx, az)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrStale) {
			return nil, err
		}
		if az, err = s.opts.Store.Authz(ctx, az.ID); err != nil {
			return nil, err
		}
		if s.authzStatus(az) != statusPending {
			return az, nil // decided by the other request
		}
	}
	if status == statusInvalid {
		if err := s.recordLimit(ctx, ratelimit.FailedValidations, a.ID+":"+az.Identifier.Value); err != nil {
			return nil, err
		}
	}
	return az, nil
}

// vaProblem turns a validation failure into its problem document.
func vaProblem(err error) *Problem {
	var ve *va.Error
	if !errors.As(err, &ve) {
		// Not the client's doing: the detail is logged (validate), not sent.
		return serverInternal("validation could not be completed")
	}
	ctor := map[va.Kind]func(string, ...any) *Problem{
		va.KindConnection: connectionProblem, va.KindDNS: dnsProblem, va.KindTLS: tlsProblem,
		va.KindIncorrectResponse: incorrectResponse, va.KindUnauthorized: unauthorized,
		va.KindCAA: caaProblem, va.KindMalformed: malformed,
	}[ve.Kind]
	if ctor == nil {
		ctor = unauthorized
	}
	return ctor("%s", ve.Detail)
}
