package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/internal/testsupport/testca"
	"github.com/ctstage/ctstage/sctverify"
)

// The browser-policy scenarios end to end: certificates from a CA of the
// test's own, SCTs signed with log keys of the test's own (with ct-go,
// independently of sctverify), log lists with every state, state
// timestamps, a previous operator and tiled logs, all through the ctstage
// binary's verify --json.

// genLog is a log of the test's own.
type genLog struct {
	name, operator string
	key            *ecdsa.PrivateKey
	tiled          bool
	state          string
	stateAt        time.Time
	prev           []*loglist3.PreviousOperator
}

func newGenLog(t *testing.T, name, operator string) *genLog {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &genLog{name: name, operator: operator, key: k, state: "usable", stateAt: time.Now().Add(-400 * 24 * time.Hour)}
}

func (l *genLog) der(t *testing.T) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(l.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeGenList writes a v3 log list of logs, stamped at listTime.
func writeGenList(t *testing.T, dir string, listTime time.Time, logs ...*genLog) string {
	t.Helper()
	ll := &loglist3.LogList{Version: "1", LogListTimestamp: listTime}
	ops := map[string]*loglist3.Operator{}
	for _, l := range logs {
		op := ops[l.operator]
		if op == nil {
			op = &loglist3.Operator{Name: l.operator, Email: []string{"ct@" + strings.ToLower(strings.ReplaceAll(l.operator, " ", "")) + ".example"}}
			ops[l.operator] = op
			ll.Operators = append(ll.Operators, op)
		}
		st := loglist3.LogState{Timestamp: l.stateAt}
		states := &loglist3.LogStates{}
		switch l.state {
		case "pending":
			states.Pending = &st
		case "qualified":
			states.Qualified = &st
		case "usable":
			states.Usable = &st
		case "readonly":
			states.ReadOnly = &loglist3.ReadOnlyLogState{LogState: st}
		case "retired":
			states.Retired = &st
		case "rejected":
			states.Rejected = &st
		}
		id := sha256.Sum256(l.der(t))
		if l.tiled {
			op.TiledLogs = append(op.TiledLogs, &loglist3.TiledLog{Description: l.name, LogID: id[:], Key: l.der(t), MMD: 60,
				SubmissionURL: "http://" + l.name + ".invalid/", MonitoringURL: "http://" + l.name + ".invalid/", State: states, PreviousOperators: l.prev})
		} else {
			op.Logs = append(op.Logs, &loglist3.Log{Description: l.name, LogID: id[:], Key: l.der(t), MMD: 86400,
				URL: "http://" + l.name + ".invalid/", State: states, PreviousOperators: l.prev})
		}
	}
	b, err := json.Marshal(ll)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "list.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// genSCT is one SCT to make: by log at a time, with a valid leaf_index
// when the log is tiled unless noIndex.
type genSCT struct {
	log     *genLog
	at      time.Time
	noIndex bool
}

// sign signs an SCT over entry with ct-go and returns it serialized.
func (g genSCT) sign(t *testing.T, entry ct.LogEntry, index uint64) []byte {
	t.Helper()
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: sha256.Sum256(g.log.der(t))}, Timestamp: uint64(g.at.UnixMilli())}
	if g.log.tiled && !g.noIndex {
		sct.Extensions = ct.CTExtensions{0, 0, 5, byte(index >> 32), byte(index >> 24), byte(index >> 16), byte(index >> 8), byte(index)}
	}
	entry.Leaf.TimestampedEntry.Timestamp, entry.Leaf.TimestampedEntry.Extensions = sct.Timestamp, sct.Extensions
	in, err := ct.SerializeSCTSignatureInput(sct, entry)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(in)
	sig, err := g.log.key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sct.Signature = ct.DigitallySigned{Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA}, Signature: sig}
	b, err := cttls.Marshal(sct)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var genSerial atomic.Int64

