package va

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// CAA is one CAA record (RFC 8659).
type CAA struct {
	Flag  uint8  `json:"flag"`
	Tag   string `json:"tag"` // issue, issuewild, iodef, ...
	Value string `json:"value"`
}

// Zone is the data of the built-in DNS: TXT records set by tests (dns-01),
// addresses, and CAA records. Every name without an address record of
// its own or of a wildcard above it (see Addrs) resolves to the default
// addresses (127.0.0.1 unless configured). Names are case-insensitive,
// with or without the trailing dot. Safe for concurrent use.
type Zone struct {
	mu       sync.RWMutex
	txt      map[string][]string
	addrs    map[string][]netip.Addr
	caa      map[string][]CAA
	defaults []netip.Addr
}

// NewZone returns a Zone whose names resolve to defaults (127.0.0.1 when
// empty) and to hosts for the names it lists.
func NewZone(defaults []netip.Addr, hosts map[string][]netip.Addr) *Zone {
	if len(defaults) == 0 {
		defaults = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	z := &Zone{txt: map[string][]string{}, addrs: map[string][]netip.Addr{}, caa: map[string][]CAA{}, defaults: defaults}
	for h, a := range hosts {
		z.addrs[fqdn(h)] = a
	}
	return z
}

func fqdn(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) + "." }

// AddTXT adds a TXT value to name (a dns-01 record may hold two values: a
// wildcard's and its base name's).
func (z *Zone) AddTXT(name, value string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	k := fqdn(name)
	if !slices.Contains(z.txt[k], value) {
		z.txt[k] = append(z.txt[k], value)
	}
}

// ClearTXT removes every TXT value of name.
func (z *Zone) ClearTXT(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.txt, fqdn(name))
}

// TXT returns the TXT values of name.
func (z *Zone) TXT(name string) []string {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return slices.Clone(z.txt[fqdn(name)])
}

// SetAddrs sets the addresses of name; none restores the defaults.
func (z *Zone) SetAddrs(name string, addrs []netip.Addr) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(addrs) == 0 {
		delete(z.addrs, fqdn(name))
		return
	}
	z.addrs[fqdn(name)] = addrs
}

// Addrs returns the addresses of name: its own, else those of the
// closest wildcard above it ("*.b.example.com", then "*.example.com", ...
// for a.b.example.com; a wildcard does not cover its own parent), else
// the defaults.
func (z *Zone) Addrs(name string) []netip.Addr {
	z.mu.RLock()
	defer z.mu.RUnlock()
	k := fqdn(name)
	if a, ok := z.addrs[k]; ok {
		return slices.Clone(a)
	}
	for _, p, ok := strings.Cut(k, "."); ok && p != ""; _, p, ok = strings.Cut(p, ".") {
		if a, found := z.addrs["*."+p]; found {
			return slices.Clone(a)
		}
	}
	return slices.Clone(z.defaults)
}

// SetCAA sets the CAA records of name; none removes them.
func (z *Zone) SetCAA(name string, recs []CAA) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(recs) == 0 {
		delete(z.caa, fqdn(name))
		return
	}
	z.caa[fqdn(name)] = recs
}

// CAA returns the CAA records of name itself (no tree climbing).
func (z *Zone) CAA(name string) []CAA {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return slices.Clone(z.caa[fqdn(name)])
}
