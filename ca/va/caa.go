package va

import (
	"crypto/x509/pkix"
	"slices"
	"strings"
)

type pkixExt = pkix.Extension

// CheckCAA checks the CAA records (RFC 8659) of name, climbing to its
// parents until a name has any: the first such set is relevant. Issuance
// is allowed when it has no issue (or, for a wildcard, issuewild)
// property, or one naming an identity of CAAIdentities. An unknown
// critical property forbids issuance. IP addresses have no CAA.
func (v *VA) CheckCAA(name string, wildcard bool) error {
	name = strings.TrimPrefix(name, "*.")
	for n := name; n != ""; n = parent(n) {
		recs := v.opts.Zone.CAA(n)
		if len(recs) > 0 {
			return v.checkCAASet(name, recs, wildcard)
		}
	}
	return nil
}

func parent(n string) string {
	_, p, _ := strings.Cut(n, ".")
	return p
}

func (v *VA) checkCAASet(name string, recs []CAA, wildcard bool) error {
	tag := "issue"
	if wildcard && slices.ContainsFunc(recs, func(r CAA) bool { return strings.EqualFold(r.Tag, "issuewild") }) {
		tag = "issuewild"
	}
	relevant := false
	for _, r := range recs {
		t := strings.ToLower(r.Tag)
		if r.Flag&128 != 0 && t != "issue" && t != "issuewild" && t != "iodef" {
			return fail(KindCAA, "CAA for %s has an unknown critical property %q", name, r.Tag)
		}
		if t != tag {
			continue
		}
		relevant = true
		id, _, _ := strings.Cut(r.Value, ";")
		if slices.Contains(v.opts.CAAIdentities, strings.TrimSpace(id)) {
			return nil
		}
	}
	if !relevant {
		return nil
	}
	return fail(KindCAA, "CAA records for %s do not allow %v to issue", name, v.opts.CAAIdentities)
}
