package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	cttls "github.com/google/certificate-transparency-go/tls"

	"github.com/ctstage/ctstage/sctverify"
)

// verifyFaultsConfig is tiledConfig with a 2 s MMD on classic-b, so that
// an entry it never integrates is overdue within the test.
var verifyFaultsConfig = strings.Replace(tiledConfig, "{name: classic-b}", "{name: classic-b, mmd: 2s}", 1)

// TestVerifyUnderFaults: the ctstage binary's verify, given a TLS server
// whose SCTs come from logs under faults, flags each: a bad signature
// and a future timestamp are invalid, a past timestamp is warned about
// (browsers accept it), and an entry the log never integrated is
// not-included once its MMD has passed.
func TestVerifyUnderFaults(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStageText(t, t.TempDir(), verifyFaultsConfig, ca, root)
	if fs.ll["classic-b"].log.MMD != 2 {
		t.Fatalf("classic-b's MMD is %d s, want 2", fs.ll["classic-b"].log.MMD)
	}
	faulty := []struct{ shard, fault string }{
		{"classic-a", `{"kind":"bad_sct_signature"}`},
		{"tiled-a", `{"kind":"sct_timestamp_skew","offset_ms":3600000}`},
		{"tiled-b", `{"kind":"sct_timestamp_skew","offset_ms":-86400000}`},
		{"classic-b", `{"kind":"no_integrate"}`},
	}
	chain := fs.chain(t, "verify-faults.example.com")
	var scts [][]byte
	for _, f := range faulty {
		fs.set(t, f.shard, "faults", f.fault)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sct, err := fs.rawClient(t, f.shard).AddChain(ctx, asn1Chain(chain)) // the raw client checks nothing
		cancel()
		if err != nil {
			t.Fatalf("%s: add-chain: %v", f.shard, err)
		}
		b, err := cttls.Marshal(*sct)
		if err != nil {
			t.Fatal(err)
		}
		scts = append(scts, b)
	}
	certs := parseDERs(t, chain)
	addr := serveTLS(t, tls.Certificate{Certificate: chain, PrivateKey: ca.LeafKey, Leaf: certs[0], SignedCertificateTimestamps: scts})
	time.Sleep(2500 * time.Millisecond) // past classic-b's MMD

	run := func(args ...string) (string, int) {
		cmd := exec.Command(ctstageBinary(t), append([]string{"verify", "--log-list", fs.LogURL + "/log.v3.json", "--host", addr}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run("--json")
	if code != 1 {
		t.Errorf("exit code %d, want 1:\n%s", code, out)
	}
	var r sctverify.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(r.SCTs) != len(faulty) {
		t.Fatalf("%d SCTs, want %d:\n%s", len(r.SCTs), len(faulty), out)
	}
	byLog := map[string]sctverify.SCTResult{}
	for _, s := range r.SCTs {
		byLog[s.Log] = s
	}
	desc := func(shard string) string { return fs.ll[shard].log.Description }
	inclusion := func(s sctverify.SCTResult) string {
		if s.Inclusion == nil {
			return ""
		}
		return s.Inclusion.Status
	}
	for _, tc := range []struct {
		shard, status, reason, warning, inclusion string
	}{
		{"classic-a", sctverify.StatusInvalid, "signature", "", ""},
		{"tiled-a", sctverify.StatusInvalid, "in the future", "", ""},
		{"tiled-b", sctverify.StatusValid, "", "before the certificate's notBefore", sctverify.InclusionIncluded},
		{"classic-b", sctverify.StatusValid, "", "", sctverify.InclusionNotIncluded},
	} {
		s, ok := byLog[desc(tc.shard)]
		switch {
		case !ok:
			t.Errorf("%s: no SCT in the report", tc.shard)
		case s.Status != tc.status || !strings.Contains(s.Reason, tc.reason):
			t.Errorf("%s: %s (%s), want %s (%s)", tc.shard, s.Status, s.Reason, tc.status, tc.reason)
		case tc.warning != "" && (len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], tc.warning)):
			t.Errorf("%s: warnings %q, want one with %q", tc.shard, s.Warnings, tc.warning)
		case tc.warning == "" && len(s.Warnings) > 0:
			t.Errorf("%s: warnings %q", tc.shard, s.Warnings)
		case tc.inclusion != "" && inclusion(s) != tc.inclusion:
			t.Errorf("%s: inclusion %+v, want %s", tc.shard, s.Inclusion, tc.inclusion)
		}
	}
	// The same, as people read it.
	text, _ := run()
	for _, want := range []string{"invalid: ", "in the future", "WARNING", "not-included", "result: FAIL"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text report lacks %q:\n%s", want, text)
		}
	}
	t.Logf("\n%s", text)
}
