package sctverify

import (
	"fmt"
	"slices"
	"sort"
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

// Rules, as verdicts name them. docs/verify.md has the table of which
// browser applies which, with its source and date.
const (
	RuleEmbeddedCount    = "embedded: SCTs from distinct logs"         // 2 up to 180 days, 3 above (Apple: inclusive days)
	RuleEmbeddedCurrent  = "embedded: one SCT from a current log"      // at least one embedded SCT from a log current at time of check
	RuleOperators        = "SCTs from distinct operators"              // 2 operators among the SCTs counted
	RulePerOperator      = "embedded: SCTs per operator"               // Apple: at most 1 (<= 180 days) or 2 per operator count
	RuleDeliveredCount   = "TLS/OCSP: SCTs from distinct current logs" // the TLS/OCSP path
	RuleRFC6962          = "RFC 6962 log"                              // at least one SCT from an RFC 6962 log (Apple; Chrome until 2026-04-15)
	RuleLifetime         = "lifetime"                                  // Apple: no more than 398 days
	RuleApprovedMinimum  = "two SCTs from approved logs"               // Apple: at least 2 SCTs overall
	RuleCompliantEmbed   = "embedded SCTs meet the policy"             // verdict when compliant through embedded SCTs
	RuleCompliantDeliver = "TLS/OCSP SCTs meet the policy"             // verdict when compliant through TLS/OCSP SCTs (Chrome: pooled with embedded ones)
)

// Day is the policies' day: 86,400 seconds.
const Day = 24 * time.Hour

// Dates and versions the rules change at.
var (
	// ChromeNoOCSPDate is when Chrome 148, which takes no OCSP-delivered
	// SCTs, became current (CT policy change of 2026-03-20).
	ChromeNoOCSPDate = time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	// ChromeNoRFC6962RuleDate is when Chrome dropped its rule that one SCT
	// come from an RFC 6962 log (2026-04-15).
	ChromeNoRFC6962RuleDate = time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)
)

// ChromeNoOCSPVersion is the first Chrome that takes no OCSP SCTs.
const ChromeNoOCSPVersion = 148

// Staleness bounds: each browser stops enforcing CT on a log list this
// many whole days old.
const (
	ChromeListDays  = 70 // chrome_ct_policy_enforcer.cc IsLogDataTimely: InDays() < 70
	AppleListDays   = 60
	MozillaListDays = 70 // ten weeks
)

// Check is the time and the browser of an evaluation.
type Check struct {
	// Now is the time of check.
	Now time.Time
	// ListTime is the log list's log_list_timestamp; zero when it has
	// none, which is enforced.
	ListTime time.Time
	// ChromeVersion is the Chrome whose rules apply; 0 is the Chrome
	// current at Now (147 before ChromeNoOCSPDate, 148 from it).
	ChromeVersion int
}

func (c Check) chromeVersion() int {
	if c.ChromeVersion != 0 {
		return c.ChromeVersion
	}
	if c.Now.Before(ChromeNoOCSPDate) {
		return ChromeNoOCSPVersion - 1
	}
	return ChromeNoOCSPVersion
}

// Verdict is one policy's decision, with the rule that decided it and
// what each SCT counted for.
type Verdict struct {
	Policy string `json:"policy"`
	// Compliant is the policy's decision on the SCTs.
	Compliant bool `json:"compliant"`
	// Enforced is false when the browser would not enforce CT at the time
	// of check (its log list is too old): the certificate is then not
	// refused, whatever Compliant says.
	Enforced bool   `json:"enforced"`
	Rule     string `json:"rule"`
	Detail   string `json:"detail"`
	// Counted are the SCTs that counted towards the decision, NotCounted
	// the others, each with why.
	Counted    []SCTRef `json:"counted"`
	NotCounted []SCTRef `json:"not_counted"`
}

// OK reports whether the browser accepts the certificate: compliant, or
// not enforced.
func (v Verdict) OK() bool { return v.Compliant || !v.Enforced }

// SCTRef names one SCT of the report and what a policy made of it.
type SCTRef struct {
	Source string `json:"source"`
	Index  int    `json:"index"`
	Log    string `json:"log"`
	Reason string `json:"reason,omitempty"`
}

