// Package ctpolicy chooses the CT logs a precertificate goes to, races the
// submissions as Boulder's ctpolicy does, checks every SCT, and decides when
// the SCTs obtained satisfy the CT policy of both Chrome
// (https://googlechrome.github.io/CertificateTransparency/ct_policy.html)
// and Apple (https://support.apple.com/en-us/103214).
//
// ct-go's own ctpolicy and submission packages encode an outdated Chrome
// policy (a Google-operated log, lifetime tables in months) and cannot count
// distinct operators; this package replaces them.
package ctpolicy

import (
	"errors"
	"fmt"
	"time"
)

// ErrPolicy reports that a set of SCTs, or the logs available, cannot meet
// the policy. The error names the rule.
var ErrPolicy = errors.New("CT policy not met")

// ShortLifetime is 180 days: two SCTs suffice up to it, three beyond.
// Chrome (chrome_ct_policy_enforcer.cc) and Firefox (CTPolicyEnforcer.cpp)
// compare NotAfter - NotBefore with it, 180 days taking 2; Apple
// (support.apple.com/en-us/103214) counts NotBefore through NotAfter
// inclusive, any part of a further day a day, so there 180 days exactly
// is 181 and takes 3. Required takes the stricter.
const ShortLifetime = 180 * 24 * time.Hour

// Rules, as they are named in errors.
const (
	RuleCount       = "SCT count"          // 2 SCTs up to 180 days, 3 beyond
	RuleOperators   = "distinct operators" // SCTs from at least 2 operators
	RulePerOperator = "SCTs per operator"  // beyond 180 days, at most 2 from one operator count
	RuleRFC6962     = "RFC 6962 log"       // at least one SCT from an RFC 6962 (not static-ct-api) log
)

// Source is what the policy needs to know about one SCT: who runs the log
// that issued it and whether that log speaks RFC 6962.
type Source struct {
	Operator string
	RFC6962  bool
}

// PolicyError names the rule a set of SCTs breaks.
type PolicyError struct {
	Rule   string
	Detail string
}

func (e *PolicyError) Error() string { return fmt.Sprintf("%v: %s: %s", ErrPolicy, e.Rule, e.Detail) }
func (e *PolicyError) Unwrap() error { return ErrPolicy }

// Required is the number of SCTs a certificate of this lifetime
// (NotAfter - NotBefore, whole seconds) must carry for every browser: 2
// while Apple's inclusive validity is 180 days or less (NotAfter -
// NotBefore below 180 days), else 3.
func Required(lifetime time.Duration) int {
	if lifetime+time.Second <= ShortLifetime {
		return 2
	}
	return 3
}

// Check reports whether SCTs from srcs satisfy the union of Chrome's and
// Apple's rules for embedded SCTs in a certificate of the given lifetime:
//
//   - below 180 days: 2 SCTs from 2 distinct operators;
//   - from 180 days (Apple's 181, inclusive): 3 SCTs from at least 2 operators, of which at most 2 per
//     operator count;
//   - in both cases at least one SCT from an RFC 6962 log.
//
// The error is a *PolicyError naming the first rule broken.
func Check(lifetime time.Duration, srcs []Source) error {
	need := Required(lifetime)
	perOp := map[string]int{}
	counted, rfc6962 := 0, false
	for _, s := range srcs {
		if need > 2 && perOp[s.Operator] >= 2 {
			continue // a third SCT from one operator does not count
		}
		perOp[s.Operator]++
		counted++
		rfc6962 = rfc6962 || s.RFC6962
	}
	switch {
	case counted < need:
		detail := fmt.Sprintf("%d SCTs, want %d for a lifetime of %s", counted, need, days(lifetime))
		if need > 2 && counted < len(srcs) {
			detail += fmt.Sprintf(" (%s: at most 2 from one operator count)", RulePerOperator)
		}
		return &PolicyError{Rule: RuleCount, Detail: detail}
	case len(perOp) < 2:
		return &PolicyError{Rule: RuleOperators, Detail: fmt.Sprintf("SCTs from %d operator(s), want 2", len(perOp))}
	case !rfc6962:
		return &PolicyError{Rule: RuleRFC6962, Detail: "no SCT from an RFC 6962 log"}
	}
	return nil
}

func days(d time.Duration) string {
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}
