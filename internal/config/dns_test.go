package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/ctstage/ctstage/ca/va"
)

func addrs(ss ...string) []netip.Addr {
	as := make([]netip.Addr, len(ss))
	for i, s := range ss {
		as[i] = netip.MustParseAddr(s)
	}
	return as
}

// TestParseDNS checks the acme.dns section: the defaults for what it
// leaves out, each key, and names normalized.
func TestParseDNS(t *testing.T) {
	lo := addrs("127.0.0.1")
	for _, tc := range []struct {
		name, yaml string
		want       DNS
	}{
		{"NoSection", "", DNS{DefaultAddresses: lo}},
		{"EmptySection", "acme:\n  dns: {}\n", DNS{DefaultAddresses: lo}},
		{"NullDefaults", "acme:\n  dns:\n    default_addresses:\n", DNS{DefaultAddresses: lo}},
		{"EmptyMaps", "acme:\n  dns:\n    hosts: {}\n    caa: {}\n", DNS{DefaultAddresses: lo}},
		{"DefaultAddresses", "acme:\n  dns:\n    default_addresses: [127.0.0.9, '::1']\n",
			DNS{DefaultAddresses: addrs("127.0.0.9", "::1")}},
		{"IPv4MappedIsIPv4", "acme:\n  dns:\n    default_addresses: ['::ffff:127.0.0.2']\n",
			DNS{DefaultAddresses: addrs("127.0.0.2")}},
		{"Hosts", "acme:\n  dns:\n    hosts:\n      a.ctstage.test: [127.0.0.2]\n      b.ctstage.test: [127.0.0.3, '::1']\n",
			DNS{DefaultAddresses: lo, Hosts: map[string][]netip.Addr{
				"a.ctstage.test": addrs("127.0.0.2"), "b.ctstage.test": addrs("127.0.0.3", "::1")}}},
		{"HostNormalized", "acme:\n  dns:\n    hosts:\n      A.CTstage.Test.: [127.0.0.2]\n",
			DNS{DefaultAddresses: lo, Hosts: map[string][]netip.Addr{"a.ctstage.test": addrs("127.0.0.2")}}},
		{"WildcardHost", "acme:\n  dns:\n    hosts:\n      '*.apps.ctstage.test': [127.0.0.4]\n",
			DNS{DefaultAddresses: lo, Hosts: map[string][]netip.Addr{"*.apps.ctstage.test": addrs("127.0.0.4")}}},
		{"CAA", "acme:\n  dns:\n    caa:\n      c.ctstage.test:\n      - {tag: issue, value: other-ca.example}\n      - {flag: 128, tag: tbs, value: x}\n",
			DNS{DefaultAddresses: lo, CAA: map[string][]va.CAA{"c.ctstage.test": {
				{Tag: "issue", Value: "other-ca.example"}, {Flag: 128, Tag: "tbs", Value: "x"}}}}},
		{"CAAEmptyValue", "acme:\n  dns:\n    caa:\n      Ctstage.Test: [{tag: issue, value: ''}]\n",
			DNS{DefaultAddresses: lo, CAA: map[string][]va.CAA{"ctstage.test": {{Tag: "issue"}}}}},
		{"WithRateLimits", "acme:\n  rate_limits:\n    disabled: true\n  dns:\n    default_addresses: [10.0.0.1]\n",
			DNS{DefaultAddresses: addrs("10.0.0.1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), now)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.DNS, tc.want) {
				t.Errorf("dns %+v, want %+v", cfg.DNS, tc.want)
			}
			if err := cfg.DNS.Validate(); err != nil {
				t.Errorf("Parse's result does not validate: %v", err)
			}
		})
	}
}

