package sctverify

import (
	"testing"
	"time"
)

// The policy vectors. Chrome's are Chromium's policy-enforcer unit tests
// (components/certificate_transparency/chrome_ct_policy_enforcer_unittest.cc,
// read 2026-12), written again here: each case names the test it comes
// from. Firefox's follow security/ct/CTPolicyEnforcer.cpp, Apple's the
// rules of support.apple.com/en-us/103214. Cases marked "2026" are the
// policy changes of that year (OCSP from Chrome 148, the RFC 6962 rule
// dropped on 2026-04-15).

// pl is a usable log of the policy tests.
func pl(name, operator string) *Log {
	return &Log{Description: name, Operator: operator, State: StateUsable, ID: [32]byte{byte(len(name)), name[0], name[len(name)-1]}}
}

// tiledLog is a usable static-ct-api log.
func tiledLog(name, operator string) *Log {
	l := pl(name, operator)
	l.Tiled = true
	return l
}

func withState(l *Log, st string, at time.Time) *Log {
	c := *l
	c.State, c.StateTime = st, at
	return &c
}

// the time of check of the vectors, and the SCTs' usual time.
var (
	polNow = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	sctAt  = polNow.Add(-30 * Day)
)

func emb(l *Log) PolicySCT {
	return PolicySCT{Log: l, Source: SourceEmbedded, Time: sctAt, LeafIndex: true}
}
func tlsS(l *Log) PolicySCT {
	return PolicySCT{Log: l, Source: SourceTLS, Time: sctAt, LeafIndex: true}
}
func ocspS(l *Log) PolicySCT {
	return PolicySCT{Log: l, Source: SourceOCSP, Time: sctAt, LeafIndex: true}
}
func at(s PolicySCT, t time.Time) PolicySCT { s.Time = t; return s }

type polCase struct {
	name     string
	lifetime time.Duration // NotAfter - NotBefore; default 90 days
	scts     []PolicySCT
	chk      Check // Now defaults to polNow
	want     bool
	enforced *bool // default true
	rule     string
}

func runPolicy(t *testing.T, policy string, cases []polCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lifetime := tc.lifetime
			if lifetime == 0 {
				lifetime = 90 * Day
			}
			chk := tc.chk
			if chk.Now.IsZero() {
				chk.Now = polNow
			}
			for i := range tc.scts {
				tc.scts[i].Index = i + 1
			}
			nb := sctAt.Add(-time.Hour)
			v := Evaluate(policy, nb, nb.Add(lifetime), tc.scts, chk)
			enforced := tc.enforced == nil || *tc.enforced
			if v.Compliant != tc.want || v.Enforced != enforced || tc.rule != "" && v.Rule != tc.rule {
				t.Errorf("%s: compliant %v enforced %v by %q (%s); want %v %v by %q\ncounted %+v\nnot counted %+v",
					policy, v.Compliant, v.Enforced, v.Rule, v.Detail, tc.want, enforced, tc.rule, v.Counted, v.NotCounted)
			}
			if len(v.Counted)+len(v.NotCounted) != len(tc.scts) {
				t.Errorf("%d SCTs accounted for, of %d", len(v.Counted)+len(v.NotCounted), len(tc.scts))
			}
		})
	}
}

var no = false