// PolicySCT is what a policy needs to know of one valid, distinct SCT.
type PolicySCT struct {
	Log    *Log
	Source string // SourceEmbedded, SourceTLS or SourceOCSP
	Index  int    // in its source, 1-based
	Time   time.Time
	// LeafIndex is, for an SCT of a tiled log, whether it carries a valid
	// leaf_index extension (c2sp.org/static-ct-api: it MUST).
	LeafIndex bool
}

// embedded reports whether the SCT counts as embedded: it is, or it was
// given for a precertificate, whose final certificate embeds it.
func (s PolicySCT) embedded() bool { return s.Source == SourceEmbedded || s.Source == SourcePrecert }

func (s PolicySCT) notEmbedded() bool { return !s.embedded() }

func (s PolicySCT) ref(reason string) SCTRef {
	return SCTRef{Source: s.Source, Index: s.Index, Log: s.Log.Description, Reason: reason}
}

// StateAt is the log's state at t as the list tells it: its state, or
// usable while a readonly, retired or rejected state is still ahead of t
// ("retires at").
func (l *Log) StateAt(t time.Time) string {
	switch l.State {
	case StateReadOnly, StateRetired, StateRejected:
		if t.Before(l.StateTime) {
			return StateUsable
		}
	}
	return l.State
}

// current reports whether a log in state st is one the browsers count as
// current at time of check: Qualified, Usable or ReadOnly (Chrome's
// "qualified at time of check", Mozilla's Admissible, Apple's currently
// approved).
func current(st string) bool {
	return st == StateQualified || st == StateUsable || st == StateReadOnly
}

// known reports whether the browsers use a log in state st at all:
// current ones and retired ones. Pending and rejected logs (and logs
// without a state) are not in the browsers' log sets.
func known(st string) bool { return current(st) || st == StateRetired }

// Evaluate applies one policy to the valid SCTs of a certificate valid
// from notBefore through notAfter.
func Evaluate(policy string, notBefore, notAfter time.Time, scts []PolicySCT, chk Check) Verdict {
	var v Verdict
	var stale int
	switch policy {
	case PolicyChrome:
		v, stale = evalChrome(notBefore, notAfter, scts, chk), ChromeListDays
	case PolicyMozilla:
		v, stale = evalMozilla(notBefore, notAfter, scts, chk), MozillaListDays
	case PolicyApple:
		v, stale = evalApple(notBefore, notAfter, scts, chk), AppleListDays
	default:
		return Verdict{Policy: policy, Rule: "policy", Detail: fmt.Sprintf("unknown policy %q", policy), Enforced: true}
	}
	v.Policy, v.Enforced = policy, true
	if !chk.ListTime.IsZero() {
		if age := int(chk.Now.Sub(chk.ListTime) / Day); age >= stale {
			v.Enforced = false
			v.Detail = fmt.Sprintf("not enforced: the log list is %d days old, and %s stops enforcing CT at %d; %s", age, policy, stale, v.Detail)
		}
	}
	sortRefs(v.Counted)
	sortRefs(v.NotCounted)
	return v
}

func sortRefs(r []SCTRef) {
	order := map[string]int{SourceEmbedded: 0, SourcePrecert: 0, SourceTLS: 1, SourceOCSP: 2}
	sort.SliceStable(r, func(i, j int) bool {
		if r[i].Source != r[j].Source {
			return order[r[i].Source] < order[r[j].Source]
		}
		return r[i].Index < r[j].Index
	})
}

// ChromeRequired is the number of embedded SCTs Chrome and Firefox
// require for a lifetime of NotAfter - NotBefore: 2 up to 180 days, 3
// above (chrome_ct_policy_enforcer.cc: lifetime > base::Days(180)).
func ChromeRequired(lifetime time.Duration) int {
	if lifetime > 180*Day {
		return 3
	}
	return 2
}

// tally is one evaluation's account of each SCT.
type tally struct {
	counted, not map[int]SCTRef // by position in the SCT list
}

func newTally() *tally { return &tally{counted: map[int]SCTRef{}, not: map[int]SCTRef{}} }

func (t *tally) count(i int, s PolicySCT, why string) { t.counted[i] = s.ref(why); delete(t.not, i) }
func (t *tally) skip(i int, s PolicySCT, why string) {
	if _, ok := t.counted[i]; !ok {
		t.not[i] = s.ref(why)
	}
}

