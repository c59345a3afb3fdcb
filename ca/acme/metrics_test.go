package acme

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/ca/va"
)

// TestMetrics drives one ACME flow with successes and client mistakes
// over HTTPS and checks what each counter saw.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newFlowEnv(t, reg, ratelimit.Config{OrdersPerAccount: ratelimit.Limit{Count: 3, Window: time.Hour}})
	c := newFlowClient(t, e)
	c.last = "" // take the first nonce from newNonce
	c.register()

	// A reused or invented nonce: badNonce.
	if rsp := c.postNonce(c.url("newOrder"), "bogus", map[string]any{}); rsp.problemType() != "badNonce" {
		t.Fatalf("bogus nonce: %d %s, want badNonce", rsp.status, rsp.body)
	}

	// Order 1: http-01, issued, revoked (twice: alreadyRevoked).
	url1, o1 := c.newOrder("example.com")
	if ch := c.respond(c.challenge(o1, va.HTTP01)); ch["status"] != statusValid {
		t.Fatalf("http-01: %v", ch)
	}
	fin := c.must("finalize", c.post(o1["finalize"].(string), map[string]any{"csr": c.csr("example.com")}), http.StatusOK).object()
	if fin["status"] != statusValid {
		t.Fatalf("finalize: %v", fin)
	}
	// Finalizing again: the order is valid, not ready.
	if rsp := c.post(o1["finalize"].(string), map[string]any{"csr": c.csr("example.com")}); rsp.problemType() != "orderNotReady" {
		t.Fatalf("second finalize: %d %s, want orderNotReady", rsp.status, rsp.body)
	}
	chain := c.must("certificate", c.post(fin["certificate"].(string), nil), http.StatusOK).body
	leaf, _ := pem.Decode(chain)
	if leaf == nil {
		t.Fatalf("certificate download is not PEM: %q", chain)
	}
	revoke := map[string]any{"certificate": base64.RawURLEncoding.EncodeToString(leaf.Bytes), "reason": 4}
	c.must("revoke", c.post(c.url("revokeCert"), revoke), http.StatusOK)
	if rsp := c.post(c.url("revokeCert"), revoke); rsp.problemType() != "alreadyRevoked" {
		t.Fatalf("second revoke: %d %s, want alreadyRevoked", rsp.status, rsp.body)
	}
	c.must("order", c.post(url1, nil), http.StatusOK)

	// Order 2: dns-01 without a TXT record; order 3: CAA for another CA.
	_, o2 := c.newOrder("fail.example.com")
	if ch := c.respond(c.challenge(o2, va.DNS01)); ch["status"] != statusInvalid {
		t.Fatalf("dns-01 without TXT: %v", ch)
	}
	e.zone.SetCAA("caa.example.com", []va.CAA{{Tag: "issue", Value: "other.example"}})
	_, o3 := c.newOrder("www.caa.example.com")
	if ch := c.respond(c.challenge(o3, va.HTTP01)); ch["status"] != statusInvalid {
		t.Fatalf("http-01 under a CAA for another CA: %v", ch)
	}

	// Order 4 goes over newOrdersPerAccount (3 per hour).
	rsp := c.post(c.url("newOrder"), map[string]any{"identifiers": []Identifier{{Type: "dns", Value: "example.net"}}})
	if rsp.status != http.StatusTooManyRequests || rsp.problemType() != "rateLimited" {
		t.Fatalf("fourth order: %d %s, want 429 rateLimited", rsp.status, rsp.body)
	}
	// A path that is no ACME resource: counted as "unknown", never by path.
	c.must("GET /nope", c.get("/nope/"+strings.Repeat("x", 20)), http.StatusNotFound)

	m := e.srv.metrics
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"requests directory 200", m.requests.WithLabelValues("directory", "200"), 1},
		{"requests newNonce 200", m.requests.WithLabelValues("newNonce", "200"), 1},
		{"requests newAccount 201", m.requests.WithLabelValues("newAccount", "201"), 1},
		{"requests newOrder 201", m.requests.WithLabelValues("newOrder", "201"), 3},
		{"requests newOrder 400", m.requests.WithLabelValues("newOrder", "400"), 1},
		{"requests newOrder 429", m.requests.WithLabelValues("newOrder", "429"), 1},
		{"requests finalize 200", m.requests.WithLabelValues("finalize", "200"), 1},
		{"requests finalize 403", m.requests.WithLabelValues("finalize", "403"), 1},
		{"requests challenge 200", m.requests.WithLabelValues("challenge", "200"), 3},
		{"requests revokeCert 200", m.requests.WithLabelValues("revokeCert", "200"), 1},
		{"requests revokeCert 400", m.requests.WithLabelValues("revokeCert", "400"), 1},
		{"requests unknown 404", m.requests.WithLabelValues("unknown", "404"), 1},
		{"problems badNonce", m.problems.WithLabelValues("badNonce"), 1},
		{"problems rateLimited", m.problems.WithLabelValues("rateLimited"), 1},
		{"problems orderNotReady", m.problems.WithLabelValues("orderNotReady"), 1},
		{"problems alreadyRevoked", m.problems.WithLabelValues("alreadyRevoked"), 1},
		{"problems malformed (404)", m.problems.WithLabelValues("malformed"), 1},
		{"orders created", m.orders, 3},
		{"finalized issued", m.finalized.WithLabelValues("issued"), 1},
		{"finalized orderNotReady", m.finalized.WithLabelValues("orderNotReady"), 1},
		{"issued classic", m.issued.WithLabelValues("classic"), 1},
		{"revocations superseded", m.revocations.WithLabelValues("superseded"), 1},
		{"validations http-01 valid", m.validations.WithLabelValues(va.HTTP01, "valid"), 1},
		{"validations dns-01 unauthorized", m.validations.WithLabelValues(va.DNS01, "unauthorized"), 1},
		{"validations http-01 caa", m.validations.WithLabelValues(va.HTTP01, "caa"), 1},
		{"rate limited newOrdersPerAccount", m.rateLimited.WithLabelValues(string(ratelimit.OrdersPerAccount)), 1},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Series counts through the registry: the metrics are registered, and
	// no label carries a raw path or an ID.
	for _, tc := range []struct {
		metric string
		want   int
	}{
		// directory newNonce newAccount newOrder authz challenge finalize
		// certificate revokeCert order unknown
		{"ctstage_acme_request_seconds", 11},
		{"ctstage_acme_validation_seconds", 3},
		{"ctstage_acme_problems_total", 5},
		{"ctstage_acme_orders_finalized_total", 2},
	} {
		if got, err := testutil.GatherAndCount(reg, tc.metric); err != nil || got != tc.want {
			t.Errorf("%s: %d series (%v), want %d", tc.metric, got, err, tc.want)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsRegisterTwice: a second server on the same registry is an
// error from New, not a panic.
func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatalf("first registration: %v", err)
	}
	if _, err := newMetrics(reg); err == nil {
		t.Fatal("second registration on one registry succeeded, want an error")
	}
	if _, err := newMetrics(nil); err != nil {
		t.Fatalf("nil registerer: %v", err)
	}
}
