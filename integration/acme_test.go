package integration

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/challenge/tlsalpn01"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/internal/serve"
)

// acmeStage is a ctstage with ACME, the built-in DNS and its management
// API, and the validator's ports.
type acmeStage struct {
	*serve.Stage
	httpPort, tlsPort int
	roots             *x509.CertPool
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startACMEStage(t testing.TB, mod func(*serve.Options)) *acmeStage {
	t.Helper()
	s := &acmeStage{httpPort: freePort(t), tlsPort: freePort(t)}
	opts := serve.Options{
		DataDir: t.TempDir(), Storage: "sqlite", Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0"},
		CA:   serve.CAOptions{NoFinalSubmission: true},
		ACME: serve.ACMEOptions{Addr: "127.0.0.1:0", DNSAddr: "127.0.0.1:0", DNSMgmtAddr: "127.0.0.1:0",
			VAHTTPPort: s.httpPort, VATLSPort: s.tlsPort},
	}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := serve.Start(ctx, opts)
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	s.Stage = st
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if s.Stage == nil {
			return
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	s.roots = x509.NewCertPool()
	for _, c := range st.Hierarchy.Roots() {
		s.roots.AddCert(c)
	}
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{st.DNSAddr}, Timeout: 2 * time.Second}))
	return s
}

func (s *acmeStage) httpClient() *http.Client {
	return &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots}}}
}

// legoUser is a registration.User.
type legoUser struct {
	key crypto.Signer
	reg *acme.ExtendedAccount
}

func (u *legoUser) GetEmail() string                       { return "" }
func (u *legoUser) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.Signer           { return u.key }

func newKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// legoClient registers a new account with lego.
func (s *acmeStage) legoClient(t testing.TB) (*lego.Client, *legoUser) {
	t.Helper()
	u := &legoUser{key: newKey(t)}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = s.ACMEURL + "/directory"
	cfg.HTTPClient = s.httpClient()
	c, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.Registration.Register(context.Background(), registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	u.reg = reg
	return c, u
}

// mgmtDNS is a lego DNS provider that sets TXT records through the
// built-in DNS's management API.
type mgmtDNS struct{ url string }

func (p mgmtDNS) post(ctx context.Context, path string, body any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json") // the API takes JSON only
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return &net.AddrError{Err: rsp.Status, Addr: path}
	}
	return nil
}

func (p mgmtDNS) Present(ctx context.Context, domain, token, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	return p.post(ctx, "/set-txt", map[string]string{"host": info.EffectiveFQDN, "value": info.Value})
}

func (p mgmtDNS) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	return p.post(ctx, "/clear-txt", map[string]string{"host": info.EffectiveFQDN})
}

func (p mgmtDNS) Timeout() (time.Duration, time.Duration) {
	return 10 * time.Second, 10 * time.Millisecond
}

// TestACMELego drives the ACME server with lego v5 as a library: every
// challenge type, a wildcard, SCTs, the alternate chain, revocation, key
// rollover and ARI.
func TestACMELego(t *testing.T) {
	s := startACMEStage(t, nil)
	ctx := context.Background()
	c, u := s.legoClient(t)
	port := strconv.Itoa(s.httpPort)

	t.Run("http-01", func(t *testing.T) {
		if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", port)); err != nil {
			t.Fatal(err)
		}
		defer c.Challenge.Remove("http-01")
		res := obtain(t, c, certificate.ObtainRequest{Domains: []string{"example.com", "www.example.com"}, Bundle: true})
		s.checkSCTs(t, res.Certificate)
	})
	t.Run("tls-alpn-01", func(t *testing.T) {
		if err := c.Challenge.SetTLSALPN01Provider(tlsalpn01.NewProviderServer("127.0.0.1", strconv.Itoa(s.tlsPort))); err != nil {
			t.Fatal(err)
		}
		defer c.Challenge.Remove("tls-alpn-01")
		res := obtain(t, c, certificate.ObtainRequest{Domains: []string{"alpn.example.net"}, Bundle: true})
		s.checkSCTs(t, res.Certificate)
	})
	var wildcard *certificate.Resource
	t.Run("dns-01 wildcard", func(t *testing.T) {
		if err := c.Challenge.SetDNS01Provider(mgmtDNS{s.DNSMgmtURL}, dns01.PropagationWait(0, true)); err != nil {
			t.Fatal(err)
		}
		defer c.Challenge.Remove("dns-01")
		wildcard = obtain(t, c, certificate.ObtainRequest{Domains: []string{"example.org", "*.example.org"}, Bundle: true, Profile: "tlsserver"})
		s.checkSCTs(t, wildcard.Certificate)
	})
	t.Run("alternate chain", func(t *testing.T) {
		if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", port)); err != nil {
			t.Fatal(err)
		}
		defer c.Challenge.Remove("http-01")
		rsaRoot := s.Hierarchy.RSARoot.Cert.Subject.CommonName
		res := obtain(t, c, certificate.ObtainRequest{Domains: []string{"alt.example.com"}, Bundle: true, PreferredChain: rsaRoot})
		chain := parsePEMChain(t, string(res.Certificate))
		if len(chain) != 2 || chain[1].Issuer.CommonName != rsaRoot {
			t.Fatalf("alternate chain's intermediate is issued by %q, want %q", chain[1].Issuer.CommonName, rsaRoot)
		}
		s.verifyChain(t, res.Certificate)
	})
	t.Run("ARI", func(t *testing.T) {
		if wildcard == nil {
			t.Fatal("no certificate: the wildcard subtest did not obtain one")
		}
		leaf := parsePEMChain(t, string(wildcard.Certificate))[0]
		ri, err := c.Certificate.GetRenewalInfo(ctx, toStdCert(t, leaf))
		if err != nil {
			t.Fatalf("GetRenewalInfo: %v", err)
		}
		w := ri.SuggestedWindow
		if !w.Start.Before(w.End) || w.Start.Before(leaf.NotBefore) || w.End.After(leaf.NotAfter) {
			t.Errorf("suggested window %v - %v outside the certificate's lifetime", w.Start, w.End)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		if wildcard == nil {
			t.Fatal("no certificate: the wildcard subtest did not obtain one")
		}
		if err := c.Certificate.Revoke(ctx, wildcard.Certificate); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		err := c.Certificate.Revoke(ctx, wildcard.Certificate)
		var pd *acme.ProblemDetails
		if !asProblem(err, &pd) || pd.Type != "urn:ietf:params:acme:error:alreadyRevoked" {
			t.Errorf("second Revoke: %v, want alreadyRevoked", err)
		}
	})
	t.Run("key rollover", func(t *testing.T) {
		nk := newKey(t)
		if err := c.Registration.KeyRollover(ctx, nk); err != nil {
			t.Fatalf("KeyRollover: %v", err)
		}
		u2 := &legoUser{key: nk}
		cfg := lego.NewConfig(u2)
		cfg.CADirURL, cfg.HTTPClient = s.ACMEURL+"/directory", s.httpClient()
		c2, err := lego.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		acct, err := c2.Registration.ResolveAccountByKey(ctx)
		if err != nil || acct.Location != u.reg.Location {
			t.Fatalf("ResolveAccountByKey with the new key: %v, %v; want %s", acct, err, u.reg.Location)
		}
	})
}