func (t *tally) fill(v *Verdict) {
	for _, r := range t.counted {
		v.Counted = append(v.Counted, r)
	}
	for _, r := range t.not {
		v.NotCounted = append(v.NotCounted, r)
	}
	if v.Counted == nil {
		v.Counted = []SCTRef{}
	}
	if v.NotCounted == nil {
		v.NotCounted = []SCTRef{}
	}
}

// skipped is why a browser does not use an SCT at all, or "".
func skipped(s PolicySCT, st string) string {
	switch {
	case !known(st) && st == "":
		return "the log list gives the log no state"
	case !known(st):
		return fmt.Sprintf("the log is %s at time of check: browsers do not use it", st)
	case s.Log.Tiled && !s.LeafIndex:
		return "a static-ct-api log's SCT without a valid leaf_index extension"
	}
	return ""
}

// evalChrome is Chromium's ChromeCTPolicyEnforcer::CheckCTPolicyCompliance
// (components/certificate_transparency/chrome_ct_policy_enforcer.cc), with
// the changes of 2026: no OCSP SCTs from Chrome 148, and no RFC 6962 rule
// from 2026-04-15.
func evalChrome(notBefore, notAfter time.Time, scts []PolicySCT, chk Check) (v Verdict) {
	t := newTally()
	defer func() { t.fill(&v) }()
	version := chk.chromeVersion()
	needRFC6962 := chk.Now.Before(ChromeNoRFC6962RuleDate)
	type considered struct {
		i    int
		s    PolicySCT
		disq bool // the log is retired at time of check
	}
	var cs []considered
	for i, s := range scts {
		st := s.Log.StateAt(chk.Now)
		if why := skipped(s, st); why != "" {
			t.skip(i, s, why)
			continue
		}
		if s.Source == SourceOCSP && version >= ChromeNoOCSPVersion {
			t.skip(i, s, fmt.Sprintf("Chrome %d takes no OCSP-delivered SCTs (from Chrome %d)", version, ChromeNoOCSPVersion))
			continue
		}
		cs = append(cs, considered{i, s, st == StateRetired})
	}
	// The issuance date is the earliest SCT of a log not retired, of any
	// delivery (Chromium: the CA gets the benefit of the doubt).
	issuance := time.Time{}
	for _, c := range cs {
		if !c.disq && (issuance.IsZero() || c.s.Time.Before(issuance)) {
			issuance = c.s.Time
		}
	}
	hasEmbedded, hasDelivered, rfc6962 := false, false, false
	embeddedLogs := map[[32]byte]bool{}
	ops := map[string]bool{}
	for _, c := range cs {
		s := c.s
		if c.disq && s.notEmbedded() {
			t.skip(c.i, s, "delivered over TLS/OCSP by a log retired at time of check")
			continue
		}
		if s.notEmbedded() {
			hasDelivered = true
			t.count(c.i, s, "")
		} else {
			hasEmbedded = hasEmbedded || !c.disq
			dd := s.Log.StateTime
			switch {
			case !c.disq:
				embeddedLogs[s.Log.ID] = true
				t.count(c.i, s, "")
			case !issuance.IsZero() && issuance.Before(dd) && s.Time.Before(dd):
				embeddedLogs[s.Log.ID] = true
				t.count(c.i, s, "from a retired log, before its retirement")
			default:
				t.skip(c.i, s, fmt.Sprintf("from a log retired at %s, and the SCT or the issuance (earliest SCT %s) is not before it; it counts for operator diversity only",
					dd.UTC().Format(time.RFC3339), stamp(issuance)))
			}
		}
		ops[s.Log.OperatorAt(s.Time)] = true
		rfc6962 = rfc6962 || !s.Log.Tiled
	}
	diverse := len(ops) >= 2
	rfcOK := !needRFC6962 || rfc6962
	if hasDelivered && diverse && rfcOK {
		v = Verdict{Compliant: true, Rule: RuleCompliantDeliver, Detail: fmt.Sprintf("a TLS/OCSP SCT from a current log, and SCTs of %d operators by any delivery", len(ops))}
		return v
	}
	lifetime := notAfter.Sub(notBefore)
	need := ChromeRequired(lifetime)
	switch {
	case !hasEmbedded && hasDelivered:
		v = Verdict{Rule: RuleOperators, Detail: fmt.Sprintf("TLS/OCSP SCTs and no embedded SCT from a current log; SCTs of %d operator(s) by any delivery, want 2", len(ops))}
	case !hasEmbedded:
		v = Verdict{Rule: RuleEmbeddedCount, Detail: fmt.Sprintf("no embedded SCT from a current log, and no TLS/OCSP SCT; want %d embedded SCTs for a lifetime of %s", need, days(lifetime))}
	case !diverse:
		v = Verdict{Rule: RuleOperators, Detail: fmt.Sprintf("SCTs of %d operator(s) at their time, want 2", len(ops))}
	case !rfcOK:
		v = Verdict{Rule: RuleRFC6962, Detail: "no SCT from an RFC 6962 log (Chrome's rule until 2026-04-15)"}
	case len(embeddedLogs) < need:
		v = Verdict{Rule: RuleEmbeddedCount, Detail: fmt.Sprintf("embedded SCTs from %d distinct qualifying logs, want %d for a lifetime of %s", len(embeddedLogs), need, days(lifetime))}
	default:
		v = Verdict{Compliant: true, Rule: RuleCompliantEmbed, Detail: fmt.Sprintf("embedded SCTs from %d distinct logs, %d operators; %d required for a lifetime of %s", len(embeddedLogs), len(ops), need, days(lifetime))}
	}
	return v
}

