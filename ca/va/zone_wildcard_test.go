package va

import (
	"net/netip"
	"slices"
	"testing"
)

// TestZoneWildcardAddrs checks that a "*." name answers for the names
// below it that have no addresses of their own, the closest wildcard
// first, and not for its own parent.
func TestZoneWildcardAddrs(t *testing.T) {
	a := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	z := NewZone(a("127.0.0.9"), map[string][]netip.Addr{
		"*.example.test":   a("127.0.0.2"),
		"*.b.example.test": a("127.0.0.3"),
		"c.example.test":   a("127.0.0.4"),
	})
	z.SetAddrs("*.mgmt.test.", a("::1")) // the management API's /add-a takes wildcards too
	for _, tc := range []struct {
		name string
		want []netip.Addr
	}{
		{"x.example.test", a("127.0.0.2")},
		{"X.Example.Test.", a("127.0.0.2")},
		{"y.x.example.test", a("127.0.0.2")},
		{"x.b.example.test", a("127.0.0.3")}, // the closer wildcard wins
		{"b.example.test", a("127.0.0.2")},
		{"c.example.test", a("127.0.0.4")}, // a name's own record wins
		{"d.c.example.test", a("127.0.0.2")},
		{"*.example.test", a("127.0.0.2")},
		{"example.test", a("127.0.0.9")}, // not covered by *.example.test
		{"other.test", a("127.0.0.9")},
		{"x.mgmt.test", a("::1")},
		{"test", a("127.0.0.9")},
		{".", a("127.0.0.9")},
		{"", a("127.0.0.9")},
	} {
		if got := z.Addrs(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("Addrs(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	z.SetAddrs("*.example.test", nil)
	if got := z.Addrs("x.example.test"); !slices.Equal(got, a("127.0.0.9")) {
		t.Errorf("after clearing the wildcard: Addrs(x.example.test) = %v, want the default", got)
	}
}
