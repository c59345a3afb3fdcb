package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ErrBadRequest reports a request the CA refuses before issuing anything:
// unknown profile, bad name, unsupported key, lifetime out of range.
var ErrBadRequest = errors.New("bad issuance request")

// Profile is a certificate profile in the manner of Let's Encrypt's
// (https://letsencrypt.org/docs/profiles/).
type Profile struct {
	// Name is how requests choose the profile.
	Name string
	// Lifetime is the default validity period; MaxLifetime the longest a
	// request may ask for.
	Lifetime, MaxLifetime time.Duration
	// CommonName puts the first name of at most 64 characters in the
	// subject's commonName.
	CommonName bool
	// KeyEncipherment adds keyEncipherment to the key usage of RSA keys.
	KeyEncipherment bool
	// IPAddresses allows IP address subject alternative names.
	IPAddresses bool
}

// Profiles are the profiles of Let's Encrypt as of 2026: "classic" (the
// default), "tlsserver" and "shortlived". Lifetimes may be shortened per
// request; lengthening one beyond its default up to MaxLifetime is for
// policy testers (e.g. to get the 3-SCT rule beyond 180 days), and the
// linter has the last word on what the Baseline Requirements allow.
//
// No profile has a Subject Key Identifier: the Baseline Requirements (since
// version 2.0) recommend against it in subscriber certificates, and Let's
// Encrypt's tlsserver and shortlived profiles omit it.
var Profiles = map[string]Profile{
	"classic": {
		Name: "classic", Lifetime: 90 * day, MaxLifetime: maxLifetime,
		CommonName: true, KeyEncipherment: true,
	},
	"tlsserver": {
		Name: "tlsserver", Lifetime: 90 * day, MaxLifetime: maxLifetime,
	},
	"shortlived": {
		Name: "shortlived", Lifetime: 160 * time.Hour, MaxLifetime: 160 * time.Hour,
		IPAddresses: true,
	},
}

// DefaultProfile is the profile of a request that names none.
const DefaultProfile = "classic"

const (
	day      = 24 * time.Hour
	maxNames = 100 // Let's Encrypt's limit
	// maxLifetime is the Baseline Requirements' limit for certificates
	// issued from 2026-03-15 (200 days; zlint warns beyond 199).
	maxLifetime = 199 * day
)

// oidDomainValidated is the CA/Browser Forum's domain-validated policy
// (Baseline Requirements section 7.1.6.1).
var oidDomainValidated = func() x509.OID {
	oid, err := x509.OIDFromInts([]uint64{2, 23, 140, 1, 2, 1})
	if err != nil {
		panic(err)
	}
	return oid
}()

// Request is what the CA needs to issue one certificate.
type Request struct {
	// PublicKey is the subscriber's key: ECDSA P-256 or P-384, or RSA of
	// 2048 to 4096 bits. The caller has checked possession (a CSR's
	// signature, an ACME finalize).
	PublicKey crypto.PublicKey
	// Names are DNS names (wildcards allowed as "*.example.com") and, for
	// profiles that allow them, IP addresses.
	Names []string
	// Profile is a key of Profiles; "" is DefaultProfile.
	Profile string
	// Lifetime is NotAfter - NotBefore (plus the one second that makes
	// NotAfter inclusive); 0 is the profile's default.
	Lifetime time.Duration
}

// normalized is a checked Request.
type normalized struct {
	profile  Profile
	pub      crypto.PublicKey
	dns      []string
	ips      []net.IP
	lifetime time.Duration
}

func (r Request) normalize() (*normalized, error) {
	name := r.Profile
	if name == "" {
		name = DefaultProfile
	}
	p, ok := Profiles[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown profile %q", ErrBadRequest, r.Profile)
	}
	n := &normalized{profile: p, pub: r.PublicKey, lifetime: r.Lifetime}
	if n.lifetime == 0 {
		n.lifetime = p.Lifetime
	}
	if n.lifetime < time.Hour || n.lifetime > p.MaxLifetime {
		return nil, fmt.Errorf("%w: lifetime %s out of range for profile %s (1h to %s)", ErrBadRequest, n.lifetime, p.Name, p.MaxLifetime)
	}
	if err := checkSubscriberKey(r.PublicKey); err != nil {
		return nil, err
	}
	if err := n.setNames(r.Names); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *normalized) setNames(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: no names", ErrBadRequest)
	}
	if len(names) > maxNames {
		return fmt.Errorf("%w: %d names, at most %d", ErrBadRequest, len(names), maxNames)
	}
	seen := map[string]bool{}
	for _, s := range names {
		if ip, err := netip.ParseAddr(s); err == nil {
			if !n.profile.IPAddresses {
				return fmt.Errorf("%w: profile %s does not allow IP address %s", ErrBadRequest, n.profile.Name, s)
			}
			if ip.Zone() != "" || !seenOnce(seen, ip.String()) {
				continue
			}
			n.ips = append(n.ips, net.IP(ip.AsSlice()))
			continue
		}
		d := strings.ToLower(s)
		err := CheckDNSName(d)
		if err == nil {
			err = CheckPublicName(d, time.Now())
		}
		if err != nil {
			return fmt.Errorf("%w: name %q: %v", ErrBadRequest, d, err)
		}
		if seenOnce(seen, d) {
			n.dns = append(n.dns, d)
		}
	}
	slices.Sort(n.dns)
	slices.SortFunc(n.ips, func(a, b net.IP) int { return strings.Compare(string(a), string(b)) })
	return nil
}

