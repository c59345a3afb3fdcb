package config

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/va"
)

// DNSSection is the acme.dns section: the records the built-in resolver
// (ca/va's Zone, served on --dns-addr and used by the validator) holds
// from the start. The DNS management API changes them at run time.
type DNSSection struct {
	// DefaultAddresses are what every name without an entry in Hosts
	// resolves to: IPv4 addresses answer A queries, IPv6 ones AAAA.
	// Default [127.0.0.1]; an empty list is an error.
	DefaultAddresses []string `yaml:"default_addresses"`
	// Hosts maps a name to its own addresses, replacing the defaults
	// for it. A name "*.example.test" answers for every name below
	// example.test that has no entry of its own and no closer wildcard
	// (not for example.test itself).
	Hosts map[string][]string `yaml:"hosts"`
	// CAA maps a name to its CAA records (RFC 8659), which also govern
	// the names below it that have none. ctstage's issuer domain name
	// is ctstage.invalid. Wildcard names are refused: a record on
	// example.test already covers every name below it.
	CAA map[string][]CAARecord `yaml:"caa"`
}

// CAARecord is one CAA record of the acme.dns.caa section.
type CAARecord struct {
	// Flag is the flags octet; 128 marks the property critical.
	Flag uint8 `yaml:"flag"`
	// Tag is the property: issue, issuewild, iodef or any other 1 to 15
	// ASCII letters and digits.
	Tag string `yaml:"tag"`
	// Value is the property's value, such as "ca.example; account=1".
	Value string `yaml:"value"`
}

// DNS is the resolver's records as the zone takes them: names lower
// case, without the trailing dot.
type DNS struct {
	// DefaultAddresses answer for every name without addresses of its
	// own; empty is 127.0.0.1.
	DefaultAddresses []netip.Addr
	// Hosts are names' own addresses; see DNSSection.Hosts for "*.".
	Hosts map[string][]netip.Addr
	// CAA are names' CAA records.
	CAA map[string][]va.CAA
}

// DefaultDNS is the resolver without acme.dns: every name is 127.0.0.1,
// no CAA records.
func DefaultDNS() DNS {
	return DNS{DefaultAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
}

// Zone returns a new zone holding d's records; a nil d is DefaultDNS.
func (d *DNS) Zone() *va.Zone {
	if d == nil {
		return va.NewZone(nil, nil)
	}
	hosts := make(map[string][]netip.Addr, len(d.Hosts))
	for n, as := range d.Hosts {
		hosts[n] = slices.Clone(as)
	}
	z := va.NewZone(slices.Clone(d.DefaultAddresses), hosts)
	for n, recs := range d.CAA {
		z.SetCAA(n, slices.Clone(recs))
	}
	return z
}

// DNS resolves the section: the defaults for what it leaves out, names
// normalized, every value checked. An error names its key below
// acme.dns, such as "hosts.a.example.test[1]".
func (s DNSSection) DNS() (DNS, error) {
	d := DefaultDNS()
	if s.DefaultAddresses != nil {
		as, err := parseAddrs("default_addresses", s.DefaultAddresses)
		if err != nil {
			return DNS{}, err
		}
		d.DefaultAddresses = as
	}
	for _, n := range slices.Sorted(maps.Keys(s.Hosts)) {
		name, err := dnsName("hosts", n, true)
		if err != nil {
			return DNS{}, err
		}
		as, err := parseAddrs("hosts."+n, s.Hosts[n])
		if err != nil {
			return DNS{}, err
		}
		if d.Hosts == nil {
			d.Hosts = map[string][]netip.Addr{}
		}
		if _, dup := d.Hosts[name]; dup {
			return DNS{}, fmt.Errorf("hosts.%s: %s is listed twice (names are case-insensitive, the trailing dot optional)", n, name)
		}
		d.Hosts[name] = as
	}
	for _, n := range slices.Sorted(maps.Keys(s.CAA)) {
		name, err := dnsName("caa", n, false)
		if err != nil {
			return DNS{}, err
		}
		recs, err := caaRecords("caa."+n, s.CAA[n])
		if err != nil {
			return DNS{}, err
		}
		if d.CAA == nil {
			d.CAA = map[string][]va.CAA{}
		}
		if _, dup := d.CAA[name]; dup {
			return DNS{}, fmt.Errorf("caa.%s: %s is listed twice (names are case-insensitive, the trailing dot optional)", n, name)
		}
		d.CAA[name] = recs
	}
	return d, nil
}

// Validate checks d as DNSSection.DNS checks the file's section (for d
// given in-process, as serve.Options.DNS); empty DefaultAddresses are
// 127.0.0.1 here.
func (d DNS) Validate() error {
	var s DNSSection
	for _, a := range d.DefaultAddresses {
		s.DefaultAddresses = append(s.DefaultAddresses, a.String())
	}
	if len(d.Hosts) > 0 {
		s.Hosts = map[string][]string{}
	}
	for n, as := range d.Hosts {
		s.Hosts[n] = []string{}
		for _, a := range as {
			s.Hosts[n] = append(s.Hosts[n], a.String())
		}
	}
	if len(d.CAA) > 0 {
		s.CAA = map[string][]CAARecord{}
	}
	for n, rs := range d.CAA {
		s.CAA[n] = []CAARecord{}
		for _, r := range rs {
			s.CAA[n] = append(s.CAA[n], CAARecord(r))
		}
	}
	_, err := s.DNS()
	return err
}

// dnsName normalizes a name of the section (lower case, no trailing dot)
// and checks it with the rules the ACME server applies to dns
// identifiers; a leading "*." label only when wildcard is allowed.
func dnsName(key, n string, wildcard bool) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(n, "."))
	if err := ca.CheckDNSName(name); err != nil {
		return "", fmt.Errorf("%s.%s: %q is not a DNS name: %w", key, n, n, err)
	}
	if !wildcard && strings.HasPrefix(name, "*.") {
		return "", fmt.Errorf("%s.%s: CAA records cannot be on a wildcard name; records on %s govern every name below it (RFC 8659)",
			key, n, strings.TrimPrefix(name, "*."))
	}
	return name, nil
}

// parseAddrs parses a non-empty list of IP addresses without zones
// (fe80::1%eth0), which DNS cannot carry; IPv4-mapped IPv6 addresses
// become IPv4.
func parseAddrs(key string, ss []string) ([]netip.Addr, error) {
	if len(ss) == 0 {
		return nil, fmt.Errorf("%s: no addresses; give at least one, or leave the key out", key)
	}
	as := make([]netip.Addr, len(ss))
	for i, s := range ss {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s[%d]: %q is not an IP address", key, i, s)
		case a.Zone() != "":
			return nil, fmt.Errorf("%s[%d]: %s has a zone, which DNS cannot carry", key, i, s)
		}
		as[i] = a.Unmap()
	}
	return as, nil
}

// caaRecords converts a non-empty list of records, checking each tag as
// the DNS management API does.
func caaRecords(key string, rs []CAARecord) ([]va.CAA, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s: no records; give at least one, or leave the name out", key)
	}
	out := make([]va.CAA, len(rs))
	for i, r := range rs {
		if !va.ValidCAATag(r.Tag) {
			return nil, fmt.Errorf("%s[%d].tag: %q is not 1 to 15 ASCII letters and digits (RFC 8659 section 4.1)", key, i, r.Tag)
		}
		out[i] = va.CAA{Flag: r.Flag, Tag: r.Tag, Value: r.Value}
	}
	return out, nil
}
