package va

import (
	"crypto/x509/pkix"
	"slices"
	"strings"
)

type pkixExt = pkix.Extension

// CheckCAA checks the CAA records (RFC 8659) of name, climbing to its
// parents until a name has any: the first such set is relevant. An
// unknown property with the critical flag anywhere in the set forbids
// issuance (section 4.1). Otherwise issuance is allowed when the set has
// no issue property (for a wildcard: no issuewild, or when it has none,
// no issue), or one whose issuer domain name is one of CAAIdentities,
// compared without regard to case. IP addresses have no CAA.
func (v *VA) CheckCAA(name string, wildcard bool) error {
	for n := strings.TrimPrefix(name, "*."); n != ""; n = parent(n) {
		recs := v.opts.Zone.CAA(n)
		if len(recs) > 0 {
			return v.checkCAASet(n, name, recs, wildcard)
		}
	}
	return nil
}

func parent(n string) string {
	_, p, _ := strings.Cut(n, ".")
	return p
}

// checkCAASet checks the relevant CAA set, found at name at, for name.
func (v *VA) checkCAASet(at, name string, recs []CAA, wildcard bool) error {
	tag := "issue"
	if wildcard && slices.ContainsFunc(recs, func(r CAA) bool { return strings.EqualFold(r.Tag, "issuewild") }) {
		tag = "issuewild"
	}
	for _, r := range recs {
		t := strings.ToLower(r.Tag)
		if r.Flag&128 != 0 && t != "issue" && t != "issuewild" && t != "iodef" {
			return fail(KindCAA, "CAA at %s (for %s) has an unknown critical property %q", at, name, r.Tag)
		}
	}
	relevant := false
	for _, r := range recs {
		if !strings.EqualFold(r.Tag, tag) {
			continue
		}
		relevant = true
		id, _, _ := strings.Cut(r.Value, ";")
		id = strings.TrimSpace(id)
		if slices.ContainsFunc(v.opts.CAAIdentities, func(c string) bool { return strings.EqualFold(c, id) }) {
			return nil
		}
	}
	if !relevant {
		return nil
	}
	return fail(KindCAA, "CAA %s records at %s do not allow %s to issue for %s",
		tag, at, strings.Join(v.opts.CAAIdentities, " or "), name)
}
