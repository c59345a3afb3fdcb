package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ctstage/ctstage/internal/serve"
)

// TestACMEMetrics checks that serve registers the ACME server's metrics on
// the registry /metrics serves: one order, one bad nonce, scraped.
func TestACMEMetrics(t *testing.T) {
	s := startACMEStage(t, func(o *serve.Options) { o.ACME.AlwaysValid = true })
	c := newRawClient(t, s)
	c.register()
	c.readyOrder("metrics.example.com")
	url := c.url("newOrder")
	if r := c.postRaw(url, c.sign(url, []byte("{}"), map[string]any{"nonce": "bogus"})); r.problemType() != "badNonce" {
		t.Fatalf("bogus nonce: %d %s", r.status, r.body)
	}

	rsp, err := http.Get(s.LogURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	for _, want := range []string{
		`ctstage_acme_requests_total{code="200",endpoint="directory"} 1`,
		`ctstage_acme_requests_total{code="201",endpoint="newOrder"} 1`,
		`ctstage_acme_problems_total{type="badNonce"} 1`,
		`ctstage_acme_orders_created_total 1`,
		`ctstage_acme_validations_total{challenge="http-01",outcome="valid"} 1`,
		`ctstage_acme_validation_seconds_count{challenge="http-01",outcome="valid"} 1`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