func TestChromePolicy(t *testing.T) {
	a, b, c, d, e := pl("a", "Operator 0"), pl("b", "Operator 1"), pl("c", "Operator 2"), pl("d", "Operator 3"), pl("e", "Operator 4")
	retiredAt := polNow.Add(-10 * Day)
	ret := withState(pl("retired", "Operator 9"), StateRetired, retiredAt)
	before, after := retiredAt.Add(-time.Hour), retiredAt.Add(time.Hour)
	long := 365 * Day
	old := Check{Now: polNow, ChromeVersion: 147}
	// ConformsToPolicyDueToOperatorSwitch and the other operator tests:
	// logs of one operator now, one of them run by another until just
	// after the SCT.
	same1, same2 := pl("s1", "Same Operator"), pl("s2", "Same Operator")
	switched := *same2
	switched.PreviousOperators = []PreviousOperator{{Name: "Different Operator", End: sctAt.Add(time.Second)}}
	diverse2 := pl("s2", "Operator 1")
	backTo0 := *diverse2
	backTo0.PreviousOperators = []PreviousOperator{{Name: "Operator 0", End: sctAt.Add(time.Second)}}
	multi := *diverse2
	multi.PreviousOperators = []PreviousOperator{{Name: "Different Operator", End: sctAt.Add(-time.Second)}, {Name: "Operator 0", End: sctAt.Add(time.Second)}}
	allBefore := *same2
	allBefore.PreviousOperators = []PreviousOperator{{Name: "Different Operator", End: sctAt.Add(-2 * time.Second)}, {Name: "Yet Another", End: sctAt.Add(-time.Second)}}
	t1, t2, t3 := tiledLog("t1", "Operator 0"), tiledLog("t2", "Operator 1"), tiledLog("t3", "Operator 2")
	runPolicy(t, PolicyChrome, []polCase{
		// DoesNotConformToCTPolicyNotEnoughFreshSCTs
		{name: "NotEnoughFreshSCTs/TLS+TLSRetiredBefore", scts: []PolicySCT{tlsS(a), at(tlsS(ret), before)}, rule: RuleOperators},
		{name: "NotEnoughFreshSCTs/TLS+TLSRetiredAfter", scts: []PolicySCT{tlsS(a), at(tlsS(ret), after)}, rule: RuleOperators},
		{name: "NotEnoughFreshSCTs/Emb+EmbRetiredBefore", lifetime: long, scts: []PolicySCT{at(emb(a), before), at(emb(ret), before)}, rule: RuleEmbeddedCount},
		{name: "NotEnoughFreshSCTs/Emb+EmbRetiredAfter", lifetime: long, scts: []PolicySCT{at(emb(a), before), at(emb(ret), after)}, rule: RuleEmbeddedCount},
		// ConformsToCTPolicyWithMixOfEmbeddedAndNonEmbedded: a retired
		// log's embedded SCT counts for diversity, even after retirement.
		{name: "MixOfEmbeddedAndNonEmbedded/Before", scts: []PolicySCT{at(tlsS(a), before), at(emb(ret), before)}, want: true, rule: RuleCompliantDeliver},
		{name: "MixOfEmbeddedAndNonEmbedded/After", scts: []PolicySCT{at(tlsS(a), before), at(emb(ret), after)}, want: true, rule: RuleCompliantDeliver},
		// ConformsToCTPolicyWithNonEmbeddedSCTs
		{name: "WithNonEmbeddedSCTs", scts: []PolicySCT{tlsS(a), tlsS(b)}, want: true, rule: RuleCompliantDeliver},
		// EnforcementDisabledByBinaryAge: 70 days (InDays) and it stops.
		{name: "BinaryAge/69Days", scts: []PolicySCT{tlsS(a), tlsS(b)}, chk: Check{Now: polNow, ListTime: polNow.Add(-69*Day - 23*time.Hour)}, want: true},
		{name: "BinaryAge/71Days", scts: []PolicySCT{tlsS(a)}, chk: Check{Now: polNow, ListTime: polNow.Add(-71 * Day)}, enforced: &no},
		{name: "BinaryAge/70Days", scts: []PolicySCT{tlsS(a)}, chk: Check{Now: polNow, ListTime: polNow.Add(-70 * Day)}, enforced: &no},
		// ConformsToCTPolicyWithEmbeddedSCTs, DoesNotConformToCTPolicyNotEnoughSCTs
		{name: "WithEmbeddedSCTs", lifetime: long, scts: []PolicySCT{emb(a), emb(b), emb(c)}, want: true, rule: RuleCompliantEmbed},
		{name: "NotEnoughSCTs", lifetime: long, scts: []PolicySCT{emb(a), emb(b)}, rule: RuleEmbeddedCount},
		// ConformsToCTPolicyWithPooledNonEmbeddedSCTs, ...PooledEmbeddedSCTs
		// (Chrome 147), and the same from Chrome 148, which takes no
		// OCSP SCTs (2026).
		{name: "PooledNonEmbeddedSCTs/Chrome147", scts: []PolicySCT{ocspS(a), tlsS(b)}, chk: old, want: true},
		{name: "PooledEmbeddedSCTs/Chrome147", scts: []PolicySCT{emb(a), ocspS(b)}, chk: old, want: true},
		{name: "PooledNonEmbeddedSCTs/Chrome148", scts: []PolicySCT{ocspS(a), tlsS(b)}, rule: RuleOperators},
		{name: "PooledEmbeddedSCTs/Chrome148", scts: []PolicySCT{emb(a), ocspS(b)}, rule: RuleOperators},
		{name: "OCSP/DefaultBefore2026-03-20", scts: []PolicySCT{ocspS(a), tlsS(b)}, chk: Check{Now: ChromeNoOCSPDate.Add(-time.Hour)}, want: true},
		{name: "EmbeddedAndTLSPooled", scts: []PolicySCT{emb(a), tlsS(b)}, want: true, rule: RuleCompliantDeliver},
		// ConformsWithDisqualifiedLogBeforeDisqualificationDate and the two after.
		{name: "DisqualifiedLogBeforeDisqualification", lifetime: long, scts: []PolicySCT{at(emb(a), before), at(emb(b), before), at(emb(ret), before)}, want: true},
		{name: "DisqualifiedLogAfterDisqualification", lifetime: long, scts: []PolicySCT{emb(a), emb(b), at(emb(ret), after)}, rule: RuleEmbeddedCount},
		{name: "IssuanceDateAfterDisqualification", lifetime: long, scts: []PolicySCT{at(emb(ret), after), at(emb(a), after), at(emb(b), after)}, rule: RuleEmbeddedCount},
		// ConformsWithCTPolicyFutureRetirementDateLogs, DoesNotConformWithCTPolicyPastRetirementDateLogs
		{name: "FutureRetirementDateLogs", lifetime: long, scts: []PolicySCT{
			emb(withState(a, StateRetired, polNow.Add(time.Hour))), emb(withState(b, StateRetired, polNow.Add(time.Hour))),
			emb(withState(c, StateRetired, polNow.Add(time.Hour))), emb(withState(d, StateRetired, polNow.Add(time.Hour))),
			emb(withState(e, StateRetired, polNow.Add(time.Hour)))}, want: true},
		{name: "PastRetirementDateLogs", lifetime: long, scts: []PolicySCT{
			emb(withState(a, StateRetired, polNow.Add(-time.Hour))), emb(withState(b, StateRetired, polNow.Add(-time.Hour))),
			emb(withState(c, StateRetired, polNow.Add(-time.Hour)))}, rule: RuleEmbeddedCount},
		// UpdatedSCTRequirements: lifetime NotAfter - NotBefore, 180 days
		// exactly takes 2; one SCT trips diversity first.
		{name: "UpdatedSCTRequirements/179Days2", lifetime: 179 * Day, scts: []PolicySCT{emb(a), emb(b)}, want: true},
		{name: "UpdatedSCTRequirements/Exactly180Days2", lifetime: 180 * Day, scts: []PolicySCT{emb(a), emb(b)}, want: true},
		{name: "UpdatedSCTRequirements/180DaysPlus1s2", lifetime: 180*Day + time.Second, scts: []PolicySCT{emb(a), emb(b)}, rule: RuleEmbeddedCount},
		{name: "UpdatedSCTRequirements/180DaysPlus1s3", lifetime: 180*Day + time.Second, scts: []PolicySCT{emb(a), emb(b), emb(c)}, want: true},
		{name: "UpdatedSCTRequirements/OneSCT", lifetime: 179 * Day, scts: []PolicySCT{emb(a)}, rule: RuleOperators},
		{name: "UpdatedSCTRequirements/None", scts: nil, rule: RuleEmbeddedCount},
		// DoesNotConformToCTPolicyAllLogsSameOperator, ConformsToCTPolicyDifferentOperators
		{name: "AllLogsSameOperator", scts: []PolicySCT{tlsS(same1), tlsS(same2)}, rule: RuleOperators},
		{name: "DifferentOperators", scts: []PolicySCT{tlsS(a), tlsS(b)}, want: true},
		// ConformsToPolicyDueToOperatorSwitch, DoesNotConformToPolicyDueToOperatorSwitch,
		// MultipleOperatorSwitches, MultipleOperatorSwitchesBeforeSCTTimestamp
		{name: "OperatorSwitchConforms", scts: []PolicySCT{tlsS(same1), tlsS(&switched)}, want: true},
		{name: "OperatorSwitchDoesNotConform", scts: []PolicySCT{tlsS(a), tlsS(&backTo0)}, rule: RuleOperators},
		{name: "MultipleOperatorSwitches", scts: []PolicySCT{tlsS(a), tlsS(&multi)}, rule: RuleOperators},
		{name: "MultipleOperatorSwitchesBeforeSCTTimestamp", scts: []PolicySCT{tlsS(same1), tlsS(&allBefore)}, rule: RuleOperators},
		// DoesNotConformToCTPolicyNoRFC6962Log, with enforcement (before
		// 2026-04-15) and after the rule was dropped (2026).
		{name: "NoRFC6962Log/Enforced2", lifetime: long, chk: Check{Now: ChromeNoRFC6962RuleDate.Add(-Day)}, scts: []PolicySCT{emb(t1), emb(t2)}, rule: RuleRFC6962},
		{name: "NoRFC6962Log/Enforced3", lifetime: long, chk: Check{Now: ChromeNoRFC6962RuleDate.Add(-Day)}, scts: []PolicySCT{emb(t1), emb(t2), emb(t3)}, rule: RuleRFC6962},
		{name: "NoRFC6962Log/Dropped2", lifetime: long, scts: []PolicySCT{emb(t1), emb(t2)}, rule: RuleEmbeddedCount},
		{name: "NoRFC6962Log/Dropped3", lifetime: long, scts: []PolicySCT{emb(t1), emb(t2), emb(t3)}, want: true},
		// ctstage's: a tiled SCT without leaf_index, pending and rejected logs.
		{name: "TiledWithoutLeafIndex", scts: []PolicySCT{emb(a), {Log: t2, Source: SourceEmbedded, Time: sctAt}}, rule: RuleOperators},
		{name: "PendingLogUnused", scts: []PolicySCT{emb(a), emb(withState(b, StatePending, sctAt))}, rule: RuleOperators},
		{name: "RejectedLogUnused", scts: []PolicySCT{emb(a), emb(withState(b, StateRejected, sctAt))}, rule: RuleOperators},
		{name: "ReadOnlyLogCounts", scts: []PolicySCT{emb(a), emb(withState(b, StateReadOnly, sctAt.Add(-Day)))}, want: true},
		{name: "AnyQualifyingSCTOfALog", lifetime: long, scts: []PolicySCT{emb(a), at(emb(ret), after), at(emb(ret), before), emb(b)}, want: true},
	})
}

