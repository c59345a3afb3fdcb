package ratelimit

import (
	"strings"
	"testing"
	"time"
)

func TestSectionConfig(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, tc := range []struct {
		name    string
		s       Section
		want    func(*Config) // applied to Defaults()
		wantErr string
	}{
		{"Empty", Section{}, func(*Config) {}, ""},
		{"Disabled", Section{Disabled: true}, func(c *Config) { c.Disabled = true }, ""},
		{"OneLimit", Section{OrdersPerAccount: &Limit{2, time.Hour}}, func(c *Config) { c.OrdersPerAccount = Limit{2, time.Hour} }, ""},
		{"CountZeroTurnsOff", Section{AccountsPerIP: &Limit{}}, func(c *Config) { c.AccountsPerIP = Limit{} }, ""},
		{"EveryLimit", Section{
			CertificatesPerDomain: &Limit{1, week}, DuplicateCertificates: &Limit{2, week}, FailedValidations: &Limit{3, time.Minute},
			AccountsPerIP: &Limit{4, time.Hour}, OrdersPerAccount: &Limit{5, time.Second},
		}, func(c *Config) {
			*c = Config{CertificatesPerDomain: Limit{1, week}, DuplicateCertificates: Limit{2, week}, FailedValidations: Limit{3, time.Minute},
				AccountsPerIP: Limit{4, time.Hour}, OrdersPerAccount: Limit{5, time.Second}}
		}, ""},
		{"NegativeCount", Section{FailedValidations: &Limit{-1, time.Hour}}, nil, "failed_validations: count -1 is negative"},
		{"NoWindow", Section{CertificatesPerDomain: &Limit{Count: 5}}, nil, "certificates_per_domain: count 5 needs a positive window"},
		{"NegativeWindow", Section{DuplicateCertificates: &Limit{5, -time.Hour}}, nil, "duplicate_certificates: count 5 needs a positive window"},
		{"FirstBadNamed", Section{AccountsPerIP: &Limit{-2, 0}, OrdersPerAccount: &Limit{1, 0}}, nil, "accounts_per_ip: count -2 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.s.Config()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Defaults()
			tc.want(&want)
			if got != want {
				t.Errorf("Config() = %+v, want %+v", got, want)
			}
		})
	}
}

func TestDifferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"Defaults", func(*Config) {}, ""},
		{"Disabled", func(c *Config) { c.Disabled = true; c.OrdersPerAccount.Count = 1 }, "disabled"},
		{"Changed", func(c *Config) {
			c.OrdersPerAccount = Limit{2, time.Hour}
			c.AccountsPerIP.Count = 0
			c.FailedValidations.Window = 90 * time.Minute
		}, "failed_validations=60/1h30m accounts_per_ip=off orders_per_account=2/1h"},
		{"OddWindow", func(c *Config) { c.CertificatesPerDomain.Window = 1500 * time.Millisecond }, "certificates_per_domain=30000/1.5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.mod(&c)
			if got := strings.Join(c.Differences(), " "); got != tc.want {
				t.Errorf("Differences() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLimitOff checks that a limit with count 0 refuses nothing while the
// others still apply.
func TestLimitOff(t *testing.T) {
	cfg := Defaults()
	cfg.OrdersPerAccount = Limit{}
	cfg.AccountsPerIP = Limit{1, time.Hour}
	l := New(cfg, NewMemory(), nil)
	ctx := t.Context()
	for range 3 {
		if err := l.Check(ctx, OrdersPerAccount, "a"); err != nil {
			t.Fatalf("orders, limit off: %v", err)
		}
		l.Record(ctx, OrdersPerAccount, "a")
	}
	l.Record(ctx, AccountsPerIP, "192.0.2.1")
	if err := l.Check(ctx, AccountsPerIP, "192.0.2.1"); err == nil {
		t.Errorf("second account within the hour passed a limit of 1")
	}
}