// TestParseDNSErrors checks that every bad value of acme.dns is refused
// with an error that names its key.
func TestParseDNSErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each must be in the error
	}{
		{"UnknownKey", "acme:\n  dns:\n    default_address: [127.0.0.1]\n", []string{"acme.dns.default_address: line 3: field default_address not found"}},
		{"UnknownCAAKey", "acme:\n  dns:\n    caa:\n      a.test:\n      - tag: issue\n        vale: x\n", []string{"acme.dns.caa.a.test[0].vale: line 6"}},
		{"EmptyDefaults", "acme:\n  dns:\n    default_addresses: []\n", []string{"config: acme.dns.default_addresses: no addresses"}},
		{"BadDefault", "acme:\n  dns:\n    default_addresses: [127.0.0.1, 127.0.0.300]\n", []string{`config: acme.dns.default_addresses[1]: "127.0.0.300" is not an IP address`}},
		{"HostnameAsDefault", "acme:\n  dns:\n    default_addresses: [localhost]\n", []string{`acme.dns.default_addresses[0]: "localhost" is not an IP address`}},
		{"ZonedDefault", "acme:\n  dns:\n    default_addresses: ['fe80::1%eth0']\n", []string{"acme.dns.default_addresses[0]: fe80::1%eth0 has a zone"}},
		{"DefaultsNotAList", "acme:\n  dns:\n    default_addresses: 127.0.0.2\n", []string{"acme.dns.default_addresses: line 3"}},
		{"BadHostAddress", "acme:\n  dns:\n    hosts:\n      a.ctstage.test: [127.0.0.2, 999::1::1]\n", []string{`acme.dns.hosts.a.ctstage.test[1]: "999::1::1" is not an IP address`}},
		{"EmptyHostList", "acme:\n  dns:\n    hosts:\n      a.ctstage.test: []\n", []string{"acme.dns.hosts.a.ctstage.test: no addresses"}},
		{"NullHostList", "acme:\n  dns:\n    hosts:\n      a.ctstage.test:\n", []string{"acme.dns.hosts.a.ctstage.test: no addresses"}},
		{"HostNotAList", "acme:\n  dns:\n    hosts:\n      a.ctstage.test: 127.0.0.2\n", []string{"acme.dns.hosts.a.ctstage.test: line 4"}},
		{"SingleLabelHost", "acme:\n  dns:\n    hosts:\n      localhost: [127.0.0.2]\n", []string{`acme.dns.hosts.localhost: "localhost" is not a DNS name: not a fully qualified domain name`}},
		{"UnderscoreHost", "acme:\n  dns:\n    hosts:\n      a_b.test: [127.0.0.2]\n", []string{`acme.dns.hosts.a_b.test: "a_b.test" is not a DNS name: character outside`}},
		{"EmptyLabelHost", "acme:\n  dns:\n    hosts:\n      a..test: [127.0.0.2]\n", []string{`acme.dns.hosts.a..test: "a..test" is not a DNS name: empty label`}},
		{"HyphenHost", "acme:\n  dns:\n    hosts:\n      -a.test: [127.0.0.2]\n", []string{`acme.dns.hosts.-a.test: "-a.test" is not a DNS name: label starts or ends with '-'`}},
		{"IPAsHost", "acme:\n  dns:\n    hosts:\n      10.0.0.1: [127.0.0.2]\n", []string{`acme.dns.hosts.10.0.0.1: "10.0.0.1" is not a DNS name: all-numeric top-level label`}},
		{"InnerWildcardHost", "acme:\n  dns:\n    hosts:\n      'a.*.test': [127.0.0.2]\n", []string{`acme.dns.hosts.a.*.test: "a.*.test" is not a DNS name`}},
		{"LongHost", "acme:\n  dns:\n    hosts:\n      " + strings.Repeat("a.", 127) + "test: [127.0.0.2]\n", []string{"is not a DNS name: longer than 253 characters"}},
		{"DuplicateHost", "acme:\n  dns:\n    hosts:\n      a.test: [127.0.0.2]\n      A.test.: [127.0.0.3]\n", []string{"acme.dns.hosts.a.test: a.test is listed twice"}},
		{"EmptyCAAList", "acme:\n  dns:\n    caa:\n      c.ctstage.test: []\n", []string{"acme.dns.caa.c.ctstage.test: no records"}},
		{"WildcardCAA", "acme:\n  dns:\n    caa:\n      '*.ctstage.test': [{tag: issue, value: x}]\n", []string{"acme.dns.caa.*.ctstage.test: CAA records cannot be on a wildcard name; records on ctstage.test"}},
		{"BadCAAName", "acme:\n  dns:\n    caa:\n      'c ctstage.test': [{tag: issue, value: x}]\n", []string{`acme.dns.caa.c ctstage.test: "c ctstage.test" is not a DNS name`}},
		{"EmptyCAATag", "acme:\n  dns:\n    caa:\n      c.ctstage.test: [{tag: issue, value: x}, {value: x}]\n", []string{`acme.dns.caa.c.ctstage.test[1].tag: "" is not 1 to 15 ASCII letters and digits`}},
		{"BadCAATag", "acme:\n  dns:\n    caa:\n      c.ctstage.test: [{tag: is-sue, value: x}]\n", []string{`acme.dns.caa.c.ctstage.test[0].tag: "is-sue"`}},
		{"LongCAATag", "acme:\n  dns:\n    caa:\n      c.ctstage.test: [{tag: abcdefghijklmnop}]\n", []string{`acme.dns.caa.c.ctstage.test[0].tag: "abcdefghijklmnop"`}},
		{"CAAFlagTooBig", "acme:\n  dns:\n    caa:\n      c.ctstage.test:\n      - flag: 256\n        tag: issue\n", []string{"acme.dns.caa.c.ctstage.test[0].flag: line 5", "256"}},
		{"CAAFlagNegative", "acme:\n  dns:\n    caa:\n      c.ctstage.test:\n      - flag: -1\n        tag: issue\n", []string{"acme.dns.caa.c.ctstage.test[0].flag: line 5"}},
		{"CAANotAList", "acme:\n  dns:\n    caa:\n      c.ctstage.test: {tag: issue, value: x}\n", []string{"acme.dns.caa.c.ctstage.test: line 4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), now)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestDNSValidate checks a DNS given in-process (serve.Options.DNS) by
// the file's rules.
func TestDNSValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		dns  DNS
		want string // "" when valid
	}{
		{"Zero", DNS{}, ""},
		{"Default", DefaultDNS(), ""},
		{"Full", DNS{DefaultAddresses: addrs("::1"), Hosts: map[string][]netip.Addr{"*.a.test": addrs("127.0.0.2")},
			CAA: map[string][]va.CAA{"a.test": {{Tag: "issue", Value: "x"}}}}, ""},
		{"InvalidAddr", DNS{DefaultAddresses: []netip.Addr{{}}}, "default_addresses[0]"},
		{"ZonedAddr", DNS{Hosts: map[string][]netip.Addr{"a.test": addrs("fe80::1%eth0")}}, "hosts.a.test[0]: fe80::1%eth0 has a zone"},
		{"NoHostAddrs", DNS{Hosts: map[string][]netip.Addr{"a.test": nil}}, "hosts.a.test: no addresses"},
		{"BadHost", DNS{Hosts: map[string][]netip.Addr{"a": addrs("127.0.0.2")}}, `hosts.a: "a" is not a DNS name`},
		{"DuplicateHost", DNS{Hosts: map[string][]netip.Addr{"a.test": addrs("127.0.0.2"), "A.TEST": addrs("127.0.0.3")}}, "is listed twice"},
		{"NoCAA", DNS{CAA: map[string][]va.CAA{"a.test": {}}}, "caa.a.test: no records"},
		{"BadCAATag", DNS{CAA: map[string][]va.CAA{"a.test": {{Tag: "a b"}}}}, `caa.a.test[0].tag: "a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.dns.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDNSZone checks that the zone built from a DNS answers with its
// records, that wildcards cover the names below them, and that changing
// the zone leaves the config as it was.
func TestDNSZone(t *testing.T) {
	d := DNS{
		DefaultAddresses: addrs("127.0.0.9"),
		Hosts:            map[string][]netip.Addr{"a.test": addrs("127.0.0.2"), "*.apps.test": addrs("127.0.0.4", "::1")},
		CAA:              map[string][]va.CAA{"c.test": {{Tag: "issue", Value: "other.example"}}},
	}
	z := d.Zone()
	for _, tc := range []struct {
		name string
		want []netip.Addr
	}{
		{"a.test", addrs("127.0.0.2")},
		{"A.Test.", addrs("127.0.0.2")},
		{"b.test", addrs("127.0.0.9")},
		{"x.apps.test", addrs("127.0.0.4", "::1")},
		{"y.x.apps.test", addrs("127.0.0.4", "::1")},
		{"apps.test", addrs("127.0.0.9")},
	} {
		if got := z.Addrs(tc.name); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Addrs(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := z.CAA("c.test"); !reflect.DeepEqual(got, d.CAA["c.test"]) {
		t.Errorf("CAA(c.test) = %v, want %v", got, d.CAA["c.test"])
	}
	z.SetAddrs("a.test", addrs("10.0.0.1"))
	z.SetCAA("c.test", nil)
	if !reflect.DeepEqual(d.Hosts["a.test"], addrs("127.0.0.2")) || len(d.CAA["c.test"]) != 1 {
		t.Errorf("changing the zone changed the config: %+v", d)
	}
	if got := (*DNS)(nil).Zone().Addrs("any.test"); !reflect.DeepEqual(got, addrs("127.0.0.1")) {
		t.Errorf("nil DNS: Addrs = %v, want 127.0.0.1", got)
	}
}
