package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	acmestore "github.com/ctstage/ctstage/ca/acme/store"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/internal/logging"
)

// Validator validates one challenge (package va). It returns nil, or an
// error that the server reports as the challenge's problem (*va.Error
// keeps its ACME error type).
type Validator interface {
	Validate(ctx context.Context, typ, identType, value, token, keyAuth string) error
	CheckCAA(name string, wildcard bool) error
}

// Options configure a Server.
type Options struct {
	// CA issues the certificates; Hierarchy is its staging hierarchy.
	CA        *ca.CA
	Hierarchy *ca.Hierarchy
	// Chains holds the alternate chains (see LoadOrCreateChains).
	Chains *Chains
	// Store keeps the ACME state.
	Store Store
	// Validator validates challenges.
	Validator Validator
	// Limits are enforced with events kept in LimitStore; nil LimitStore
	// turns rate limiting off.
	Limits     ratelimit.Config
	LimitStore ratelimit.Store
	// AlwaysValid makes every challenge succeed without contacting the
	// client (CAA is still checked).
	AlwaysValid bool
	// TermsOfService, Website and CAAIdentities go in the directory's meta.
	TermsOfService, Website string
	CAAIdentities           []string
	// EABKeys, when not empty, are the external account binding keys
	// (key ID -> HMAC key); ExternalAccountRequired makes EAB mandatory.
	EABKeys                 map[string][]byte
	ExternalAccountRequired bool
	// OrderLifetime is how long pending orders and authorizations live;
	// default 7 days.
	OrderLifetime time.Duration
	// IssueTimeout bounds one issuance, CT included. An order still
	// processing 2 x IssueTimeout after finalize started (a crash cut its
	// issuance short) reads invalid. Default 60s.
	IssueTimeout time.Duration
	// NonceStore, when set, shares nonces with the other ACME processes
	// on the same store: a nonce one issued is good at any (once). Nil
	// keeps them in this process's memory.
	NonceStore NonceStore
	// Registerer receives the ctstage_acme_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Unavailable, when set, says whether an error is an outage of the
	// storage (storage.Backend.Unavailable): the request is then answered
	// 503 with Retry-After, which clients may retry, instead of
	// serverInternal's 500.
	Unavailable func(ctx context.Context, err error) bool
	// Logger receives one line per request. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Server is the ACME server. Safe for concurrent use.
type Server struct {
	opts    Options
	nonces  nonceSource
	limiter *ratelimit.Limiter
	mux     *http.ServeMux
	metrics *metrics
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.CA == nil || opts.Hierarchy == nil || opts.Store == nil || opts.Validator == nil || opts.Chains == nil {
		return nil, errors.New("acme: CA, Hierarchy, Chains, Store and Validator are required")
	}
	if opts.OrderLifetime == 0 {
		opts.OrderLifetime = 7 * 24 * time.Hour
	}
	if opts.IssueTimeout == 0 {
		opts.IssueTimeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("acme: couldn't register metrics: %w", err)
	}
	if _, ok := opts.Store.(*acmestore.SQLite); ok {
		// One process per SQLite file (serve locks --data), as the cache
		// assumes; a MySQL store may one day be shared, so it is read
		// every time.
		opts.Store = acmestore.NewAccountCache(opts.Store)
	}
	var ns nonceSource = memNonces{newNonces(1 << 16)}
	if opts.NonceStore != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		key, err := opts.NonceStore.NonceKey(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("acme: couldn't read the shared nonce key: %w", err)
		}
		ns = &sharedNonces{key: key, store: opts.NonceStore, now: opts.Now}
	}
	s := &Server{opts: opts, nonces: ns, metrics: m}
	if opts.LimitStore != nil {
		s.limiter = ratelimit.New(opts.Limits, opts.LimitStore, opts.Now)
	}
	s.routes()
	return s, nil
}

// Paths of the endpoints, under the server's root.
const (
	pathDirectory  = "/directory"
	pathNonce      = "/acme/new-nonce"
	pathNewAccount = "/acme/new-acct"
	pathAccount    = "/acme/acct/"
	pathKeyChange  = "/acme/key-change"
	pathNewOrder   = "/acme/new-order"
	pathOrder      = "/acme/order/"
	pathAuthz      = "/acme/authz/"
	pathChallenge  = "/acme/chall/"
	pathCert       = "/acme/cert/"
	pathRevoke     = "/acme/revoke-cert"
	pathRenewal    = "/acme/renewal-info/"
)

