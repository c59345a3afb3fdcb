package sctverify

import (
	"fmt"
	"time"
)

// Policies this package evaluates, as --policy names them.
const (
	PolicyChrome  = "chrome"
	PolicyApple   = "apple"
	PolicyMozilla = "mozilla"
)

// AllPolicies in the order reports list them.
var AllPolicies = []string{PolicyChrome, PolicyApple, PolicyMozilla}

// Rules, as verdicts name them.
const (
	RuleEmbeddedCount    = "embedded: SCTs from distinct logs"         // Chrome, Mozilla: 2 up to 180 days, 3 above; Apple: 2 / 3
	RuleEmbeddedCurrent  = "embedded: one SCT from a current log"      // at least one embedded SCT from a Qualified/Usable/ReadOnly log
	RuleOperators        = "SCTs from distinct operators"              // Chrome, Mozilla: 2 operators among the counted SCTs
	RulePerOperator      = "embedded: SCTs per operator"               // Apple: at most 1 (<= 180 days) or 2 per operator count
	RuleDeliveredCount   = "TLS/OCSP: SCTs from distinct current logs" // Chrome, Mozilla: 2 TLS/OCSP SCTs; Apple: 2 with one via TLS/OCSP
	RuleRFC6962          = "RFC 6962 log"                              // Apple: at least one SCT from an RFC 6962 log
	RuleLifetime         = "lifetime"                                  // Apple: no more than 398 days
	RuleApprovedMinimum  = "two SCTs from approved logs"               // Apple: at least 2 SCTs overall
	RuleCompliantEmbed   = "embedded SCTs meet the policy"             // verdict when compliant through embedded SCTs
	RuleCompliantDeliver = "TLS/OCSP SCTs meet the policy"             // verdict when compliant through TLS/OCSP SCTs
)

// Day is the policies' day: 86,400 seconds.
const Day = 24 * time.Hour

// Verdict is one policy's decision, with the rule that decided it.
type Verdict struct {
	Policy    string `json:"policy"`
	Compliant bool   `json:"compliant"`
	Rule      string `json:"rule"`
	Detail    string `json:"detail"`
}

// PolicySCT is what a policy needs to know of one valid, distinct SCT.
type PolicySCT struct {
	Log      *Log
	Source   string    // SourceEmbedded, SourceTLS or SourceOCSP
	Time     time.Time // the SCT's timestamp
	Operator string    // the log's operator at Time
}

// current reports whether the log is Qualified, Usable or ReadOnly now
// (Chrome's "at time of check", Mozilla's Admissible, Apple's currently
// approved).
func current(l *Log) bool {
	return l.State == StateQualified || l.State == StateUsable || l.State == StateReadOnly
}

// counts reports whether an SCT counts at all: from a current log, or from
// a Retired log and issued before its retirement.
func counts(s PolicySCT) bool {
	return current(s.Log) || (s.Log.State == StateRetired && s.Time.Before(s.Log.StateTime))
}

// Evaluate applies one policy to the valid SCTs of a certificate valid
// from notBefore to notAfter (inclusive).
func Evaluate(policy string, notBefore, notAfter time.Time, scts []PolicySCT) Verdict {
	var v Verdict
	switch policy {
	case PolicyChrome, PolicyMozilla:
		v = evalChrome(notAfter.Sub(notBefore), scts)
	case PolicyApple:
		v = evalApple(notAfter.Sub(notBefore)+time.Second, scts)
	default:
		v = Verdict{Rule: "policy", Detail: fmt.Sprintf("unknown policy %q", policy)}
	}
	v.Policy = policy
	return v
}

// ChromeRequired is the number of embedded SCTs Chrome (and Mozilla)
// require for a lifetime of NotAfter - NotBefore: 2 up to 180 days, 3 above.
func ChromeRequired(lifetime time.Duration) int {
	if lifetime <= 180*Day {
		return 2
	}
	return 3
}

func evalChrome(lifetime time.Duration, scts []PolicySCT) Verdict {
	emb, del := split(scts)
	need := ChromeRequired(lifetime)
	embV := func() Verdict {
		var counted []PolicySCT
		hasCurrent := false
		for _, s := range distinctLogs(emb) {
			if counts(s) {
				counted = append(counted, s)
				hasCurrent = hasCurrent || current(s.Log)
			}
		}
		switch {
		case len(counted) < need:
			return Verdict{Rule: RuleEmbeddedCount, Detail: fmt.Sprintf("%d embedded SCTs from distinct qualifying logs, want %d for a lifetime of %s", len(counted), need, days(lifetime))}
		case !hasCurrent:
			return Verdict{Rule: RuleEmbeddedCurrent, Detail: "no embedded SCT from a Qualified, Usable or ReadOnly log"}
		case operators(counted) < 2:
			return Verdict{Rule: RuleOperators, Detail: fmt.Sprintf("embedded SCTs from %d operator(s), want 2", operators(counted))}
		}
		return Verdict{Compliant: true, Rule: RuleCompliantEmbed, Detail: fmt.Sprintf("%d SCTs from distinct logs of %d operators, %d required for a lifetime of %s", len(counted), operators(counted), need, days(lifetime))}
	}
	delV := func() Verdict {
		var counted []PolicySCT
		for _, s := range distinctLogs(del) {
			if current(s.Log) {
				counted = append(counted, s)
			}
		}
		switch {
		case len(counted) < 2:
			return Verdict{Rule: RuleDeliveredCount, Detail: fmt.Sprintf("%d TLS/OCSP SCTs from distinct current logs, want 2", len(counted))}
		case operators(counted) < 2:
			return Verdict{Rule: RuleOperators, Detail: fmt.Sprintf("TLS/OCSP SCTs from %d operator(s), want 2", operators(counted))}
		}
		return Verdict{Compliant: true, Rule: RuleCompliantDeliver, Detail: fmt.Sprintf("%d TLS/OCSP SCTs from distinct current logs of %d operators", len(counted), operators(counted))}
	}
	return pick(emb, del, embV, delV)
}