func TestMozillaPolicy(t *testing.T) {
	a, b, c := pl("a", "Operator 0"), pl("b", "Operator 1"), pl("c", "Operator 2")
	retiredAt := polNow.Add(-10 * Day)
	ret := withState(pl("retired", "Operator 9"), StateRetired, retiredAt)
	switched := *pl("s2", "Operator 0")
	switched.PreviousOperators = []PreviousOperator{{Name: "Operator 1", End: sctAt.Add(time.Second)}}
	runPolicy(t, PolicyMozilla, []polCase{
		// NonEmbeddedSCTsCompliant: 2 SCTs, 2 logs, 2 operators; OCSP counts.
		{name: "TLSTwoOperators", scts: []PolicySCT{tlsS(a), tlsS(b)}, want: true, rule: RuleCompliantDeliver},
		{name: "OCSPAndTLS", scts: []PolicySCT{ocspS(a), tlsS(b)}, want: true, rule: RuleCompliantDeliver},
		{name: "TLSSameOperator", scts: []PolicySCT{tlsS(a), tlsS(withState(pl("a2", "Operator 0"), StateUsable, sctAt))}, rule: RuleEmbeddedCurrent},
		// Firefox does not pool: one embedded and one TLS SCT fail.
		{name: "NoPooling", scts: []PolicySCT{emb(a), tlsS(b)}, rule: RuleEmbeddedCount},
		// The current operator, not the one at the SCT's time.
		{name: "CurrentOperatorOnly", scts: []PolicySCT{emb(a), emb(&switched)}, rule: RuleOperators},
		// EmbeddedSCTsCompliant: 180 < lifetime takes 3.
		{name: "Exactly180Days2", lifetime: 180 * Day, scts: []PolicySCT{emb(a), emb(b)}, want: true},
		{name: "180DaysPlus1s2", lifetime: 180*Day + time.Second, scts: []PolicySCT{emb(a), emb(b)}, rule: RuleEmbeddedCount},
		{name: "180DaysPlus1s3", lifetime: 180*Day + time.Second, scts: []PolicySCT{emb(a), emb(b), emb(c)}, want: true},
		// LogWasQualifiedForSct: a retired log before its retirement.
		{name: "RetiredBefore", scts: []PolicySCT{at(emb(a), retiredAt.Add(-time.Hour)), at(emb(ret), retiredAt.Add(-time.Hour))}, want: true},
		{name: "RetiredAfter", scts: []PolicySCT{emb(a), at(emb(ret), retiredAt.Add(time.Hour))}, rule: RuleEmbeddedCount},
		{name: "OnlyRetired", scts: []PolicySCT{at(emb(ret), retiredAt.Add(-time.Hour))}, rule: RuleEmbeddedCurrent},
		// Tiled: leafIndex.isNothing() is skipped.
		{name: "TiledWithoutLeafIndex", scts: []PolicySCT{emb(a), {Log: tiledLog("t", "Operator 1"), Source: SourceEmbedded, Time: sctAt}}, rule: RuleEmbeddedCount},
		{name: "TiledOnly", scts: []PolicySCT{emb(tiledLog("t1", "Operator 0")), emb(tiledLog("t2", "Operator 1"))}, want: true},
		{name: "ListTenWeeksOld", scts: []PolicySCT{emb(a), emb(b)}, chk: Check{Now: polNow, ListTime: polNow.Add(-70 * Day)}, want: true, enforced: &no},
	})
}