// evalMozilla is Firefox's CheckCTPolicyCompliance
// (security/ct/CTPolicyEnforcer.cpp): the TLS/OCSP path on its own, then
// the embedded path; operators are the logs' current ones.
func evalMozilla(notBefore, notAfter time.Time, scts []PolicySCT, chk Check) (v Verdict) {
	t := newTally()
	defer func() { t.fill(&v) }()
	type considered struct {
		i  int
		s  PolicySCT
		st string
	}
	var cs []considered
	issuance := time.Time{} // the earliest SCT of an admissible log
	for i, s := range scts {
		st := s.Log.StateAt(chk.Now)
		if why := skipped(s, st); why != "" {
			t.skip(i, s, why)
			continue
		}
		cs = append(cs, considered{i, s, st})
		if current(st) && (issuance.IsZero() || s.Time.Before(issuance)) {
			issuance = s.Time
		}
	}
	// TLS/OCSP: 2 SCTs from admissible logs, 2 logs, 2 operators.
	dn, dlogs, dops := 0, map[[32]byte]bool{}, map[string]bool{}
	for _, c := range cs {
		if c.s.notEmbedded() && current(c.st) {
			dn++
			dlogs[c.s.Log.ID], dops[c.s.Log.Operator] = true, true
		}
	}
	if dn >= 2 && len(dlogs) >= 2 && len(dops) >= 2 {
		for _, c := range cs {
			if c.s.notEmbedded() && current(c.st) {
				t.count(c.i, c.s, "")
			} else {
				t.skip(c.i, c.s, "the TLS/OCSP path decided")
			}
		}
		v = Verdict{Compliant: true, Rule: RuleCompliantDeliver, Detail: fmt.Sprintf("%d TLS/OCSP SCTs from %d admissible logs of %d operators", dn, len(dlogs), len(dops))}
		return v
	}
	lifetime := notAfter.Sub(notBefore)
	need := ChromeRequired(lifetime)
	admissible, qualified := 0, 0
	logs, ops := map[[32]byte]bool{}, map[string]bool{}
	for _, c := range cs {
		s := c.s
		if s.notEmbedded() {
			t.skip(c.i, s, "Firefox does not pool TLS/OCSP SCTs with embedded ones")
			continue
		}
		if c.st == StateRetired {
			rt := s.Log.StateTime
			if issuance.IsZero() || !issuance.Before(rt) || !s.Time.Before(rt) {
				t.skip(c.i, s, fmt.Sprintf("from a log retired at %s, and the SCT or the issuance (earliest SCT %s) is not before it", rt.UTC().Format(time.RFC3339), stamp(issuance)))
				continue
			}
		} else {
			admissible++
		}
		qualified++
		logs[s.Log.ID], ops[s.Log.Operator] = true, true
		t.count(c.i, s, "")
	}
	switch {
	case admissible < 1:
		v = Verdict{Rule: RuleEmbeddedCurrent, Detail: "no embedded SCT from an admissible (current) log"}
	case qualified < need:
		v = Verdict{Rule: RuleEmbeddedCount, Detail: fmt.Sprintf("%d embedded SCTs from once or currently admissible logs, want %d for a lifetime of %s", qualified, need, days(lifetime))}
	case len(logs) < need:
		v = Verdict{Rule: RuleEmbeddedCount, Detail: fmt.Sprintf("embedded SCTs from %d distinct logs, want %d for a lifetime of %s", len(logs), need, days(lifetime))}
	case len(ops) < 2:
		v = Verdict{Rule: RuleOperators, Detail: fmt.Sprintf("embedded SCTs from %d operator(s) (their current operators), want 2", len(ops))}
	default:
		v = Verdict{Compliant: true, Rule: RuleCompliantEmbed, Detail: fmt.Sprintf("embedded SCTs from %d distinct logs of %d operators; %d required for a lifetime of %s", len(logs), len(ops), need, days(lifetime))}
	}
	return v
}