// genCert issues, from ca's intermediate, a certificate valid from
// notBefore for lifetime with the embedded SCTs given (a precertificate
// first, whose entry they sign, as a CA does). It returns the chain as PEM.
func genCert(t *testing.T, ca *testca.CA, notBefore time.Time, lifetime time.Duration, scts ...genSCT) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1000 + genSerial.Add(1)), Subject: pkix.Name{CommonName: "policy.example.com"},
		DNSNames: []string{"policy.example.com"}, NotBefore: notBefore, NotAfter: notBefore.Add(lifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if len(scts) > 0 {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: testca.PoisonOID, Critical: true, Value: asn1.NullBytes}}
		pre := signWith(t, ca, tmpl)
		tbs, err := ctx509.RemoveCTPoison(pre.RawTBSCertificate)
		if err != nil {
			t.Fatal(err)
		}
		entry := ct.LogEntry{Leaf: ct.MerkleTreeLeaf{Version: ct.V1, LeafType: ct.TimestampedEntryLeafType,
			TimestampedEntry: &ct.TimestampedEntry{EntryType: ct.PrecertLogEntryType,
				PrecertEntry: &ct.PreCert{IssuerKeyHash: sha256.Sum256(ca.Intermediate.RawSubjectPublicKeyInfo), TBSCertificate: tbs}}}}
		var list ctx509.SignedCertificateTimestampList
		for i, s := range scts {
			list.SCTList = append(list.SCTList, ctx509.SerializedSCT{Val: s.sign(t, entry, uint64(i))})
		}
		raw, err := cttls.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		val, err := asn1.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier(sctverify.OIDSCTList), Value: val}}
	}
	leaf := signWith(t, ca, tmpl)
	return append(pemCert(leaf.Raw), pemCert(ca.Intermediate.Raw)...)
}

func signWith(t *testing.T, ca *testca.CA, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Intermediate, ca.LeafKey.Public(), ca.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verdicts runs ctstage verify --json and returns the report and exit code.
func verdicts(t *testing.T, list string, args ...string) (sctverify.Report, int) {
	t.Helper()
	out, err := exec.Command(ctstageBinary(t), append([]string{"verify", "--log-list", list, "--inclusion=false", "--json"}, args...)...).CombinedOutput()
	var r sctverify.Report
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("verify %v: %v\n%s", args, jerr, out)
	}
	return r, exitCode(t, err)
}

func verdictOf(r sctverify.Report, policy string) sctverify.Verdict {
	for _, v := range r.Policies {
		if v.Policy == policy {
			return v
		}
	}
	return sctverify.Verdict{}
}

// notCountedFor is the reason policy gave for not counting SCT index of
// source, "" when it counted.
func notCountedFor(v sctverify.Verdict, source string, index int) string {
	for _, n := range v.NotCounted {
		if n.Source == source && n.Index == index {
			return n.Reason
		}
	}
	return ""
}

