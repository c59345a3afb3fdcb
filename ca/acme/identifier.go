package acme

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ctstage/ctstage/ca"
)

const maxIdentifiers = 100 // Let's Encrypt's limit

// checkIdentifiers normalizes an order's identifiers (lower case, no
// duplicates) and checks each: a DNS name of LDH labels, optionally with
// one leading "*." label, or an IP address (RFC 8738) when the profile
// allows them. Refusals of several identifiers come back as subproblems.
func checkIdentifiers(ids []Identifier, profile string) ([]Identifier, error) {
	if len(ids) == 0 {
		return nil, malformed("an order needs at least one identifier")
	}
	if len(ids) > maxIdentifiers {
		return nil, rejectedIdentifier("%d identifiers; at most %d", len(ids), maxIdentifiers)
	}
	var out []Identifier
	var probs []*Problem
	for _, id := range ids {
		n, p := checkIdentifier(id, profile)
		if p != nil {
			probs = append(probs, p.WithIdentifier(id))
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(probs) > 0 {
		return nil, compoundOf(probs)
	}
	return out, nil
}

func checkIdentifier(id Identifier, profile string) (Identifier, *Problem) {
	switch id.Type {
	case "dns":
		v := strings.ToLower(id.Value)
		if _, err := netip.ParseAddr(v); err == nil {
			return id, malformed("%q is an IP address; use an identifier of type ip", id.Value)
		}
		err := ca.CheckDNSName(v)
		if err == nil {
			err = ca.CheckPublicName(v, time.Now())
		}
		if err != nil {
			return id, rejectedIdentifier("%q: %v", id.Value, err)
		}
		return Identifier{Type: "dns", Value: v}, nil
	case "ip":
		a, err := netip.ParseAddr(id.Value)
		if err != nil || a.Zone() != "" {
			return id, malformed("%q is not an IP address", id.Value)
		}
		if !ca.Profiles[profile].IPAddresses {
			return id, rejectedIdentifier("profile %s does not allow IP addresses (shortlived does)", profile)
		}
		return Identifier{Type: "ip", Value: a.Unmap().String()}, nil
	}
	return id, unsupportedIdentifier("identifier type %q is not supported (dns, ip)", id.Type)
}

// names are the identifiers' values, as the CA takes them.
func names(ids []Identifier) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Value
	}
	return out
}