func seenOnce(seen map[string]bool, s string) bool {
	if seen[s] {
		return false
	}
	seen[s] = true
	return true
}

// CheckDNSName returns nil when d is a lower-case host name the CA puts in
// a certificate: letter-digit-hyphen labels, at least two, none starting
// or ending with '-', a top-level label not all digits, at most 253
// characters, optionally one leading "*." label; a trailing dot is
// refused. Otherwise the error says why, without the name. The ACME
// server checks identifiers with it, and ctstage's config file the
// built-in resolver's names; CheckPublicName adds what a publicly
// trusted certificate needs on top.
func CheckDNSName(d string) error {
	if len(d) > 253 {
		return errors.New("longer than 253 characters")
	}
	labels := strings.Split(strings.TrimPrefix(d, "*."), ".")
	if len(labels) < 2 {
		return errors.New("not a fully qualified domain name")
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 {
			return errors.New("empty label or label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("label starts or ends with '-'")
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return errors.New("character outside letters, digits and '-'")
			}
		}
	}
	if isDigits(labels[len(labels)-1]) {
		return errors.New("all-numeric top-level label")
	}
	return nil
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

func checkSubscriberKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
	case *rsa.PublicKey:
		if b := k.N.BitLen(); b >= 2048 && b <= 4096 && b%8 == 0 {
			return nil
		}
	case nil:
		return fmt.Errorf("%w: no public key", ErrBadRequest)
	}
	return fmt.Errorf("%w: unsupported key %s (want ECDSA P-256 or P-384, or RSA 2048 to 4096)", ErrBadRequest, describeKey(pub))
}

// leafTemplate is the certificate both the precertificate and the final
// certificate are made from; extra is appended after every standard
// extension (the poison or the SCT list).
func (n *normalized) leafTemplate(serial *big.Int, now time.Time, urls issuerURLs, extra pkix.Extension) (*x509.Certificate, error) {
	notBefore := now.Add(-backdate).UTC().Truncate(time.Second)
	t := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(n.lifetime - time.Second),
		DNSNames:              n.dns,
		IPAddresses:           n.ips,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		Policies:              []x509.OID{oidDomainValidated},
		IssuingCertificateURL: []string{urls.issuer},
		ExtraExtensions:       []pkix.Extension{extra},
	}
	if _, ok := n.pub.(*rsa.PublicKey); ok && n.profile.KeyEncipherment {
		t.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if !isShortLived(n.lifetime) {
		t.CRLDistributionPoints = []string{urls.crl}
	}
	if n.profile.CommonName {
		t.Subject.CommonName = n.commonName()
	}
	return t, nil
}

// isShortLived is the Baseline Requirements' short-lived subscriber
// certificate (section 1.6.1: at most 7 days from 2026-03-15), which needs
// neither OCSP nor CRL distribution points.
func isShortLived(lifetime time.Duration) bool { return lifetime <= 7*day }

func (n *normalized) commonName() string {
	for _, d := range n.dns {
		if len(d) <= 64 {
			return d
		}
	}
	return ""
}

var poisonExt = pkix.Extension{Id: PoisonOID, Critical: true, Value: asn1.NullBytes}

// sctListExt wraps a TLS-encoded SignedCertificateTimestampList in the
// extension's OCTET STRING (RFC 6962 section 3.3).
func sctListExt(list []byte) (pkix.Extension, error) {
	v, err := asn1.Marshal(list)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("couldn't encode the SCT list extension: %w", err)
	}
	return pkix.Extension{Id: SCTListOID, Value: v}, nil
}
