package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/ca/va"
)

// issueFlow obtains a certificate for name over the flow client and
// returns its leaf.
func issueFlow(t *testing.T, c *flowClient, name string) *x509.Certificate {
	t.Helper()
	_, o := c.newOrder(name)
	if ch := c.respond(c.challenge(o, va.HTTP01)); ch["status"] != statusValid {
		t.Fatalf("http-01: %v", ch)
	}
	fin := c.must("finalize", c.post(o["finalize"].(string), map[string]any{"csr": c.csr(name)}), http.StatusOK).object()
	chain := c.must("certificate", c.post(fin["certificate"].(string), nil), http.StatusOK).body
	b, _ := pem.Decode(chain)
	if b == nil {
		t.Fatalf("certificate download is not PEM: %q", chain)
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// ariRevoked reports whether ARI suggests renewing leaf at once, which is
// how it shows a revocation.
func ariRevoked(t *testing.T, c *flowClient, leaf *x509.Certificate) bool {
	t.Helper()
	id := base64.RawURLEncoding.EncodeToString(leaf.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(leaf.SerialNumber.Bytes())
	var ri struct{ SuggestedWindow struct{ End time.Time } }
	rsp := c.must("renewalInfo", c.get(pathRenewal+id), http.StatusOK)
	if err := json.Unmarshal(rsp.body, &ri); err != nil {
		t.Fatal(err)
	}
	return ri.SuggestedWindow.End.Before(time.Now())
}

// TestRevokeThroughCA checks that revokeCert records the revocation in the
// CA's store (the one record, which ARI reads), and that a second one
// answers alreadyRevoked.
func TestRevokeThroughCA(t *testing.T) {
	e := newFlowEnv(t, prometheus.NewRegistry(), ratelimit.Config{})
	c := newFlowClient(t, e)
	c.register()
	ctx := context.Background()
	revoke := func(leaf *x509.Certificate, reason int) flowRsp {
		return c.post(c.url("revokeCert"), map[string]any{"certificate": base64.RawURLEncoding.EncodeToString(leaf.Raw), "reason": reason})
	}

	leaf := issueFlow(t, c, "revoke.example.com")
	if ariRevoked(t, c, leaf) {
		t.Fatal("ARI shows a fresh certificate as revoked")
	}
	c.must("revoke", revoke(leaf, 1), http.StatusOK)
	rv, err := e.srv.opts.CA.Revocation(ctx, leaf.SerialNumber)
	if err != nil || rv == nil || rv.Reason != 1 {
		t.Fatalf("the CA's record after revokeCert: %+v, %v; want reason 1", rv, err)
	}
	if rsp := revoke(leaf, 4); rsp.problemType() != "alreadyRevoked" {
		t.Errorf("second revoke: %d %s, want alreadyRevoked", rsp.status, rsp.body)
	}
	if !ariRevoked(t, c, leaf) {
		t.Error("ARI does not show the revocation")
	}
}