func obtain(t *testing.T, c *lego.Client, req certificate.ObtainRequest) *certificate.Resource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if req.KeyType == "" {
		req.KeyType = certcrypto.EC256
	}
	res, err := c.Certificate.Obtain(ctx, req)
	if err != nil {
		t.Fatalf("Obtain %v: %v", req.Domains, err)
	}
	return res
}

// checkSCTs verifies every embedded SCT with ctutil against the log list's
// keys, and the chain against the staging roots.
func (s *acmeStage) checkSCTs(t *testing.T, pemChain []byte) {
	t.Helper()
	chain := parsePEMChain(t, string(pemChain))
	if len(chain) < 2 {
		t.Fatalf("chain of %d certificates", len(chain))
	}
	byID := logsByID(s.Logs.LogList())
	if len(chain[0].SCTList.SCTList) < 2 {
		t.Fatalf("%d SCTs, want 2 or more", len(chain[0].SCTList.SCTList))
	}
	for _, raw := range chain[0].SCTList.SCTList {
		var sct ct.SignedCertificateTimestamp
		if _, err := cttls.Unmarshal(raw.Val, &sct); err != nil {
			t.Fatal(err)
		}
		l := byID[sct.LogID.KeyID].log
		if l == nil {
			t.Fatalf("SCT from unknown log %x", sct.LogID.KeyID)
		}
		pk, err := x509.ParsePKIXPublicKey(l.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctutil.VerifySCT(pk, chain[:2], &sct, true); err != nil {
			t.Errorf("VerifySCT for %s: %v", l.Description, err)
		}
	}
	s.verifyChain(t, pemChain)
}

func (s *acmeStage) verifyChain(t *testing.T, pemChain []byte) {
	t.Helper()
	chain := parsePEMChain(t, string(pemChain))
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(toStdCert(t, c))
	}
	if _, err := toStdCert(t, chain[0]).Verify(x509.VerifyOptions{Roots: s.roots, Intermediates: inter}); err != nil {
		t.Errorf("chain does not verify to the staging roots: %v", err)
	}
}

func toStdCert(t testing.TB, c *ctx509.Certificate) *x509.Certificate {
	t.Helper()
	sc, err := x509.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestACMERestart checks that accounts survive a restart.
func TestACMERestart(t *testing.T) {
	dir := t.TempDir()
	s := startACMEStage(t, func(o *serve.Options) { o.DataDir = dir })
	_, u := s.legoClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s.Stage = nil
	c := s.restart(t, ctx, dir, "sqlite", u.key)
	acct, err := c.Registration.ResolveAccountByKey(ctx)
	if err != nil {
		t.Fatalf("account after restart: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, serve.ACMEStoreFile)); err != nil || acct.Status != "valid" {
		t.Errorf("account %v, store %v", acct, err)
	}
}

// restart starts ctstage again on dir and storage, after s was shut down,
// and returns a lego client for an account key that knows nothing of its
// registration, so that the account must be found by key.
func (s *acmeStage) restart(t testing.TB, ctx context.Context, dir, storage string, key crypto.Signer) *lego.Client {
	t.Helper()
	st, err := serve.Start(ctx, serve.Options{DataDir: dir, Storage: storage, Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0"}, CA: serve.CAOptions{NoFinalSubmission: true}, ACME: serve.ACMEOptions{Addr: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Stage = st // the cleanup shuts this one down
	cfg := lego.NewConfig(&legoUser{key: key})
	cfg.CADirURL, cfg.HTTPClient = st.ACMEURL+"/directory", s.httpClient()
	c, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func asProblem(err error, pd **acme.ProblemDetails) bool {
	return err != nil && errors.As(err, pd)
}
