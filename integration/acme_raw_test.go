package integration

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/acmetest"
)

// rawClient speaks ACME by hand, to send what real clients never do.
type rawClient struct {
	t    *testing.T
	s    *acmeStage
	hc   *http.Client
	dir  map[string]any
	key  *ecdsa.PrivateKey
	kid  string
	last string // last Replay-Nonce
}

type rawRsp struct {
	status int
	header http.Header
	body   []byte
}

func (r rawRsp) problemType() string {
	var p struct{ Type string }
	json.Unmarshal(r.body, &p)
	return strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:")
}

func newRawClient(t *testing.T, s *acmeStage) *rawClient {
	t.Helper()
	c := &rawClient{t: t, s: s, hc: s.httpClient(), key: newKey(t).(*ecdsa.PrivateKey)}
	rsp, err := c.hc.Get(s.ACMEURL + "/directory")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	json.NewDecoder(rsp.Body).Decode(&c.dir)
	return c
}

func (c *rawClient) url(name string) string { return c.dir[name].(string) }

func (c *rawClient) nonce() string {
	if c.last != "" {
		n := c.last
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

// sign is a JWS of payload for url with the client's key, kid or jwk.
func (c *rawClient) sign(url string, payload []byte, hdr map[string]any) []byte {
	b, err := acmetest.SignJWS(c.key, url, c.nonce(), c.kid, payload, hdr)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func (c *rawClient) postRaw(url string, body []byte) rawRsp {
	rsp, err := c.hc.Post(url, "application/jose+json", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	c.last = rsp.Header.Get("Replay-Nonce")
	return rawRsp{rsp.StatusCode, rsp.Header, b}
}

func (c *rawClient) post(url string, payload any) rawRsp {
	var b []byte
	if payload != nil {
		b, _ = json.Marshal(payload)
	}
	return c.postRaw(url, c.sign(url, b, nil))
}

func (c *rawClient) register() {
	r := c.post(c.url("newAccount"), map[string]any{"termsOfServiceAgreed": true})
	if r.status != http.StatusCreated {
		c.t.Fatalf("newAccount: %d %s", r.status, r.body)
	}
	c.kid = r.header.Get("Location")
}

func (c *rawClient) newOrder(names ...string) (string, map[string]any) {
	var ids []map[string]string
	for _, n := range names {
		ids = append(ids, map[string]string{"type": "dns", "value": n})
	}
	r := c.post(c.url("newOrder"), map[string]any{"identifiers": ids})
	if r.status != http.StatusCreated {
		c.t.Fatalf("newOrder: %d %s", r.status, r.body)
	}
	var o map[string]any
	json.Unmarshal(r.body, &o)
	return r.header.Get("Location"), o
}

// readyOrder creates an order and validates it (the stage is always-valid).
func (c *rawClient) readyOrder(names ...string) (string, map[string]any) {
	loc, o := c.newOrder(names...)
	for _, az := range o["authorizations"].([]any) {
		var a struct{ Challenges []struct{ URL string } }
		ar := c.post(az.(string), nil)
		json.Unmarshal(ar.body, &a)
		if len(a.Challenges) == 0 {
			c.t.Fatalf("authz: %d %s", ar.status, ar.body)
		}
		if r := c.post(a.Challenges[0].URL, map[string]any{}); r.status != http.StatusOK {
			c.t.Fatalf("challenge: %d %s", r.status, r.body)
		}
	}
	return loc, o
}

func csrFor(t *testing.T, key crypto.Signer, names ...string) string {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(der)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// csrWith is the base64url DER of the CSR tmpl signed by key.
func csrWith(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) string {
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(der)
}

// mustOtherName is the inside of an otherName GeneralName: a Microsoft
// UPN (1.3.6.1.4.1.311.20.2.3) "a@example.com".
func mustOtherName(t *testing.T) []byte {
	oid, err := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	utf8, err := asn1.MarshalWithParams("a@example.com", "utf8")
	if err != nil {
		t.Fatal(err)
	}
	val, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: utf8})
	if err != nil {
		t.Fatal(err)
	}
	return append(oid, val...)
}

// TestACMEBadInput sends what the server must refuse, each with its
// specific problem document and never a 500.
func TestACMEBadInput(t *testing.T) {
	s := startACMEStage(t, func(o *serve.Options) { o.ACME.AlwaysValid = true })
	a, b := newRawClient(t, s), newRawClient(t, s)
	a.register()
	b.register()
	orderA, o := a.readyOrder("bad.example.com")
	acctURL := a.kid

	// A valid JWS, then altered.
	valid := func() map[string]string {
		var m map[string]string
		json.Unmarshal(a.sign(acctURL, nil, nil), &m)
		return m
	}
	reencode := func(m map[string]string) []byte { bs, _ := json.Marshal(m); return bs }
	withHeader := func(h map[string]any) []byte {
		m := valid()
		ph, _ := json.Marshal(h)
		m["protected"] = b64(ph)
		return reencode(m)
	}
	ecKey := newKey(t)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	finalizeURL := o["finalize"].(string)

	cases := []struct {
		name   string
		do     func() rawRsp
		status int
		typ    string
	}{
		{"unsigned", func() rawRsp { m := valid(); m["signature"] = ""; return a.postRaw(acctURL, reencode(m)) }, 400, "malformed"},
		{"bad signature", func() rawRsp {
			m := valid()
			sig, _ := base64.RawURLEncoding.DecodeString(m["signature"])
			sig[3] ^= 1
			m["signature"] = b64(sig)
			return a.postRaw(acctURL, reencode(m))
		}, 400, "malformed"},
		{"alg none", func() rawRsp {
			return a.postRaw(acctURL, withHeader(map[string]any{"alg": "none", "nonce": a.nonce(), "url": acctURL, "kid": acctURL}))
		}, 400, "badSignatureAlgorithm"},
		{"HS256", func() rawRsp {
			return a.postRaw(acctURL, withHeader(map[string]any{"alg": "HS256", "nonce": a.nonce(), "url": acctURL, "kid": acctURL}))
		}, 400, "badSignatureAlgorithm"},
		{"kid and jwk", func() rawRsp {
			return a.postRaw(acctURL, a.sign(acctURL, nil, map[string]any{"jwk": map[string]string{"kty": "EC"}}))
		}, 400, "malformed"},
		{"wrong url", func() rawRsp { return a.postRaw(acctURL, a.sign(s.ACMEURL+"/acme/elsewhere", nil, nil)) }, 403, "unauthorized"},
		{"reused nonce", func() rawRsp {
			body := a.sign(acctURL, nil, nil)
			a.postRaw(acctURL, body)
			return a.postRaw(acctURL, body)
		}, 400, "badNonce"},
		{"not jose+json", func() rawRsp {
			rsp, _ := a.hc.Post(acctURL, "application/json", bytes.NewReader(a.sign(acctURL, nil, nil)))
			rsp.Body.Close()
			return rawRsp{status: rsp.StatusCode, body: []byte(`{"type":"urn:ietf:params:acme:error:malformed"}`)}
		}, 415, "malformed"},
		{"kid of another account", func() rawRsp {
			return a.postRaw(b.kid, a.sign(b.kid, nil, map[string]any{"kid": b.kid}))
		}, 400, "malformed"},
		{"another account's order", func() rawRsp { return b.post(orderA, nil) }, 403, "unauthorized"},
		{"another account's authorization", func() rawRsp { return b.post(o["authorizations"].([]any)[0].(string), nil) }, 403, "unauthorized"},
		{"another account's account", func() rawRsp { return b.post(acctURL, nil) }, 403, "unauthorized"},
		{"notBefore", func() rawRsp {
			return a.post(a.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "x.example.com"}}, "notBefore": "2030-01-01T00:00:00Z"})
		}, 400, "malformed"},
		{"two bad identifiers", func() rawRsp {
			return a.post(a.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "-bad-.example"}, {"type": "email", "value": "x"}}})
		}, 400, "compound"},
		{"reserved TLD", func() rawRsp {
			return a.post(a.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "a.watched.test"}}})
		}, 400, "rejectedIdentifier"},
		{"unknown profile", func() rawRsp {
			return a.post(a.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "x.example.com"}}, "profile": "nope"})
		}, 400, "invalidProfile"},
		{"CSR with other names", func() rawRsp {
			return a.post(finalizeURL, map[string]string{"csr": csrFor(t, ecKey, "bad.example.com", "other.example.com")})
		}, 400, "badCSR"},
		{"weak CSR key", func() rawRsp {
			return a.post(finalizeURL, map[string]string{"csr": csrFor(t, weak, "bad.example.com")})
		}, 400, "badCSR"},
		{"CSR with the account key", func() rawRsp {
			return a.post(finalizeURL, map[string]string{"csr": csrFor(t, a.key, "bad.example.com")})
		}, 400, "badCSR"},
		{"garbage CSR", func() rawRsp { return a.post(finalizeURL, map[string]string{"csr": "AAAA"}) }, 400, "badCSR"},
		{"CSR with an extra URI name", func() rawRsp {
			u, _ := url.Parse("spiffe://example.com/x")
			return a.post(finalizeURL, map[string]string{"csr": csrWith(t, ecKey, &x509.CertificateRequest{DNSNames: []string{"bad.example.com"}, URIs: []*url.URL{u}})})
		}, 400, "badCSR"},
		{"CSR with an extra email name", func() rawRsp {
			return a.post(finalizeURL, map[string]string{"csr": csrWith(t, ecKey, &x509.CertificateRequest{DNSNames: []string{"bad.example.com"}, EmailAddresses: []string{"a@example.com"}})})
		}, 400, "badCSR"},
		{"CSR with an otherName", func() rawRsp {
			// GeneralNames: dNSName bad.example.com, otherName (UPN).
			san, _ := asn1.Marshal([]asn1.RawValue{
				{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("bad.example.com")},
				{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustOtherName(t)},
			})
			return a.post(finalizeURL, map[string]string{"csr": csrWith(t, ecKey, &x509.CertificateRequest{
				ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}})})
		}, 400, "badCSR"},
		{"unsupported contact", func() rawRsp { return a.post(acctURL, map[string]any{"contact": []string{"tel:+1555"}}) }, 400, "unsupportedContact"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			if r.status != tc.status || r.problemType() != tc.typ {
				t.Errorf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.typ)
			}
			if tc.typ == "badNonce" && r.header.Get("Replay-Nonce") == "" {
				t.Error("badNonce without a fresh Replay-Nonce")
			}
			if tc.typ == "badSignatureAlgorithm" {
				// RFC 8555 section 6.2: the problem lists what is accepted.
				var p struct{ Algorithms []string }
				if json.Unmarshal(r.body, &p) != nil || !slices.Contains(p.Algorithms, "ES256") || !slices.Contains(p.Algorithms, "RS256") {
					t.Errorf("badSignatureAlgorithm without an algorithms array naming ES256 and RS256: %s", r.body)
				}
			}
		})
	}

	// ACME v1 resources name the v2 directory, as Let's Encrypt did after
	// v1's end of life.
	for _, p := range []string{"/acme/new-reg", "/acme/new-authz", "/acme/new-cert", "/acme/reg/1", "/acme/directory"} {
		t.Run("ACME v1 "+p, func(t *testing.T) {
			rsp, err := a.hc.Post(s.ACMEURL+p, "application/jose+json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(rsp.Body)
			rsp.Body.Close()
			r := rawRsp{rsp.StatusCode, rsp.Header, body}
			if r.status != http.StatusGone || r.problemType() != "malformed" ||
				!strings.Contains(string(body), "end of life") || !strings.Contains(string(body), s.ACMEURL+"/directory") {
				t.Errorf("got %d %s, want 410 naming ACME v1's end of life and the v2 directory", r.status, body)
			}
		})
	}

	// A body over the server's 64 KiB limit is malformed (not a 500, not
	// a partial read parsed as JWS).
	t.Run("oversized body", func(t *testing.T) {
		if r := a.postRaw(acctURL, bytes.Repeat([]byte("a"), 128<<10)); r.status != http.StatusBadRequest || r.problemType() != "malformed" {
			t.Errorf("got %d %s, want 400 malformed", r.status, r.body)
		}
	})

	// Issue, then another account's download and revocation are refused.
	r := a.post(finalizeURL, map[string]string{"csr": csrFor(t, ecKey, "bad.example.com")})
	if r.status != http.StatusOK {
		t.Fatalf("finalize: %d %s", r.status, r.body)
	}
	var fin struct{ Status, Certificate string }
	json.Unmarshal(r.body, &fin)
	if r := b.post(fin.Certificate, nil); r.status != 403 || r.problemType() != "unauthorized" {
		t.Errorf("another account's certificate: %d %s", r.status, r.body)
	}
	cert := a.post(fin.Certificate, nil)
	if cert.header.Get("Content-Type") != "application/pem-certificate-chain" || !strings.Contains(strings.Join(cert.header.Values("Link"), " "), `rel="alternate"`) {
		t.Errorf("download: %v", cert.header)
	}
	leaf := parsePEMChain(t, string(cert.body))[0]
	if r := b.post(b.url("revokeCert"), map[string]any{"certificate": b64(leaf.Raw)}); r.status != 403 || r.problemType() != "unauthorized" {
		t.Errorf("revoke by another account: %d %s", r.status, r.body)
	}
	if r := a.post(a.url("revokeCert"), map[string]any{"certificate": b64(leaf.Raw), "reason": 7}); r.problemType() != "badRevocationReason" {
		t.Errorf("revoke with reason 7: %d %s", r.status, r.body)
	}
}