func TestVerifyPolicyScenarios(t *testing.T) {
	ca, _ := newCA(t)
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	day := 24 * time.Hour
	a := newGenLog(t, "a-usable", "Operator A")
	tiled := newGenLog(t, "b-tiled", "Operator B")
	tiled.tiled = true
	qual := newGenLog(t, "c-qualified", "Operator C")
	qual.state, qual.stateAt = "qualified", ago(30*day)
	ro := newGenLog(t, "d-readonly", "Operator D")
	ro.state, ro.stateAt = "readonly", ago(5*day)
	ret := newGenLog(t, "e-retired", "Operator E")
	ret.state, ret.stateAt = "retired", ago(10*day)
	pend := newGenLog(t, "f-pending", "Operator F")
	pend.state, pend.stateAt = "pending", ago(day)
	rej := newGenLog(t, "g-rejected", "Operator G")
	rej.state, rej.stateAt = "rejected", ago(day)
	soon := newGenLog(t, "h-retires-soon", "Operator H")
	soon.state, soon.stateAt = "retired", now.Add(5*day)
	// i-switched is Operator A's now, and was Operator I's until a day after
	// the SCTs below.
	switched := newGenLog(t, "i-switched", "Operator A")
	switched.prev = []*loglist3.PreviousOperator{{Name: "Operator I", EndTime: ago(19 * day)}}
	dir := t.TempDir()
	list := writeGenList(t, dir, now, a, tiled, qual, ro, ret, pend, rej, soon, switched)
	sctTime := ago(20 * day)
	nb := ago(21 * day)
	write := func(name string, pemChain []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pemChain, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := func(l *genLog) genSCT { return genSCT{log: l, at: sctTime} }

	type want struct {
		policy    string
		compliant bool
		rule      string
	}
	for _, tc := range []struct {
		name  string
		scts  []genSCT
		args  []string
		wants []want
		// notCounted: SCT index -> a word the reason has, for every policy
		notCounted map[int]string
	}{
		{name: "PendingAndRejectedDoNotCount", scts: []genSCT{s(a), s(pend), s(rej)},
			wants:      []want{{"chrome", false, sctverify.RuleOperators}, {"apple", false, sctverify.RuleApprovedMinimum}, {"mozilla", false, sctverify.RuleEmbeddedCount}},
			notCounted: map[int]string{2: "pending", 3: "rejected"}},
		{name: "RetiredBeforeRetirementCounts", scts: []genSCT{s(a), s(ret)},
			wants: []want{{"chrome", true, sctverify.RuleCompliantEmbed}, {"apple", true, ""}, {"mozilla", true, ""}}},
		{name: "RetiredAfterRetirement", scts: []genSCT{genSCT{log: a, at: ago(2 * day)}, genSCT{log: ret, at: ago(2 * day)}},
			// Chromium counts the retired log's SCT for operator diversity,
			// not towards the number of SCTs.
			wants:      []want{{"chrome", false, sctverify.RuleEmbeddedCount}, {"mozilla", false, sctverify.RuleEmbeddedCount}},
			notCounted: map[int]string{2: "retired"}},
		{name: "TiledWithLeafIndex", scts: []genSCT{s(a), s(tiled)},
			wants: []want{{"chrome", true, ""}, {"apple", true, ""}, {"mozilla", true, ""}}},
		{name: "TiledWithoutLeafIndex", scts: []genSCT{s(a), {log: tiled, at: sctTime, noIndex: true}},
			wants:      []want{{"chrome", false, ""}, {"apple", false, ""}, {"mozilla", false, ""}},
			notCounted: map[int]string{2: "leaf_index"}},
		{name: "ReadOnlyAfterItsTimestamp", scts: []genSCT{s(a), genSCT{log: ro, at: ago(2 * day)}},
			wants: []want{{"chrome", true, ""}, {"apple", false, sctverify.RuleApprovedMinimum}, {"mozilla", true, ""}}},
		{name: "QualifiedCounts", scts: []genSCT{s(a), s(qual)},
			wants: []want{{"chrome", true, ""}, {"apple", true, ""}, {"mozilla", true, ""}}},
		// Chrome and Apple take the operator at the SCT's time; Firefox
		// the current one.
		{name: "PreviousOperator", scts: []genSCT{s(a), s(switched)},
			wants: []want{{"chrome", true, ""}, {"apple", true, ""}, {"mozilla", false, sctverify.RuleOperators}}},
		{name: "RetiresInFiveDays/Now", scts: []genSCT{s(a), s(soon)},
			wants: []want{{"chrome", true, ""}, {"apple", true, ""}, {"mozilla", true, ""}}},
		// Six days on, h is retired; its SCT is from before, and counts.
		{name: "RetiresInFiveDays/SixDaysOn", scts: []genSCT{s(a), s(soon)}, args: []string{"--now", now.Add(6 * day).UTC().Format(time.RFC3339)},
			wants: []want{{"chrome", true, ""}, {"apple", true, ""}, {"mozilla", true, ""}}},
		// Before the SCTs existed, they are in the future: invalid.
		{name: "Past", scts: []genSCT{s(a), s(qual)}, args: []string{"--now", ago(25 * day).UTC().Format(time.RFC3339)},
			wants: []want{{"chrome", false, ""}, {"apple", false, ""}, {"mozilla", false, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := write(strings.ReplaceAll(tc.name, "/", "-")+".pem", genCert(t, ca, nb, 90*day, tc.scts...))
			r, code := verdicts(t, list, append(tc.args, f)...)
			allMet := true
			for _, w := range tc.wants {
				v := verdictOf(r, w.policy)
				allMet = allMet && v.Compliant
				if v.Compliant != w.compliant || w.rule != "" && v.Rule != w.rule {
					t.Errorf("%s: compliant %v by %q (%s); want %v by %q\nnot counted %+v", w.policy, v.Compliant, v.Rule, v.Detail, w.compliant, w.rule, v.NotCounted)
				}
				for idx, word := range tc.notCounted {
					if why := notCountedFor(v, sctverify.SourceEmbedded, idx); !strings.Contains(why, word) {
						t.Errorf("%s: SCT #%d not counted for %q, want a reason with %q", w.policy, idx, why, word)
					}
				}
			}
			if allMet && len(tc.wants) == 3 && code != 0 || !allMet && code != 1 {
				t.Errorf("exit %d with every policy met: %v", code, allMet)
			}
			if tc.name == "RetiresInFiveDays/SixDaysOn" && r.SCTs[1].LogState != sctverify.StateRetired {
				t.Errorf("six days on, h's state is %q", r.SCTs[1].LogState)
			}
			if tc.name == "RetiresInFiveDays/Now" && r.SCTs[1].LogState != sctverify.StateUsable {
				t.Errorf("today, h's state is %q", r.SCTs[1].LogState)
			}
		})
	}

	// A stale list: Apple stops at 60 days, Chrome and Firefox at 70.
	t.Run("StaleList", func(t *testing.T) {
		stale := writeGenList(t, t.TempDir(), ago(65*day), a, pend)
		f := write("stale.pem", genCert(t, ca, nb, 90*day, s(a), s(pend)))
		r, code := verdicts(t, stale, f)
		for _, w := range []struct {
			policy   string
			enforced bool
		}{{"chrome", true}, {"apple", false}, {"mozilla", true}} {
			if v := verdictOf(r, w.policy); v.Enforced != w.enforced || v.Compliant {
				t.Errorf("%s on a 65-day-old list: enforced %v compliant %v, want enforced %v", w.policy, v.Enforced, v.Compliant, w.enforced)
			}
		}
		if code != 1 {
			t.Errorf("exit %d, want 1 (Chrome enforces, not met)", code)
		}
	})

	// TLS and OCSP through --host: a certificate without embedded SCTs,
	// an SCT of a in the TLS extension, one of the qualified log c in the
	// stapled OCSP response (both over the certificate's X.509 entry).
	t.Run("Host", func(t *testing.T) {
		chainPEM := genCert(t, ca, nb, 90*day)
		certs := parsePEMCerts(t, chainPEM)
		entry := ct.LogEntry{Leaf: *ct.CreateX509MerkleTreeLeaf(ct.ASN1Cert{Data: certs[0].Raw}, 0)}
		tlsSCT := s(a).sign(t, entry, 0)
		ocspSCT := s(qual).sign(t, entry, 0)
		staple := ocspWithSCTs(t, ca, certs[0], [][]byte{ocspSCT})
		addr := serveTLS(t, tls.Certificate{Certificate: [][]byte{certs[0].Raw, certs[1].Raw}, PrivateKey: ca.LeafKey, Leaf: certs[0],
			SignedCertificateTimestamps: [][]byte{tlsSCT}, OCSPStaple: staple})
		r, code := verdicts(t, list, "--host", addr)
		if code != 1 || verdictOf(r, "chrome").Compliant || !strings.Contains(notCountedFor(verdictOf(r, "chrome"), sctverify.SourceOCSP, 1), "OCSP") {
			t.Errorf("Chrome 148 with a TLS and an OCSP SCT: exit %d, %+v", code, verdictOf(r, "chrome"))
		}
		for _, p := range []string{"apple", "mozilla"} {
			if v := verdictOf(r, p); !v.Compliant || v.Rule != sctverify.RuleCompliantDeliver {
				t.Errorf("%s: %+v, want met over TLS/OCSP", p, v)
			}
		}
		r, code = verdicts(t, list, "--host", addr, "--chrome-version", "147")
		if code != 0 || !verdictOf(r, "chrome").Compliant {
			t.Errorf("Chrome 147: exit %d, %+v", code, verdictOf(r, "chrome"))
		}
	})
}

func parsePEMCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