// pick returns the verdict of the path that passes, else the failure of
// the path the certificate tried: embedded when it has embedded SCTs.
func pick(emb, del []PolicySCT, embV, delV func() Verdict) Verdict {
	e := embV()
	if e.Compliant {
		return e
	}
	d := delV()
	if d.Compliant || (len(emb) == 0 && len(del) > 0) {
		return d
	}
	return e
}

// AppleDays is a lifetime in Apple's days: the validity period is
// NotBefore through NotAfter inclusive (RFC 5280 4.1.2.5), and any part
// of a day beyond whole days of 86,400 s counts as a further day.
func AppleDays(inclusive time.Duration) int {
	return int((inclusive + Day - 1) / Day)
}

func evalApple(inclusive time.Duration, scts []PolicySCT) Verdict {
	d := AppleDays(inclusive)
	if d > 398 {
		return Verdict{Rule: RuleLifetime, Detail: fmt.Sprintf("validity of %d days (NotBefore through NotAfter inclusive), more than 398", d)}
	}
	var approved []PolicySCT // once or currently approved
	for _, s := range distinctLogs(scts) {
		if counts(s) {
			approved = append(approved, s)
		}
	}
	if len(approved) < 2 {
		return Verdict{Rule: RuleApprovedMinimum, Detail: fmt.Sprintf("%d SCTs from distinct once- or currently approved logs, want 2", len(approved))}
	}
	rfc := false
	for _, s := range approved {
		rfc = rfc || !s.Log.Tiled
	}
	if !rfc {
		return Verdict{Rule: RuleRFC6962, Detail: "no SCT from an RFC 6962 log"}
	}
	emb, del := split(approved)
	embV := func() Verdict { return appleEmbedded(d, emb) }
	delV := func() Verdict {
		var cur []PolicySCT
		viaTLS := false
		for _, s := range approved {
			if current(s.Log) {
				cur = append(cur, s)
				viaTLS = viaTLS || s.Source != SourceEmbedded
			}
		}
		if len(cur) < 2 || !viaTLS {
			return Verdict{Rule: RuleDeliveredCount, Detail: fmt.Sprintf("%d SCTs from distinct currently approved logs (TLS/OCSP among them: %v), want 2 with one via TLS or OCSP", len(cur), viaTLS)}
		}
		return Verdict{Compliant: true, Rule: RuleCompliantDeliver, Detail: fmt.Sprintf("%d SCTs from distinct currently approved logs, one or more via TLS/OCSP", len(cur))}
	}
	return pick(emb, del, embV, delV)
}

func appleEmbedded(d int, emb []PolicySCT) Verdict {
	need, perOp := 2, 1
	if d > 180 {
		need, perOp = 3, 2
	}
	hasCurrent := false
	byOp := map[string]int{}
	counted, capped := 0, 0
	for _, s := range emb {
		hasCurrent = hasCurrent || current(s.Log)
		if byOp[s.Operator] >= perOp {
			capped++
			continue
		}
		byOp[s.Operator]++
		counted++
	}
	switch {
	case !hasCurrent:
		return Verdict{Rule: RuleEmbeddedCurrent, Detail: "no embedded SCT from a currently approved log"}
	case counted < need && capped > 0:
		return Verdict{Rule: RulePerOperator, Detail: fmt.Sprintf("%d embedded SCTs count (%d over the limit of %d per operator), want %d for %d days", counted, capped, perOp, need, d)}
	case counted < need:
		return Verdict{Rule: RuleEmbeddedCount, Detail: fmt.Sprintf("%d embedded SCTs from distinct approved logs, want %d for %d days", counted, need, d)}
	}
	return Verdict{Compliant: true, Rule: RuleCompliantEmbed, Detail: fmt.Sprintf("%d SCTs from distinct logs count (at most %d per operator), %d required for %d days", counted, perOp, need, d)}
}

func split(scts []PolicySCT) (emb, del []PolicySCT) {
	for _, s := range scts {
		if s.Source == SourceEmbedded {
			emb = append(emb, s)
		} else {
			del = append(del, s)
		}
	}
	return emb, del
}

// distinctLogs keeps the first SCT of each log.
func distinctLogs(scts []PolicySCT) []PolicySCT {
	seen := map[[32]byte]bool{}
	var out []PolicySCT
	for _, s := range scts {
		if !seen[s.Log.ID] {
			seen[s.Log.ID] = true
			out = append(out, s)
		}
	}
	return out
}

func operators(scts []PolicySCT) int {
	ops := map[string]bool{}
	for _, s := range scts {
		ops[s.Operator] = true
	}
	return len(ops)
}

func days(d time.Duration) string {
	if d%Day == 0 {
		return fmt.Sprintf("%d days", d/Day)
	}
	return fmt.Sprintf("%d days %s", d/Day, d%Day)
}
