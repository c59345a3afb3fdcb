package sctverify

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
)

type fixture struct {
	a1, a2, b1, b2, unknown *testLog
	ca                      *testCA
	v                       *Verifier
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{
		a1: newTestLog(t, "a1", "Operator A"), a2: newTestLog(t, "a2", "Operator A"),
		b1: newTestLog(t, "b1", "Operator B"), b2: newTestLog(t, "b2", "Operator B"),
		unknown: newTestLog(t, "unlisted", "Operator U"),
		ca:      newTestCA(t),
	}
	f.v = &Verifier{Logs: makeLogList(t, f.a1, f.a2, f.b1, f.b2)}
	return f
}

func (f *fixture) verify(t *testing.T, c *x509.Certificate) *Report {
	t.Helper()
	r, err := f.v.Verify(context.Background(), Input{Chain: []*x509.Certificate{c, f.ca.cert}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func verdict(r *Report, policy string) Verdict {
	for _, v := range r.Policies {
		if v.Policy == policy {
			return v
		}
	}
	return Verdict{}
}

func ninety() (time.Time, time.Time) {
	nb := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	return nb, nb.Add(90*Day - time.Second)
}

// TestPasses: two SCTs from two operators pass all three policies.
func TestPasses(t *testing.T) {
	f := newFixture(t)
	nb, na := ninety()
	r := f.verify(t, f.ca.issue(t, nb, na, []sctSpec{{log: f.a1}, {log: f.b1}}, nil))
	if !r.OK {
		var b bytes.Buffer
		r.WriteText(&b)
		t.Fatalf("not OK:\n%s", b.String())
	}
	for _, s := range r.SCTs {
		if s.Status != StatusValid {
			t.Errorf("SCT %d: %s %s", s.Index, s.Status, s.Reason)
		}
	}
}

// TestPastTimestampWarns: an SCT older than its certificate is valid
// (browsers accept it) but warned about, in the report and its text;
// one after notBefore is not.
func TestPastTimestampWarns(t *testing.T) {
	f := newFixture(t)
	nb, na := ninety()
	r := f.verify(t, f.ca.issue(t, nb, na, []sctSpec{{log: f.a1, at: nb.Add(-24 * time.Hour)}, {log: f.b1}}, nil))
	if !r.OK {
		t.Errorf("a past SCT failed the report")
	}
	if s := r.SCTs[0]; s.Status != StatusValid || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "24h0m0s before the certificate's notBefore") {
		t.Errorf("past SCT: %s, warnings %q", s.Status, s.Warnings)
	}
	if w := r.SCTs[1].Warnings; len(w) != 0 {
		t.Errorf("a current SCT warned: %q", w)
	}
	var b bytes.Buffer
	r.WriteText(&b)
	if !strings.Contains(b.String(), "WARNING      SCT #1 (embedded, a1)") {
		t.Errorf("the text report has no warning:\n%s", b.String())
	}
}

// TestNegatives are the generated negatives: each fails for its reason.
func TestNegatives(t *testing.T) {
	f := newFixture(t)
	nb, na := ninety()
	other := f.ca.issue(t, nb, na, []sctSpec{{log: f.a1}}, nil) // for an SCT over a different TBS
	otherTBS, err := RemoveSCTList(other.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	otherEntry := precertEntry(issuerKeyHash(f.ca.cert), otherTBS)
	trailing := func(l [][]byte) []byte { return append(encodeSCTList(l), 0) }
	for _, tc := range []struct {
		name    string
		specs   []sctSpec
		list    func([][]byte) []byte
		status  []string // per SCT
		reason  string   // in an SCT's reason or a problem
		policy  string   // a policy that must fail ...
		rule    string   // ... by this rule
		problem bool
	}{
		// Chromium's UpdatedSCTRequirements: "If a single SCT is provided,
		// it should trip the diversity check"; Firefox counts first.
		{name: "one SCT only", specs: []sctSpec{{log: f.a1}}, status: []string{StatusValid}, policy: PolicyChrome, rule: RuleOperators},
		{name: "one SCT only (Mozilla)", specs: []sctSpec{{log: f.a1}}, status: []string{StatusValid}, policy: PolicyMozilla, rule: RuleEmbeddedCount},
		{name: "one SCT only (Apple)", specs: []sctSpec{{log: f.a1}}, status: []string{StatusValid}, policy: PolicyApple, rule: RuleApprovedMinimum},
		{name: "two SCTs from one operator", specs: []sctSpec{{log: f.a1}, {log: f.a2}}, status: []string{StatusValid, StatusValid}, policy: PolicyChrome, rule: RuleOperators},
		{name: "two SCTs from one operator (Apple)", specs: []sctSpec{{log: f.a1}, {log: f.a2}}, status: []string{StatusValid, StatusValid}, policy: PolicyApple, rule: RulePerOperator},
		{name: "two SCTs from one operator (Mozilla)", specs: []sctSpec{{log: f.a1}, {log: f.a2}}, status: []string{StatusValid, StatusValid}, policy: PolicyMozilla, rule: RuleOperators},
		{name: "SCT over a different TBS", specs: []sctSpec{{log: f.a1}, {log: f.b1, entry: otherEntry}}, status: []string{StatusValid, StatusInvalid}, reason: "signature does not verify", policy: PolicyMozilla, rule: RuleEmbeddedCount},
		{name: "future timestamp", specs: []sctSpec{{log: f.a1}, {log: f.b1, at: time.Now().Add(time.Hour)}}, status: []string{StatusValid, StatusInvalid}, reason: "in the future", policy: PolicyMozilla, rule: RuleEmbeddedCount},
		{name: "unknown log", specs: []sctSpec{{log: f.a1}, {log: f.unknown}}, status: []string{StatusValid, StatusUnknownLog}, reason: "no log in the log list", policy: PolicyMozilla, rule: RuleEmbeddedCount},
		{name: "SCT list with trailing bytes", specs: []sctSpec{{log: f.a1}, {log: f.b1}}, list: trailing, reason: "trailing data", problem: true, policy: PolicyChrome, rule: RuleEmbeddedCount},
		{name: "v2 SCT is unsupported, not invalid", specs: []sctSpec{{log: f.a1}, {log: f.b1, version: 1}}, status: []string{StatusValid, StatusUnsupported}, reason: "unsupported SCT version", policy: PolicyMozilla, rule: RuleEmbeddedCount},
		{name: "duplicate SCT counted once", specs: []sctSpec{{log: f.a1}}, list: func(l [][]byte) []byte { return encodeSCTList([][]byte{l[0], l[0]}) },
			status: []string{StatusValid, StatusDuplicate}, reason: "counted once", policy: PolicyMozilla, rule: RuleEmbeddedCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.verify(t, f.ca.issue(t, nb, na, tc.specs, tc.list))
			if r.OK {
				t.Error("OK, want a failure")
			}
			if len(r.SCTs) != len(tc.status) {
				t.Fatalf("%d SCTs, want %d: %+v", len(r.SCTs), len(tc.status), r.SCTs)
			}
			reasons := strings.Join(r.Problems, "; ")
			for i, s := range r.SCTs {
				if s.Status != tc.status[i] {
					t.Errorf("SCT %d: %s (%s), want %s", i+1, s.Status, s.Reason, tc.status[i])
				}
				reasons += "; " + s.Reason
			}
			if tc.problem != (len(r.Problems) > 0) {
				t.Errorf("problems %q", r.Problems)
			}
			if !strings.Contains(reasons, tc.reason) {
				t.Errorf("reasons %q, want one with %q", reasons, tc.reason)
			}
			if v := verdict(r, tc.policy); v.Compliant || v.Rule != tc.rule {
				t.Errorf("%s: %+v, want not met by %q", tc.policy, v, tc.rule)
			}
		})
	}
}

func TestTrailingBytesErrors(t *testing.T) {
	list := encodeSCTList([][]byte{{0, 1, 2}})
	if _, err := ParseSCTList(append(list, 9)); !errors.Is(err, ErrTrailingData) {
		t.Errorf("list + 1 byte: %v", err)
	}
	if _, err := ParseSCTList(list[:len(list)-1]); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated list: %v", err)
	}
	if _, err := ParseSCTList([]byte{0, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty list: %v", err)
	}
}

// TestRemoveSCTListByteForByte: an extension with an explicit DEFAULT
// (critical FALSE, which DER forbids but parsers accept) survives the cut
// untouched, where ct-go's re-encoding would drop it.
func TestRemoveSCTListByteForByte(t *testing.T) {
	ext := func(oid []byte, extra []byte, val []byte) []byte {
		body := append(append([]byte{0x06, byte(len(oid))}, oid...), extra...)
		body = append(body, 0x04, byte(len(val)))
		body = append(body, val...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	other := ext([]byte{0x55, 0x1d, 0x13}, []byte{0x01, 0x01, 0x00}, []byte{0x30, 0x00}) // basicConstraints, critical FALSE spelled out
	scts := ext(oidSCTListDER, nil, []byte{0x04, 0x02, 0x00, 0x00})
	head := []byte{0x02, 0x01, 0x07} // a stand-in for the fields before the extensions
	build := func(exts ...[]byte) []byte {
		var seq []byte
		for _, e := range exts {
			seq = append(seq, e...)
		}
		seq = append([]byte{0x30, byte(len(seq))}, seq...)
		x := append([]byte{0xa3, byte(len(seq))}, seq...)
		body := append(append([]byte{}, head...), x...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	got, err := RemoveSCTList(build(other, scts))
	if err != nil {
		t.Fatal(err)
	}
	if want := build(other); !bytes.Equal(got, want) {
		t.Errorf("got %x, want %x", got, want)
	}
	got, err = RemoveSCTList(build(scts))
	if err != nil || !bytes.Equal(got, []byte{0x30, 0x03, 0x02, 0x01, 0x07}) {
		t.Errorf("only extension: %x, %v", got, err)
	}
	if _, err := RemoveSCTList(build(scts, scts)); err == nil {
		t.Error("two SCT list extensions accepted")
	}
}

// TestLogStatesAndOperators: a Retired log counts only for SCTs before its
// retirement; operators are those of the SCT's time.
func TestLogStatesAndOperators(t *testing.T) {
	f := newFixture(t)
	nb, na := ninety()
	retiredAt := time.Now().Add(-30 * time.Minute)
	f.b2.state, f.b2.stateTime = StateRetired, retiredAt
	// a2 belonged to Operator B until a day ago.
	f.a2.prev = []*loglist3.PreviousOperator{{Name: "Operator B", EndTime: time.Now().Add(-Day)}}
	f.v.Logs = makeLogList(t, f.a1, f.a2, f.b1, f.b2)
	for _, tc := range []struct {
		name  string
		specs []sctSpec
		met   bool
		rule  string
	}{
		{"retired log, SCT before retirement", []sctSpec{{log: f.a1}, {log: f.b2, at: retiredAt.Add(-time.Minute)}}, true, RuleCompliantEmbed},
		{"retired log, SCT after retirement", []sctSpec{{log: f.a1}, {log: f.b2, at: retiredAt.Add(time.Minute)}}, false, RuleEmbeddedCount},
		{"only retired logs current", []sctSpec{{log: f.b2, at: retiredAt.Add(-2 * time.Minute)}, {log: f.b2, at: retiredAt.Add(-time.Minute)}}, false, RuleEmbeddedCount},
		{"previous operator at the SCT's time", []sctSpec{{log: f.a1}, {log: f.a2, at: time.Now().Add(-2 * Day)}}, true, RuleCompliantEmbed},
		{"current operator at the SCT's time", []sctSpec{{log: f.a1}, {log: f.a2, at: time.Now().Add(-time.Hour)}}, false, RuleOperators},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.verify(t, f.ca.issue(t, nb, na, tc.specs, nil))
			v := verdict(r, PolicyChrome)
			if v.Compliant != tc.met || v.Rule != tc.rule {
				t.Errorf("chrome: %+v, want met=%v by %q", v, tc.met, tc.rule)
			}
		})
	}
}

// TestPolicyBoundaries is the lifetime boundary table for Chrome and
// Apple (lifetime = NotAfter - NotBefore; Apple counts NotBefore through
// NotAfter inclusive, any part of a day as a day, so NotAfter - NotBefore
// of exactly 180 days is 181 days for Apple).
func TestPolicyBoundaries(t *testing.T) {
	mk := func(name, op string) *Log {
		return &Log{Description: name, Operator: op, State: StateUsable, ID: [32]byte{name[0], name[1]}}
	}
	a1, a2, b1 := mk("a1", "A"), mk("a2", "A"), mk("b1", "B")
	sct := func(l *Log) PolicySCT {
		return PolicySCT{Log: l, Source: SourceEmbedded, Time: time.Now()}
	}
	two := []PolicySCT{sct(a1), sct(b1)}
	three := []PolicySCT{sct(a1), sct(a2), sct(b1)}
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                   string
		lifetime               time.Duration
		chrome2, chrome3       bool
		apple2, apple3         bool
		appleRule2, appleRule3 string
	}{
		{"180 days - 1 s", 180*Day - time.Second, true, true, true, true, RuleCompliantEmbed, RuleCompliantEmbed},
		{"exactly 180 days", 180 * Day, true, true, false, true, RuleEmbeddedCount, RuleCompliantEmbed},
		{"180 days + 1 s", 180*Day + time.Second, false, true, false, true, RuleEmbeddedCount, RuleCompliantEmbed},
		{"181 days", 181 * Day, false, true, false, true, RuleEmbeddedCount, RuleCompliantEmbed},
		{"398 days - 1 s", 398*Day - time.Second, false, true, false, true, RuleEmbeddedCount, RuleCompliantEmbed},
		{"398 days", 398 * Day, false, true, false, false, RuleLifetime, RuleLifetime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			na := nb.Add(tc.lifetime)
			check := func(policy string, scts []PolicySCT, want bool, rule string) {
				t.Helper()
				v := Evaluate(policy, nb, na, scts, Check{Now: time.Now()})
				if v.Compliant != want || (rule != "" && v.Rule != rule) {
					t.Errorf("%s with %d SCTs: %+v, want met=%v (%s)", policy, len(scts), v, want, rule)
				}
			}
			check(PolicyChrome, two, tc.chrome2, "")
			check(PolicyChrome, three, tc.chrome3, "")
			check(PolicyMozilla, two, tc.chrome2, "")
			check(PolicyApple, two, tc.apple2, tc.appleRule2)
			check(PolicyApple, three, tc.apple3, tc.appleRule3)
		})
	}
}

func issuerKeyHash(c *x509.Certificate) [32]byte {
	return sha256Sum(c.RawSubjectPublicKeyInfo)
}
