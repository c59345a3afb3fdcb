// Package va validates ACME challenges (RFC 8555 section 8): http-01,
// dns-01 and tls-alpn-01 (RFC 8737), for DNS and IP (RFC 8738)
// identifiers, against a built-in resolver (Zone) instead of the real DNS,
// and checks CAA (RFC 8659) against the same Zone.
package va

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Kind is the ACME error type (RFC 8555 section 6.7) a failure maps to.
type Kind string

// Kinds of failure.
const (
	KindConnection        Kind = "connection"
	KindDNS               Kind = "dns"
	KindTLS               Kind = "tls"
	KindIncorrectResponse Kind = "incorrectResponse"
	KindUnauthorized      Kind = "unauthorized"
	KindCAA               Kind = "caa"
	KindMalformed         Kind = "malformed"
)

// Error is a failed validation.
type Error struct {
	Kind   Kind
	Detail string
}

func (e *Error) Error() string { return string(e.Kind) + ": " + e.Detail }

func fail(k Kind, f string, a ...any) *Error { return &Error{Kind: k, Detail: fmt.Sprintf(f, a...)} }

// Options configure a VA.
type Options struct {
	// Zone resolves names and holds TXT and CAA records.
	Zone *Zone
	// HTTPPort is where http-01 connects (and what port 80 in a redirect
	// means); default 80.
	HTTPPort int
	// TLSPort is where tls-alpn-01 connects (and what port 443 in a
	// redirect means); default 443.
	TLSPort int
	// DNSAddr is the built-in DNS server that dns-01 queries; "" reads
	// Zone directly.
	DNSAddr string
	// CAAIdentities are the issuer domain names CAA "issue" records may
	// name to allow this CA.
	CAAIdentities []string
	// Timeout bounds one validation; default 10s.
	Timeout time.Duration
}

// VA validates challenges. Safe for concurrent use.
type VA struct{ opts Options }

// New returns a VA.
func New(opts Options) *VA {
	if opts.HTTPPort == 0 {
		opts.HTTPPort = 80
	}
	if opts.TLSPort == 0 {
		opts.TLSPort = 443
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Zone == nil {
		opts.Zone = NewZone(nil, nil)
	}
	return &VA{opts: opts}
}

// Challenge types.
const (
	HTTP01    = "http-01"
	DNS01     = "dns-01"
	TLSALPN01 = "tls-alpn-01"
)

// Validate checks one challenge of type typ for identifier (identType
// "dns" or "ip", value without any "*." prefix) with the key
// authorization keyAuth (RFC 8555 section 8.1). It returns nil or *Error.
func (v *VA) Validate(ctx context.Context, typ, identType, value, token, keyAuth string) error {
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	switch typ {
	case HTTP01:
		return v.http01(ctx, identType, value, token, keyAuth)
	case TLSALPN01:
		return v.tlsALPN01(ctx, identType, value, keyAuth)
	case DNS01:
		if identType != "dns" {
			return fail(KindMalformed, "dns-01 cannot validate an IP address")
		}
		return v.dns01(ctx, value, keyAuth)
	}
	return fail(KindMalformed, "unknown challenge type %q", typ)
}

// resolve returns the addresses to connect to for a DNS name or IP.
func (v *VA) resolve(identType, value string) ([]netip.Addr, error) {
	if identType == "ip" {
		a, err := netip.ParseAddr(value)
		if err != nil {
			return nil, fail(KindMalformed, "bad IP address %q", value)
		}
		return []netip.Addr{a}, nil
	}
	as := v.opts.Zone.Addrs(value)
	if len(as) == 0 {
		return nil, fail(KindDNS, "no addresses for %s", value)
	}
	return as, nil
}

// KeyAuthDigest is the dns-01 TXT value: base64url(SHA-256(keyAuth)).
func KeyAuthDigest(keyAuth string) string {
	h := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (v *VA) dns01(ctx context.Context, name, keyAuth string) error {
	qname := "_acme-challenge." + strings.TrimPrefix(name, "*.")
	want := KeyAuthDigest(keyAuth)
	txts, err := v.lookupTXT(ctx, qname)
	if err != nil {
		return err
	}
	if slices.Contains(txts, want) {
		return nil
	}
	// Let's Encrypt (Boulder) answers unauthorized here, with these details.
	if len(txts) == 0 {
		return fail(KindUnauthorized, "no TXT record found at %s", qname)
	}
	return fail(KindUnauthorized, "incorrect TXT record %q found at %s (%d found, none matches)", truncate(txts[0], 100), qname, len(txts))
}

// lookupTXT queries DNSAddr over UDP with EDNS0, and again over TCP when
// the answer is truncated, so that many TXT values (several pending
// dns-01 challenges for one name) fit.
func (v *VA) lookupTXT(ctx context.Context, qname string) ([]string, error) {
	if v.opts.DNSAddr == "" {
		return v.opts.Zone.TXT(qname), nil
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(qname), dns.TypeTXT)
	m.SetEdns0(dns.DefaultMsgSize, false)
	c := &dns.Client{Net: "udp"}
	r, _, err := c.ExchangeContext(ctx, m, v.opts.DNSAddr)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, v.opts.DNSAddr)
	}
	if err != nil {
		return nil, fail(KindDNS, "couldn't query TXT %s: %v", qname, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fail(KindDNS, "TXT %s: %s", qname, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}