// AppleDays is a lifetime in Apple's days: the validity period is
// NotBefore through NotAfter inclusive (RFC 5280 4.1.2.5), and any part
// of a day beyond whole days of 86,400 s counts as a further day.
func AppleDays(inclusive time.Duration) int {
	return int((inclusive + Day - 1) / Day)
}

// evalApple is Apple's CT policy (support.apple.com/en-us/103214): 2 SCTs
// from once or currently approved logs, one SCT from an RFC 6962 log, and
// either 2 SCTs from currently approved logs with one over TLS or OCSP,
// or embedded SCTs by lifetime with a cap per operator.
func evalApple(notBefore, notAfter time.Time, scts []PolicySCT, chk Check) (v Verdict) {
	t := newTally()
	defer func() { t.fill(&v) }()
	d := AppleDays(notAfter.Sub(notBefore) + time.Second)
	if d > 398 {
		for i, s := range scts {
			t.skip(i, s, "the certificate's lifetime is over 398 days")
		}
		v = Verdict{Rule: RuleLifetime, Detail: fmt.Sprintf("validity of %d days (NotBefore through NotAfter inclusive), more than 398", d)}
		return v
	}
	type approved struct {
		i   int
		s   PolicySCT
		cur bool // from a currently approved log
	}
	var as []approved
	for i, s := range scts {
		st := s.Log.StateAt(chk.Now)
		if why := skipped(s, st); why != "" {
			t.skip(i, s, why)
			continue
		}
		l := s.Log
		switch {
		case st == StateRetired && !s.Time.Before(l.StateTime):
			t.skip(i, s, fmt.Sprintf("issued at or after the log's retirement at %s", l.StateTime.UTC().Format(time.RFC3339)))
			continue
		case st == StateReadOnly && !s.Time.Before(l.StateTime):
			t.skip(i, s, fmt.Sprintf("issued at or after the log turned read-only at %s", l.StateTime.UTC().Format(time.RFC3339)))
			continue
		case !l.Start.IsZero() && notAfter.Before(l.Start) || !l.End.IsZero() && !notAfter.Before(l.End):
			t.skip(i, s, fmt.Sprintf("the certificate's NotAfter is outside the log's temporal interval [%s, %s)", l.Start.UTC().Format(time.RFC3339), l.End.UTC().Format(time.RFC3339)))
			continue
		}
		as = append(as, approved{i, s, current(st)})
	}
	// One SCT per log counts: the earliest (a log delivering one both
	// embedded and over TLS keeps the TLS copy for the TLS rule below).
	sort.SliceStable(as, func(i, j int) bool { return as[i].s.Time.Before(as[j].s.Time) })
	first := map[[32]byte]bool{}
	var distinct []approved
	viaTLS := map[[32]byte]bool{} // logs with a current SCT over TLS or OCSP
	for _, a := range as {
		if a.cur && a.s.notEmbedded() {
			viaTLS[a.s.Log.ID] = true
		}
		if !first[a.s.Log.ID] {
			first[a.s.Log.ID] = true
			distinct = append(distinct, a)
		}
	}
	rfc6962 := slices.ContainsFunc(distinct, func(a approved) bool { return !a.s.Log.Tiled })
	switch {
	case len(distinct) < 2:
		for _, a := range as {
			t.skip(a.i, a.s, "fewer than 2 approved logs")
		}
		v = Verdict{Rule: RuleApprovedMinimum, Detail: fmt.Sprintf("SCTs from %d distinct once or currently approved logs, want 2", len(distinct))}
		return v
	case !rfc6962:
		for _, a := range as {
			t.skip(a.i, a.s, "no SCT from an RFC 6962 log")
		}
		v = Verdict{Rule: RuleRFC6962, Detail: "no SCT from an RFC 6962 log"}
		return v
	}
	// TLS/OCSP: 2 SCTs from currently approved logs, one over TLS/OCSP.
	var cur []approved
	for _, a := range distinct {
		if a.cur {
			cur = append(cur, a)
		}
	}
	if len(cur) >= 2 && len(viaTLS) > 0 {
		// One SCT per log: its earliest, or its TLS/OCSP copy if it has one.
		chosen := map[[32]byte]int{}
		for k, a := range as {
			if !a.cur {
				continue
			}
			j, ok := chosen[a.s.Log.ID]
			if !ok || as[j].s.embedded() && a.s.notEmbedded() {
				chosen[a.s.Log.ID] = k
			}
		}
		for k, a := range as {
			switch j, ok := chosen[a.s.Log.ID]; {
			case !a.cur:
				t.skip(a.i, a.s, "the log is not currently approved, as the TLS/OCSP path wants")
			case ok && j == k:
				t.count(a.i, a.s, "")
			default:
				t.skip(a.i, a.s, "another SCT of its log counted")
			}
		}
		v = Verdict{Compliant: true, Rule: RuleCompliantDeliver, Detail: fmt.Sprintf("SCTs from %d currently approved logs, %d of them over TLS/OCSP", len(cur), len(viaTLS))}
		return v
	}
	// Embedded: by lifetime, at most perOp per operator (at the SCT's time).
	need, perOp := 2, 1
	if d > 180 {
		need, perOp = 3, 2
	}
	hasCurrent := false
	byOp := map[string]int{}
	n, capped := 0, 0
	for _, a := range distinct {
		if a.s.notEmbedded() {
			continue
		}
		hasCurrent = hasCurrent || a.cur
		op := a.s.Log.OperatorAt(a.s.Time)
		if byOp[op] >= perOp {
			capped++
			t.skip(a.i, a.s, fmt.Sprintf("over the limit of %d SCTs per operator (%s) for %d days", perOp, op, d))
			continue
		}
		byOp[op]++
		n++
		t.count(a.i, a.s, "")
	}
	for _, a := range as {
		if _, ok := t.counted[a.i]; !ok {
			if a.s.notEmbedded() {
				t.skip(a.i, a.s, "a TLS/OCSP SCT does not count towards the embedded requirement")
			} else {
				t.skip(a.i, a.s, "another SCT of its log counted")
			}
		}
	}
	switch {
	case !hasCurrent:
		v = Verdict{Rule: RuleEmbeddedCurrent, Detail: "no embedded SCT from a currently approved log"}
	case n < need && capped > 0:
		v = Verdict{Rule: RulePerOperator, Detail: fmt.Sprintf("%d embedded SCTs count (%d over the limit of %d per operator), want %d for %d days", n, capped, perOp, need, d)}
	case n < need:
		v = Verdict{Rule: RuleEmbeddedCount, Detail: fmt.Sprintf("%d embedded SCTs from distinct approved logs, want %d for %d days", n, need, d)}
	default:
		v = Verdict{Compliant: true, Rule: RuleCompliantEmbed, Detail: fmt.Sprintf("%d embedded SCTs from distinct logs count (at most %d per operator), %d required for %d days", n, perOp, need, d)}
	}
	return v
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}

func days(d time.Duration) string {
	if d%Day == 0 {
		return fmt.Sprintf("%d days", d/Day)
	}
	return fmt.Sprintf("%d days %s", d/Day, d%Day)
}