// routes names each route by its directory name (RFC 8555 section 7.1.1)
// or resource; the name is the endpoint label of the metrics.
func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET "+pathDirectory, s.wrap("directory", s.directory))
	m.Handle("HEAD "+pathNonce, s.wrap("newNonce", s.newNonce))
	m.Handle("GET "+pathNonce, s.wrap("newNonce", s.newNonce))
	m.Handle("POST "+pathNewAccount, s.wrap("newAccount", s.newAccount))
	m.Handle("POST "+pathAccount+"{id}", s.wrap("account", s.account))
	m.Handle("POST "+pathAccount+"{id}/orders", s.wrap("orders", s.orderList))
	m.Handle("POST "+pathKeyChange, s.wrap("keyChange", s.keyChange))
	m.Handle("POST "+pathNewOrder, s.wrap("newOrder", s.newOrder))
	m.Handle("POST "+pathOrder+"{id}", s.wrap("order", s.order))
	m.Handle("POST "+pathOrder+"{id}/finalize", s.wrap("finalize", s.finalize))
	m.Handle("POST "+pathAuthz+"{id}", s.wrap("authz", s.authz))
	m.Handle("POST "+pathChallenge+"{authz}/{i}", s.wrap("challenge", s.challenge))
	m.Handle("POST "+pathCert+"{serial}", s.wrap("certificate", s.certificate))
	m.Handle("POST "+pathCert+"{serial}/{alt}", s.wrap("certificate", s.certificate))
	m.Handle("POST "+pathRevoke, s.wrap("revokeCert", s.revoke))
	m.Handle("GET "+pathRenewal+"{id}", s.wrap("renewalInfo", s.renewalInfo))
	for _, p := range acmeV1Paths {
		m.Handle(p, s.wrap("acmev1", s.acmeV1))
	}
	m.Handle("/", s.wrap("unknown", func(w http.ResponseWriter, r *http.Request) error {
		return notFound("no ACME resource %s %s", r.Method, r.URL.Path)
	}))
	s.mux = m
}

// acmeV1Paths are the resources of ACME v1 (Boulder's, before RFC 8555),
// which old clients still ask for.
var acmeV1Paths = []string{"/acme/new-reg", "/acme/new-authz", "/acme/new-cert", "/acme/reg/", "/acme/challenge/", "/acme/directory"}

// acmeV1 answers a request for an ACME v1 resource with what Let's
// Encrypt answered once v1 was switched off (2021): 410 Gone, and the
// URL of the v2 directory to use instead.
func (s *Server) acmeV1(w http.ResponseWriter, r *http.Request) error {
	p := problem("malformed", http.StatusGone,
		"ACME v1 has reached its end of life and this server does not speak it (%s is a v1 resource); "+
			"use an ACME v2 (RFC 8555) client with the directory %s", r.URL.Path, s.url(r, pathDirectory))
	return p
}

// Handler serves the ACME API: the directory at /directory.
func (s *Server) Handler() http.Handler { return s.mux }

// wrap turns a handler's error into a problem document (RFC 8555 section
// 6.7), adds a fresh Replay-Nonce and the directory's Link to every
// answer, logs one line per request and counts it under endpoint. Errors
// that are not *Problem are logged and answered as serverInternal without
// their detail.
func (s *Server) wrap(endpoint string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := logging.NewRecorder(rw)
		defer func() { s.metrics.request(endpoint, w.Status(), time.Since(start)) }()
		w.Header().Set("Replay-Nonce", s.nonces.issue())
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Add("Link", link(s.url(r, pathDirectory), "index"))
		err := func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("panic: %v", v)
				}
			}()
			return h(w, r)
		}()
		if err == nil {
			return
		}
		// One line per request: the problem joins the request's log line
		// (logging.Requests), or has its own when nothing logs requests.
		var p *Problem
		var attrs []slog.Attr
		if !errors.As(err, &p) || p.Status >= 500 {
			attrs = append(attrs, slog.String("err", err.Error()))
			if s.opts.Unavailable != nil && s.opts.Unavailable(r.Context(), err) {
				p = unavailable()
			} else {
				p = serverInternal("the server could not process the request")
			}
		}
		attrs = append(attrs, slog.String("problem", p.Type), slog.String("detail", p.Detail))
		if !logging.Annotate(w, attrs...) {
			s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "acme problem",
				append([]slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path)}, attrs...)...)
		}
		s.metrics.problem(p)
		writeProblem(w, p)
	})
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(p.RetryAfter))
	}
	if p.Location != "" {
		w.Header().Set("Location", p.Location)
	}
	status := p.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func link(url, rel string) string { return "<" + url + `>;rel="` + rel + `"` }

// url is the absolute URL of path on the host the client used (as Pebble
// does), so that clients reaching the server as localhost or 127.0.0.1
// both see consistent URLs.
func (s *Server) url(r *http.Request, path string) string {
	return "https://" + r.Host + path
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) directory(w http.ResponseWriter, r *http.Request) error {
	profiles := map[string]string{}
	for name, p := range ca.Profiles {
		profiles[name] = fmt.Sprintf("%s: %s default lifetime", name, p.Lifetime)
	}
	meta := map[string]any{
		"externalAccountRequired": s.opts.ExternalAccountRequired,
		"profiles":                profiles,
	}
	if s.opts.TermsOfService != "" {
		meta["termsOfService"] = s.opts.TermsOfService
	}
	if s.opts.Website != "" {
		meta["website"] = s.opts.Website
	}
	if len(s.opts.CAAIdentities) > 0 {
		meta["caaIdentities"] = s.opts.CAAIdentities
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"newNonce":    s.url(r, pathNonce),
		"newAccount":  s.url(r, pathNewAccount),
		"newOrder":    s.url(r, pathNewOrder),
		"revokeCert":  s.url(r, pathRevoke),
		"keyChange":   s.url(r, pathKeyChange),
		"renewalInfo": s.url(r, strings.TrimSuffix(pathRenewal, "/")),
		"meta":        meta,
	})
}

func (s *Server) newNonce(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// readBody reads a POST body: application/jose+json, at most maxBody.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/jose+json" {
		p := malformed("Content-Type must be application/jose+json")
		p.Status = http.StatusUnsupportedMediaType
		return nil, p
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, malformed("couldn't read the request body: %v", err)
	}
	return b, nil
}
