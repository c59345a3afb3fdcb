// Package ratelimit enforces the rate limits of Let's Encrypt's staging
// environment (https://letsencrypt.org/docs/staging-environment/) as
// sliding windows over events kept in a Store, so that they survive a
// restart when the Store does.
//
// Check and Record are separate: two concurrent requests can both pass
// Check before either records, so a limit can be overrun by the number of
// requests in flight, as on Let's Encrypt.
package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Name names a limit in errors, metrics and the Store.
type Name string

// The limits.
const (
	CertificatesPerDomain Name = "certificatesPerRegisteredDomain"
	DuplicateCertificates Name = "duplicateCertificates"
	FailedValidations     Name = "failedValidationsPerAccountPerHostname"
	AccountsPerIP         Name = "newRegistrationsPerIPAddress"
	OrdersPerAccount      Name = "newOrdersPerAccount"
)

// Limit is at most Count events per key within any Window.
type Limit struct {
	// Count is the number of events allowed in a window; 0 turns the
	// limit off.
	Count int `yaml:"count"`
	// Window is the length of the sliding window; it must be positive
	// when Count is.
	Window time.Duration `yaml:"window"`
}

// Config are the limits; Defaults are the staging environment's. The
// yaml keys are those of the rate_limits section of ctstage's config
// file (see Section).
type Config struct {
	// Disabled turns every limit off.
	Disabled bool `yaml:"disabled"`
	// CertificatesPerDomain: certificates per registered domain (public
	// suffix list) per window.
	CertificatesPerDomain Limit `yaml:"certificates_per_domain"`
	// DuplicateCertificates: certificates for exactly the same set of names.
	DuplicateCertificates Limit `yaml:"duplicate_certificates"`
	// FailedValidations: failed validations per account per hostname.
	FailedValidations Limit `yaml:"failed_validations"`
	// AccountsPerIP: new accounts per client IP address.
	AccountsPerIP Limit `yaml:"accounts_per_ip"`
	// OrdersPerAccount: new orders per account.
	OrdersPerAccount Limit `yaml:"orders_per_account"`
}

// Defaults are the staging environment's limits.
func Defaults() Config {
	week := 7 * 24 * time.Hour
	return Config{
		CertificatesPerDomain: Limit{30000, week},
		DuplicateCertificates: Limit{30000, week},
		FailedValidations:     Limit{60, time.Hour},
		AccountsPerIP:         Limit{50, 3 * time.Hour},
		OrdersPerAccount:      Limit{1500, 3 * time.Hour},
	}
}

func (c Config) limit(n Name) Limit {
	switch n {
	case CertificatesPerDomain:
		return c.CertificatesPerDomain
	case DuplicateCertificates:
		return c.DuplicateCertificates
	case FailedValidations:
		return c.FailedValidations
	case AccountsPerIP:
		return c.AccountsPerIP
	case OrdersPerAccount:
		return c.OrdersPerAccount
	}
	return Limit{}
}

// Store keeps events. Implementations are safe for concurrent use.
type Store interface {
	// AddEvent records one event of limit name for key at a time.
	AddEvent(ctx context.Context, name, key string, at time.Time) error
	// CountEvents counts the events of (name, key) at or after since and
	// returns the oldest of them.
	CountEvents(ctx context.Context, name, key string, since time.Time) (n int, oldest time.Time, err error)
}

// Limiter checks and records events against a Config.
type Limiter struct {
	cfg   Config
	store Store
	now   func() time.Time
}

// New returns a Limiter; now nil is time.Now.
func New(cfg Config, store Store, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{cfg: cfg, store: store, now: now}
}

// Exceeded is the error of a refused Check.
type Exceeded struct {
	Limit      Name
	Key        string
	Count      int
	Window     time.Duration
	RetryAfter time.Duration // until the oldest event leaves the window
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("too many %s for %q: %d per %s; retry after %s",
		e.Limit, e.Key, e.Count, e.Window, e.RetryAfter.Round(time.Second))
}

// Check returns *Exceeded if one more event of name for key would exceed
// the limit, nil if it would not or the limit is off.
func (l *Limiter) Check(ctx context.Context, name Name, key string) error {
	if l == nil || l.cfg.Disabled {
		return nil
	}
	lim := l.cfg.limit(name)
	if lim.Count <= 0 {
		return nil
	}
	now := l.now()
	n, oldest, err := l.store.CountEvents(ctx, string(name), key, now.Add(-lim.Window))
	if err != nil {
		return fmt.Errorf("couldn't check rate limit %s: %w", name, err)
	}
	if n < lim.Count {
		return nil
	}
	retry := max(oldest.Add(lim.Window).Sub(now), time.Second)
	return &Exceeded{Limit: name, Key: key, Count: lim.Count, Window: lim.Window, RetryAfter: retry}
}

// Record records one event of name for key now (also when the limit is
// off, so that turning it on counts the past).
func (l *Limiter) Record(ctx context.Context, name Name, key string) error {
	if l == nil || l.cfg.Disabled {
		return nil
	}
	if err := l.store.AddEvent(ctx, string(name), key, l.now()); err != nil {
		return fmt.Errorf("couldn't record rate limit event %s: %w", name, err)
	}
	return nil
}

// RegisteredDomain is name's registered domain by the public suffix list
// (eTLD+1); an IP address or a name that is itself a public suffix is
// its own key.
func RegisteredDomain(name string) string {
	name = strings.TrimPrefix(strings.ToLower(name), "*.")
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return name
	}
	return d
}

// RegisteredDomains are the distinct registered domains of names, sorted.
func RegisteredDomains(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, RegisteredDomain(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NamesKey identifies a set of names for DuplicateCertificates:
// lower-cased, sorted, de-duplicated, comma-joined.
func NamesKey(names []string) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = strings.ToLower(n)
	}
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}