// TestACMERateLimits checks the 51st account from one IP and the 1,501st
// order of one account (the staging numbers; only the windows are short).
func TestACMERateLimits(t *testing.T) {
	s := startACMEStage(t, func(o *serve.Options) {
		l := ratelimit.Defaults()
		l.AccountsPerIP.Window, l.OrdersPerAccount.Window = time.Hour, time.Hour
		o.ACME.RateLimits = &l
	})
	var last *rawClient
	for range 50 {
		last = newRawClient(t, s)
		last.register()
	}
	c := newRawClient(t, s)
	r := c.post(c.url("newAccount"), map[string]any{"termsOfServiceAgreed": true})
	if r.status != http.StatusTooManyRequests || r.problemType() != "rateLimited" || r.header.Get("Retry-After") == "" ||
		!strings.Contains(string(r.body), string(ratelimit.AccountsPerIP)) {
		t.Errorf("51st account: %d %v %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	for i := range 1500 {
		r := last.post(last.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "o.example.com"}}})
		if r.status != http.StatusCreated {
			t.Fatalf("order %d: %d %s", i+1, r.status, r.body)
		}
	}
	r = last.post(last.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "o.example.com"}}})
	if r.status != http.StatusTooManyRequests || r.problemType() != "rateLimited" || r.header.Get("Retry-After") == "" ||
		!strings.Contains(string(r.body), string(ratelimit.OrdersPerAccount)) {
		t.Errorf("1,501st order: %d %v %s", r.status, r.header.Get("Retry-After"), r.body)
	}
}

