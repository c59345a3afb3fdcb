package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/ca/ratelimit"
)

// TestLoadConfigRateLimits checks the precedence of the rate limits:
// Options.RateLimits, then the file's acme.rate_limits, then the defaults.
func TestLoadConfigRateLimits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(file, []byte("acme:\n  rate_limits:\n    orders_per_account: {count: 2, window: 1h}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile := ratelimit.Defaults()
	fromFile.OrdersPerAccount = ratelimit.Limit{Count: 2, Window: time.Hour}
	goAPI := ratelimit.Defaults()
	goAPI.AccountsPerIP.Count = 7
	for _, tc := range []struct {
		name    string
		file    string
		limits  *ratelimit.Config
		want    ratelimit.Config
		wantErr string
	}{
		{"Defaults", "", nil, ratelimit.Defaults(), ""},
		{"File", file, nil, fromFile, ""},
		{"NoRateLimitsWinsOverFile", file, &ratelimit.Config{Disabled: true}, ratelimit.Config{Disabled: true}, ""},
		{"GoAPIReplacesFile", file, &goAPI, goAPI, ""},
		{"InvalidGoAPI", "", &ratelimit.Config{OrdersPerAccount: ratelimit.Limit{Count: 1}}, ratelimit.Config{}, "Options.ACME.RateLimits: orders_per_account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(Options{ConfigFile: tc.file, ACME: ACMEOptions{RateLimits: tc.limits}, Now: time.Now})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.RateLimits != tc.want {
				t.Errorf("rate limits %+v, want %+v", cfg.RateLimits, tc.want)
			}
		})
	}
}
