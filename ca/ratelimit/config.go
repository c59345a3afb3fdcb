package ratelimit

import (
	"fmt"
	"time"
)

// Section is the acme.rate_limits section of ctstage's config file, as
// decoded (docs/config.md). A limit left out (nil) keeps its default; a
// limit given replaces its default whole, so a count without a window is
// an error rather than a mix of the file and the default.
type Section struct {
	// Disabled turns every limit off.
	Disabled bool `yaml:"disabled"`
	// CertificatesPerDomain: certificates per registered domain.
	// Default 30000 per week.
	CertificatesPerDomain *Limit `yaml:"certificates_per_domain"`
	// DuplicateCertificates: certificates for the same set of names.
	// Default 30000 per week.
	DuplicateCertificates *Limit `yaml:"duplicate_certificates"`
	// FailedValidations: failed validations per account per hostname.
	// Default 60 per hour.
	FailedValidations *Limit `yaml:"failed_validations"`
	// AccountsPerIP: new accounts per client IP address. Default 50 per
	// 3 hours.
	AccountsPerIP *Limit `yaml:"accounts_per_ip"`
	// OrdersPerAccount: new orders per account. Default 1500 per 3 hours.
	OrdersPerAccount *Limit `yaml:"orders_per_account"`
}

// Config returns Defaults with the limits s gives in their place, or an
// error that names the first bad key.
func (s Section) Config() (Config, error) {
	c := Defaults()
	c.Disabled = s.Disabled
	given := []*Limit{ // in the order of Config.fields
		s.CertificatesPerDomain, s.DuplicateCertificates, s.FailedValidations, s.AccountsPerIP, s.OrdersPerAccount,
	}
	for i, f := range c.fields() {
		if given[i] != nil {
			*f.limit = *given[i]
		}
	}
	return c, c.Validate()
}

// field is one limit of a Config with its config key.
type field struct {
	key   string
	limit *Limit
}

// fields lists c's limits in the order of the struct.
func (c *Config) fields() []field {
	return []field{
		{"certificates_per_domain", &c.CertificatesPerDomain},
		{"duplicate_certificates", &c.DuplicateCertificates},
		{"failed_validations", &c.FailedValidations},
		{"accounts_per_ip", &c.AccountsPerIP},
		{"orders_per_account", &c.OrdersPerAccount},
	}
}

// Validate refuses a negative count and a positive count without a
// positive window. The error names the first bad limit by its config key.
func (c Config) Validate() error {
	for _, f := range c.fields() {
		switch l := *f.limit; {
		case l.Count < 0:
			return fmt.Errorf("%s: count %d is negative (0 turns the limit off)", f.key, l.Count)
		case l.Count > 0 && l.Window <= 0:
			return fmt.Errorf("%s: count %d needs a positive window, not %s", f.key, l.Count, l.Window)
		}
	}
	return nil
}

// Differences describes how c departs from Defaults: "disabled" when
// every limit is off, else one "key=count/window" (or "key=off") for each
// limit that differs. It is empty when c is Defaults.
func (c Config) Differences() []string {
	if c.Disabled {
		return []string{"disabled"}
	}
	var out []string
	d := Defaults()
	df := d.fields()
	for i, f := range c.fields() {
		if l := *f.limit; l != *df[i].limit {
			out = append(out, f.key+"="+l.String())
		}
	}
	return out
}

// String is "count/window", or "off" when Count is 0.
func (l Limit) String() string {
	if l.Count <= 0 {
		return "off"
	}
	return fmt.Sprintf("%d/%s", l.Count, fmtDuration(l.Window))
}

// fmtDuration writes whole hours and minutes without trailing zero units
// ("3h", "1h30m", "168h"), else time.Duration's form.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if d%time.Minute == 0 && d >= time.Minute {
		s = s[:len(s)-2] // "0s"
		if d%time.Hour == 0 {
			s = s[:len(s)-2] // "0m"
		}
	}
	return s
}
