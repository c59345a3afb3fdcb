package integration

import (
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/internal/serve"
)

// TestACMEConfigRateLimits runs `ctstage serve --config FILE` with
// orders_per_account set to 2 per hour in the file: the third new order is
// refused with 429, Retry-After and rateLimited naming the limit, and the
// start log says which limit differs from the defaults. With
// --no-rate-limits as well, the flag wins and the third order passes.
func TestACMEConfigRateLimits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ctstage.yaml")
	config := "acme:\n  rate_limits:\n    orders_per_account: {count: 2, window: 1h}\n"
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		third     int    // status of the third new order
		logLimits string // rate_limits in the start log line
	}{
		{"File", []string{"--config", file}, http.StatusTooManyRequests, `rate_limits="orders_per_account=2/1h"`},
		{"NoRateLimitsWins", []string{"--config", file, "--no-rate-limits"}, http.StatusCreated, "rate_limits=disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := startClientStage(t, tc.args...)
			c := newRawClient(t, binaryACMEStage(t, cs))
			c.register()
			for range 2 {
				c.newOrder("limits.example.com")
			}
			r := c.post(c.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "limits.example.com"}}})
			if r.status != tc.third {
				t.Fatalf("third order: %d %s, want %d", r.status, r.body, tc.third)
			}
			if tc.third == http.StatusTooManyRequests && (!strings.Contains(string(r.body), `"urn:ietf:params:acme:error:rateLimited"`) || r.header.Get("Retry-After") == "" ||
				!strings.Contains(string(r.body), string(ratelimit.OrdersPerAccount))) {
				t.Errorf("third order: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
			}
			logs := cs.logs()
			if n := strings.Count(logs, "ACME rate limits differ from the staging defaults"); n != 1 || !strings.Contains(logs, tc.logLimits) {
				t.Errorf("start log has %d rate-limit lines, want 1 with %q:\n%s", n, tc.logLimits, logs)
			}
		})
	}
}

// binaryACMEStage lets rawClient talk to a `ctstage serve` process: the
// ACME URL and the staging root from its --data.
func binaryACMEStage(t *testing.T, cs *clientStage) *acmeStage {
	t.Helper()
	roots := x509.NewCertPool()
	b, err := os.ReadFile(cs.rootPEM())
	if err != nil || !roots.AppendCertsFromPEM(b) {
		t.Fatalf("--data/ca/root.pem: %v", err)
	}
	return &acmeStage{Stage: &serve.Stage{ACMEURL: cs.acmeURL}, roots: roots}
}
