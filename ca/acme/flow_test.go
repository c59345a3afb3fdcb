package acme

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	acmestore "github.com/ctstage/ctstage/ca/acme/store"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/ca/ratelimit"
	castore "github.com/ctstage/ctstage/ca/store"
	"github.com/ctstage/ctstage/ca/va"
	"github.com/ctstage/ctstage/internal/testsupport/acmetest"
	"github.com/ctstage/ctstage/internal/testsupport/fakelog"
)

// flowEnv is a whole ACME server over real HTTPS: a CA on fake logs of two
// operators, SQLite stores in a temporary directory, a VA on a Zone, and
// an http-01 responder on loopback where the VA connects.
type flowEnv struct {
	srv    *Server
	ts     *httptest.Server
	zone   *va.Zone
	tokens sync.Map // http-01 token -> key authorization
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFlowEnv(t *testing.T, reg prometheus.Registerer, limits ratelimit.Config) *flowEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	h, err := ca.LoadOrCreateHierarchy(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	logs := []*fakelog.Log{fakelog.New("op-a", fakelog.OK), fakelog.New("op-b", fakelog.OK)}
	for _, l := range logs {
		t.Cleanup(l.Server.Close)
	}
	ll, err := ctpolicy.LogsFromList(fakelog.List(logs...), http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := ctpolicy.NewSubmitter(ctpolicy.Options{Logs: ll, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cast, err := castore.OpenSQLite(ctx, filepath.Join(dir, "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cast.Close() })
	c, err := ca.New(ca.Options{Hierarchy: h, Submitter: sub, Store: cast, BaseURL: "http://127.0.0.1:1/ca", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	chains, err := LoadOrCreateChains(filepath.Join(dir, "acme"), h)
	if err != nil {
		t.Fatal(err)
	}
	st, err := acmestore.OpenSQLite(ctx, filepath.Join(dir, "acme.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	e := &flowEnv{zone: va.NewZone(nil, nil)}
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ka, ok := e.tokens.Load(strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, ka.(string))
	}))
	t.Cleanup(responder.Close)
	_, port, _ := net.SplitHostPort(responder.Listener.Addr().String())
	httpPort, _ := strconv.Atoi(port)
	v := va.New(va.Options{Zone: e.zone, HTTPPort: httpPort, CAAIdentities: []string{"ctstage.invalid"}, Timeout: 5 * time.Second})

	e.srv, err = New(Options{CA: c, Hierarchy: h, Chains: chains, Store: st, Validator: v,
		Limits: limits, LimitStore: st, Registerer: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewTLSServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

// flowClient speaks ACME by hand (as integration's rawClient does), so
// that it can also send what real clients never do.
type flowClient struct {
	t    *testing.T
	e    *flowEnv
	hc   *http.Client
	dir  map[string]any
	key  *ecdsa.PrivateKey
	kid  string
	last string // last Replay-Nonce
}

type flowRsp struct {
	status int
	header http.Header
	body   []byte
}

func (r flowRsp) problemType() string {
	var p struct{ Type string }
	json.Unmarshal(r.body, &p)
	return strings.TrimPrefix(p.Type, errNS)
}

func (r flowRsp) object() map[string]any {
	var m map[string]any
	json.Unmarshal(r.body, &m)
	return m
}

func newFlowClient(t *testing.T, e *flowEnv) *flowClient {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &flowClient{t: t, e: e, hc: e.ts.Client(), key: k}
	rsp := c.get("/directory")
	if rsp.status != http.StatusOK {
		t.Fatalf("GET /directory: %d %s", rsp.status, rsp.body)
	}
	c.dir = rsp.object()
	return c
}

func (c *flowClient) url(name string) string { return c.dir[name].(string) }

func (c *flowClient) get(path string) flowRsp {
	c.t.Helper()
	rsp, err := c.hc.Get(c.e.ts.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.read(rsp)
}

func (c *flowClient) read(rsp *http.Response) flowRsp {
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	c.last = rsp.Header.Get("Replay-Nonce")
	return flowRsp{rsp.StatusCode, rsp.Header, b}
}

func (c *flowClient) nonce() string {
	c.t.Helper()
	if n := c.last; n != "" {
		c.last = ""
		return n
	}
	rsp, err := c.hc.Head(c.url("newNonce"))
	if err != nil {
		c.t.Fatal(err)
	}
	rsp.Body.Close()
	return rsp.Header.Get("Replay-Nonce")
}

// postNonce posts payload (nil: POST-as-GET) to url, signed with the
// client's kid (or jwk before registering) and the given nonce.
func (c *flowClient) postNonce(url, nonce string, payload any) flowRsp {
	c.t.Helper()
	var b []byte
	if payload != nil {
		b, _ = json.Marshal(payload)
	}
	body, err := acmetest.SignJWS(c.key, url, nonce, c.kid, b, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	rsp, err := c.hc.Post(url, "application/jose+json", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	return c.read(rsp)
}

func (c *flowClient) post(url string, payload any) flowRsp {
	c.t.Helper()
	return c.postNonce(url, c.nonce(), payload)
}

// must fails the test unless rsp has status want.
func (c *flowClient) must(what string, rsp flowRsp, want int) flowRsp {
	c.t.Helper()
	if rsp.status != want {
		c.t.Fatalf("%s: status %d, want %d: %s", what, rsp.status, want, rsp.body)
	}
	return rsp
}

func (c *flowClient) register() {
	c.t.Helper()
	rsp := c.must("newAccount", c.post(c.url("newAccount"), map[string]any{"termsOfServiceAgreed": true}), http.StatusCreated)
	c.kid = rsp.header.Get("Location")
}

// newOrder creates an order for names and returns its URL and object.
func (c *flowClient) newOrder(names ...string) (string, map[string]any) {
	c.t.Helper()
	var ids []Identifier
	for _, n := range names {
		ids = append(ids, Identifier{Type: "dns", Value: n})
	}
	rsp := c.must("newOrder", c.post(c.url("newOrder"), map[string]any{"identifiers": ids}), http.StatusCreated)
	return rsp.header.Get("Location"), rsp.object()
}

// challenge finds the challenge of type typ in the order's first
// authorization.
func (c *flowClient) challenge(order map[string]any, typ string) map[string]any {
	c.t.Helper()
	az := c.must("authz", c.post(order["authorizations"].([]any)[0].(string), nil), http.StatusOK).object()
	for _, ch := range az["challenges"].([]any) {
		if m := ch.(map[string]any); m["type"] == typ {
			return m
		}
	}
	c.t.Fatalf("no %s challenge in %v", typ, az)
	return nil
}

// respond answers a challenge, presenting its http-01 key authorization
// first, and returns the challenge object.
func (c *flowClient) respond(ch map[string]any) map[string]any {
	c.t.Helper()
	tok := ch["token"].(string)
	jwk := jose.JSONWebKey{Key: c.key.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		c.t.Fatal(err)
	}
	c.e.tokens.Store(tok, tok+"."+base64.RawURLEncoding.EncodeToString(tp))
	return c.must("challenge", c.post(ch["url"].(string), struct{}{}), http.StatusOK).object()
}

// csr is a base64url CSR for names with a new P-256 key.
func (c *flowClient) csr(names ...string) string {
	c.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		c.t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, k)
	if err != nil {
		c.t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(der)
}