func TestApplePolicy(t *testing.T) {
	a, b := pl("a", "Operator 0"), pl("b", "Operator 1")
	a2 := pl("a2", "Operator 0")
	a3 := pl("a3", "Operator 0")
	retiredAt := polNow.Add(-10 * Day)
	ret := withState(pl("retired", "Operator 9"), StateRetired, retiredAt)
	ro := withState(pl("ro", "Operator 1"), StateReadOnly, sctAt.Add(-Day))
	sharded := pl("shard", "Operator 1")
	sharded.Start, sharded.End = polNow.Add(400*Day), polNow.Add(580*Day)
	t1, t2 := tiledLog("t1", "Operator 0"), tiledLog("t2", "Operator 1")
	runPolicy(t, PolicyApple, []polCase{
		// The table: 180 days or less (inclusive) 2 SCTs, at most 1 per
		// operator; 181 to 398 days 3, at most 2 per operator.
		{name: "90Days", scts: []PolicySCT{emb(a), emb(b)}, want: true, rule: RuleCompliantEmbed},
		{name: "180DaysLess1s2", lifetime: 180*Day - time.Second, scts: []PolicySCT{emb(a), emb(b)}, want: true},
		{name: "Exactly180DaysIs181", lifetime: 180 * Day, scts: []PolicySCT{emb(a), emb(b)}, rule: RuleEmbeddedCount},
		{name: "Exactly180DaysThree", lifetime: 180 * Day, scts: []PolicySCT{emb(a), emb(a2), emb(b)}, want: true},
		{name: "ShortOnePerOperator", scts: []PolicySCT{emb(a), emb(a2)}, rule: RulePerOperator},
		{name: "LongTwoPerOperator", lifetime: 300 * Day, scts: []PolicySCT{emb(a), emb(a2), emb(a3), emb(b)}, want: true},
		{name: "LongOneOperator", lifetime: 300 * Day, scts: []PolicySCT{emb(a), emb(a2), emb(a3)}, rule: RulePerOperator},
		{name: "398Days", lifetime: 397*Day + 23*time.Hour, scts: []PolicySCT{emb(a), emb(a2), emb(b)}, want: true},
		{name: "399Days", lifetime: 398 * Day, scts: []PolicySCT{emb(a), emb(a2), emb(b)}, rule: RuleLifetime},
		// Two SCTs from currently approved logs, one over TLS or OCSP; no
		// operator rule on that path.
		{name: "TLSPath", scts: []PolicySCT{tlsS(a), tlsS(a2)}, want: true, rule: RuleCompliantDeliver},
		{name: "TLSPathPooled", scts: []PolicySCT{emb(a), ocspS(b)}, want: true, rule: RuleCompliantDeliver},
		{name: "TLSPathNeedsCurrentLogs", scts: []PolicySCT{tlsS(a), at(tlsS(ret), retiredAt.Add(-time.Hour))}, rule: RuleEmbeddedCurrent},
		// A log delivered embedded (earlier) and over TLS keeps the TLS copy.
		{name: "SameLogEmbeddedAndTLS", scts: []PolicySCT{at(emb(b), sctAt.Add(-time.Hour)), tlsS(b), emb(a)}, want: true, rule: RuleCompliantDeliver},
		// At least two SCTs, and one from an RFC 6962 log.
		{name: "OneSCT", scts: []PolicySCT{tlsS(a)}, rule: RuleApprovedMinimum},
		{name: "AllTiled", scts: []PolicySCT{emb(t1), emb(t2)}, rule: RuleRFC6962},
		{name: "OneTiled", scts: []PolicySCT{emb(a), emb(t2)}, want: true},
		// Once approved: a retired log's SCT from before its retirement.
		{name: "RetiredBefore", scts: []PolicySCT{emb(a), at(emb(ret), retiredAt.Add(-time.Hour))}, want: true},
		{name: "RetiredAfter", scts: []PolicySCT{emb(a), at(emb(ret), retiredAt.Add(time.Hour))}, rule: RuleApprovedMinimum},
		{name: "RetiresInTheFuture", scts: []PolicySCT{emb(a), emb(withState(b, StateRetired, polNow.Add(Day)))}, want: true},
		// Read-only logs keep their timestamp: no SCT after it counts.
		{name: "ReadOnlyAfter", scts: []PolicySCT{emb(a), emb(ro)}, rule: RuleApprovedMinimum},
		{name: "ReadOnlyBefore", scts: []PolicySCT{emb(a), at(emb(ro), sctAt.Add(-2*Day))}, want: true},
		// NotAfter outside the log's temporal_interval.
		{name: "TemporalInterval", scts: []PolicySCT{emb(a), emb(sharded)}, rule: RuleApprovedMinimum},
		{name: "TiledWithoutLeafIndex", scts: []PolicySCT{emb(a), {Log: tiledLog("t", "Operator 1"), Source: SourceEmbedded, Time: sctAt}}, rule: RuleApprovedMinimum},
		{name: "ListSixtyDaysOld", scts: []PolicySCT{emb(a)}, chk: Check{Now: polNow, ListTime: polNow.Add(-60 * Day)}, enforced: &no},
		{name: "ListFiftyNineDaysOld", scts: []PolicySCT{emb(a), emb(b)}, chk: Check{Now: polNow, ListTime: polNow.Add(-59 * Day)}, want: true},
	})
}

// TestVerdictAccounts: every SCT is in Counted or NotCounted with a
// reason, in report order.
func TestVerdictAccounts(t *testing.T) {
	a, b := pl("a", "Operator 0"), pl("b", "Operator 1")
	scts := []PolicySCT{emb(a), ocspS(b), tlsS(b), {Log: withState(pl("p", "P"), StatePending, sctAt), Source: SourceEmbedded, Time: sctAt}}
	for i := range scts {
		scts[i].Index = i + 1
	}
	v := Evaluate(PolicyChrome, sctAt, sctAt.Add(90*Day), scts, Check{Now: polNow})
	if !v.Compliant || len(v.Counted) != 2 || len(v.NotCounted) != 2 {
		t.Fatalf("%+v", v)
	}
	for _, r := range v.NotCounted {
		if r.Reason == "" {
			t.Errorf("SCT %s #%d not counted without a reason", r.Source, r.Index)
		}
	}
	if got := v.Counted[0].Source + " " + v.Counted[1].Source; got != "embedded tls" {
		t.Errorf("counted in order %s", got)
	}
}