// TestACMERevokeByAuthorizedAccount: an account that holds valid
// authorizations for every name of a certificate another account ordered
// may revoke it (RFC 8555 section 7.6), and the CRL then lists it; an
// account that holds them for only some of the names may not.
func TestACMERevokeByAuthorizedAccount(t *testing.T) {
	s := startACMEStage(t, func(o *serve.Options) { o.ACME.AlwaysValid = true })
	owner, partial, third := newRawClient(t, s), newRawClient(t, s), newRawClient(t, s)
	for _, c := range []*rawClient{owner, partial, third} {
		c.register()
	}
	names := []string{"revoke-third.example.com", "www.revoke-third.example.com"}
	_, o := owner.readyOrder(names...)
	r := owner.post(o["finalize"].(string), map[string]string{"csr": csrFor(t, newKey(t), names...)})
	if r.status != http.StatusOK {
		t.Fatalf("finalize: %d %s", r.status, r.body)
	}
	var fin struct{ Certificate string }
	json.Unmarshal(r.body, &fin)
	chain := parsePEMChain(t, string(owner.post(fin.Certificate, nil).body))
	leaf := chain[0]

	partial.readyOrder(names[0]) // valid authorization for one name only
	if r := partial.post(partial.url("revokeCert"), map[string]any{"certificate": b64(leaf.Raw)}); r.status != 403 || r.problemType() != "unauthorized" {
		t.Errorf("revoke by an account authorized for one of two names: %d %s, want 403 unauthorized", r.status, r.body)
	}
	third.readyOrder(names...) // valid authorizations for both, no certificate
	if r := third.post(third.url("revokeCert"), map[string]any{"certificate": b64(leaf.Raw), "reason": 4}); r.status != http.StatusOK {
		t.Fatalf("revoke by an account authorized for every name: %d %s, want 200", r.status, r.body)
	}
	stdLeaf, err := x509.ParseCertificate(leaf.Raw)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := x509.ParseCertificate(chain[1].Raw)
	if err != nil {
		t.Fatal(err)
	}
	fetchCRLEntry(t, stdLeaf, issuer, 4)
}
