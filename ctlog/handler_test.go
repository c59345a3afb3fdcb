package ctlog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ctstage/ctstage/ctlog"
)

func TestGetEntriesLimit(t *testing.T) {
	l := newTestLog(t, parseConfig(t, oneShard))
	for i := range 5 {
		chain, err := l.ca.Leaf(fmt.Sprintf("ge-%d.example.com", i), time.Now().AddDate(0, 1, 0), false)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := l.post(t, "add-chain", chainJSON(chain)); code != 200 {
			t.Fatalf("add-chain: %d %s", code, body)
		}
	}
	waitTreeSize(t, l, 5)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"start=0&end=4", 3},
		{"start=1&end=2", 2},
		{"start=4&end=4", 1},
		{"start=3&end=100", 2}, // ctfe cuts to the tree size
	} {
		code, body := l.get(t, "/test/ct/v1/get-entries?"+tc.query)
		if code != 200 {
			t.Fatalf("get-entries?%s: %d %s", tc.query, code, body)
		}
		var rsp struct{ Entries []json.RawMessage }
		if err := json.Unmarshal([]byte(body), &rsp); err != nil {
			t.Fatal(err)
		}
		if len(rsp.Entries) != tc.want {
			t.Errorf("get-entries?%s: %d entries, want %d", tc.query, len(rsp.Entries), tc.want)
		}
	}
	// In process: every entry, in batches of the limit (3), the same
	// bytes as get-entries serves.
	var got []uint64
	err := l.srv.ReadEntries(t.Context(), "test", 1, 5, func(i uint64, leaf, extra []byte) error {
		got = append(got, i)
		_, body := l.get(t, fmt.Sprintf("/test/ct/v1/get-entries?start=%d&end=%d", i, i))
		var rsp struct {
			Entries []struct {
				LeafInput []byte `json:"leaf_input"`
				ExtraData []byte `json:"extra_data"`
			}
		}
		if err := json.Unmarshal([]byte(body), &rsp); err != nil || len(rsp.Entries) != 1 ||
			string(rsp.Entries[0].LeafInput) != string(leaf) || string(rsp.Entries[0].ExtraData) != string(extra) {
			t.Errorf("ReadEntries' entry %d is not get-entries' (%v)", i, err)
		}
		return nil
	})
	if err != nil || fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("ReadEntries(1, 5): %v, %v; want [1 2 3 4]", got, err)
	}
	if err := l.srv.ReadEntries(t.Context(), "test", 4, 9, func(uint64, []byte, []byte) error { return nil }); err == nil {
		t.Error("ReadEntries beyond the signed tree succeeded")
	}
	if err := l.srv.ReadEntries(t.Context(), "nope", 0, 1, nil); !errors.Is(err, ctlog.ErrNotRFC6962) {
		t.Errorf("ReadEntries of no shard: %v", err)
	}
}

func waitTreeSize(t *testing.T, l *testLog, size int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, body := l.get(t, "/test/ct/v1/get-sth")
		var sth struct {
			TreeSize int `json:"tree_size"`
		}
		json.Unmarshal([]byte(body), &sth)
		if sth.TreeSize >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree size %d, want %d", sth.TreeSize, size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	l := newTestLog(t, parseConfig(t, oneShard))
	if code, body := l.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz: %d %s", code, body)
	}
	chain, err := l.ca.Leaf("metrics.example.com", time.Now().AddDate(0, 1, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	l.post(t, "add-pre-chain", chainJSON(chain))
	l.post(t, "add-pre-chain", "{")
	waitTreeSize(t, l, 1)
	for _, tc := range []struct {
		outcome string
		want    float64
	}{{"accepted", 1}, {"rejected", 1}} {
		n, err := gather(l, "ctstage_log_submissions_total", map[string]string{"shard": "test", "endpoint": "add-pre-chain", "outcome": tc.outcome})
		if err != nil || n != tc.want {
			t.Errorf("submissions{outcome=%s} = %v (%v), want %v", tc.outcome, n, err, tc.want)
		}
	}
	// The integration delay is sampled once a second as trees grow.
	chain, err = l.ca.Leaf("metrics2.example.com", time.Now().AddDate(0, 1, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	l.post(t, "add-pre-chain", chainJSON(chain))
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := testutil.GatherAndCount(l.reg, "ctstage_log_integration_delay_seconds")
		if err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no integration delay observed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range []string{"ctstage_log_tree_size", "ctstage_log_sth_age_seconds", "ctstage_log_info"} {
		if n, err := testutil.GatherAndCount(l.reg, name); err != nil || n == 0 {
			t.Errorf("metric %s missing: %v", name, err)
		}
	}
}

// gather reads one sample of a metric family from the test log's registry.
func gather(l *testLog, name string, labels map[string]string) (float64, error) {
	mfs, err := l.reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no %s%v", name, labels)
}

func TestReadOnlyShardRefusesAdds(t *testing.T) {
	l := newTestLog(t, parseConfig(t, strings.Replace(oneShard, "max_get_entries: 3", "state: readonly", 1)))
	chain, err := l.ca.Leaf("ro.example.com", time.Now().AddDate(0, 1, 0), false)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := l.post(t, "add-chain", chainJSON(chain)); code == http.StatusOK {
		t.Errorf("a read-only shard accepted add-chain")
	}
	if code, body := l.get(t, "/test/ct/v1/get-sth"); code != 200 {
		t.Errorf("read-only get-sth: %d %s", code, body)
	}
	// A refused submission is a submission; a read is not.
	l.post(t, "add-pre-chain", "{}")
	if n := l.srv.Submissions("test"); n != 2 {
		t.Errorf("Submissions = %d after an add-chain, an add-pre-chain and a get-sth; want 2", n)
	}
	if n := l.srv.Submissions("nope"); n != 0 {
		t.Errorf("Submissions of no shard = %d", n)
	}
}

// FuzzAddChain sends arbitrary bodies to add-chain and add-pre-chain: the
// answer is 200 or a 4xx, never a 5xx, and the server keeps serving.
func FuzzAddChain(f *testing.F) {
	l := newTestLog(f, parseConfig(f, oneShard))
	notAfter := time.Now().AddDate(0, 1, 0)
	cert, err := l.ca.Leaf("fuzz.example.com", notAfter, false)
	if err != nil {
		f.Fatal(err)
	}
	pre, err := l.ca.Leaf("fuzz-pre.example.com", notAfter, true)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		chainJSON(cert), chainJSON(pre), chainJSON(cert[:1]), chainJSON(pre[1:]),
		`{"chain":[]}`, `{"chain":["AAAA"]}`, `{"chain":null}`, `{}`, `[]`, `{"chain":[1]}`,
		`{"chain":["` + b64([]byte{0x30, 0x82, 0xff, 0xff}) + `"]}`, "", "\x00",
	} {
		f.Add(false, []byte(seed))
		f.Add(true, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, precert bool, body []byte) {
		path := "add-chain"
		if precert {
			path = "add-pre-chain"
		}
		code, msg := l.post(t, path, string(body))
		if code >= 500 {
			t.Fatalf("%s with %q: status %d %s", path, body, code, msg)
		}
		if code != 200 && len(msg) < len("Bad Request")+5 {
			t.Errorf("%s: status %d with no explanation: %q", path, code, msg)
		}
	})
}

// TestShardPolicies checks the per-shard acceptance settings.
func TestShardPolicies(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name, shard string
		notAfter    time.Time
		wantCode    int
		wantMsg     string
	}{
		{"InWindow", "not_after_start: 2000-01-01T00:00:00Z\n      not_after_limit: 2100-01-01T00:00:00Z", now.AddDate(0, 1, 0), 200, ""},
		{"BeforeWindow", "not_after_start: " + now.AddDate(1, 0, 0).UTC().Format(time.RFC3339) + "\n      not_after_limit: " + now.AddDate(2, 0, 0).UTC().Format(time.RFC3339), now.AddDate(0, 1, 0), 400, "NotAfter"},
		{"RejectExpired", "reject_expired: true", now.Add(-time.Minute), 400, "expired"},
		{"ExpiredAccepted", "reject_expired: false", now.Add(-time.Minute), 200, ""},
		{"WrongEKU", "ext_key_usages: [ClientAuth]", now.AddDate(0, 1, 0), 400, "EKU"},
		{"RightEKU", "ext_key_usages: [ServerAuth]", now.AddDate(0, 1, 0), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t, parseConfig(t, "logs:\n  operators:\n  - name: Op\n    shards:\n    - name: test\n      "+tc.shard+"\n"))
			chain, err := l.ca.Leaf("policy.example.com", tc.notAfter, false)
			if err != nil {
				t.Fatal(err)
			}
			code, body := l.post(t, "add-chain", chainJSON(chain))
			if code != tc.wantCode || !strings.Contains(body, tc.wantMsg) {
				t.Errorf("add-chain: %d %q, want %d mentioning %q", code, body, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

// TestIdleSTHRefresh checks that an idle shard signs fresh STHs.
func TestIdleSTHRefresh(t *testing.T) {
	l := newTestLog(t, parseConfig(t, oneShard+"  sth_max_age: 1s\n"))
	timestamp := func() int64 {
		_, body := l.get(t, "/test/ct/v1/get-sth")
		var sth struct{ Timestamp int64 }
		if err := json.Unmarshal([]byte(body), &sth); err != nil {
			t.Fatal(err)
		}
		return sth.Timestamp
	}
	first := timestamp()
	deadline := time.Now().Add(5 * time.Second)
	for timestamp() == first {
		if time.Now().After(deadline) {
			t.Fatal("no new STH within 5 s on an idle shard with sth_max_age 1s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FuzzReadEndpoints sends outside query strings to every read endpoint
// of a shard with a few entries: no answer is a 5xx, and every refusal
// says why.
func FuzzReadEndpoints(f *testing.F) {
	l := newTestLog(f, parseConfig(f, oneShard))
	notAfter := time.Now().AddDate(0, 1, 0)
	for i := range 3 {
		chain, err := l.ca.Leaf(fmt.Sprintf("fuzz-read-%d.example.com", i), notAfter, false)
		if err != nil {
			f.Fatal(err)
		}
		if code, msg := l.post(f, "add-chain", chainJSON(chain)); code != 200 {
			f.Fatalf("add-chain: %d %s", code, msg)
		}
	}
	endpoints := []string{"get-sth", "get-sth-consistency", "get-proof-by-hash", "get-entries", "get-roots", "get-entry-and-proof"}
	for i, q := range []string{
		"", "first=1&second=3", "first=3&second=1", "first=0&second=99", "hash=AAAA&tree_size=3",
		"hash=" + b64(make([]byte, 32)) + "&tree_size=1000", "start=0&end=2", "start=5&end=1", "start=-1&end=0",
		"start=0&end=9223372036854775807", "leaf_index=0&tree_size=3", "leaf_index=9&tree_size=2",
		"tree_size=18446744073709551615&hash=%00", "start=%ff&end=%00", "first=1e3&second=2",
	} {
		f.Add(uint8(i), q)
	}
	f.Fuzz(func(t *testing.T, which uint8, query string) {
		path := endpoints[int(which)%len(endpoints)]
		if _, err := url.Parse("http://x/?" + query); err != nil || strings.ContainsAny(query, "# ") {
			return // not a query string an HTTP client sends
		}
		code, msg := l.get(t, "/test/ct/v1/"+path+"?"+query)
		if code >= 500 {
			t.Fatalf("%s?%s: status %d %s", path, query, code, msg)
		}
		if code != 200 && len(strings.TrimSpace(msg)) < 5 {
			t.Errorf("%s?%s: status %d with no explanation: %q", path, query, code, msg)
		}
	})
}

// TestGetEntriesSameAsCtfe checks that ctstage's own get-entries path
// answers every request exactly as ctfe does: status, caching headers
// and body to the byte, over ranges that are whole, cut to the limit,
// aligned, partial at the tree's end, beyond it, and malformed.
func TestGetEntriesSameAsCtfe(t *testing.T) {
	l := newTestLog(t, parseConfig(t, strings.Replace(oneShard, "max_get_entries: 3", "max_get_entries: 4", 1)))
	for i := range 10 {
		pre := i%2 == 0
		chain, err := l.ca.Leaf(fmt.Sprintf("same-%d.example.com", i), time.Now().AddDate(0, 1, 0), pre)
		if err != nil {
			t.Fatal(err)
		}
		ep := "add-chain"
		if pre {
			ep = "add-pre-chain"
		}
		if code, body := l.post(t, ep, chainJSON(chain)); code != 200 {
			t.Fatalf("add-chain: %d %s", code, body)
		}
	}
	waitTreeSize(t, l, 10)
	fetch := func(method, query string) (int, http.Header, string) {
		req, err := http.NewRequest(method, l.http.URL+"/test/ct/v1/get-entries?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		b, _ := io.ReadAll(rsp.Body)
		return rsp.StatusCode, rsp.Header, string(b)
	}
	defer ctlog.SetCtfeEntriesOnly(false)
	for _, tc := range []struct {
		method, query string
		status, n     int
	}{
		{"GET", "start=0&end=3", 200, 4},
		{"GET", "start=0&end=100", 200, 4},       // cut to the limit
		{"GET", "start=1&end=100", 200, 3},       // cut, then aligned to a multiple of 4
		{"GET", "start=2&end=3", 200, 2},         // short of the limit: not aligned
		{"GET", "start=9&end=9", 200, 1},         // the last entry
		{"GET", "start=8&end=11", 200, 2},        // partial at the tree's end
		{"GET", "start=10&end=12", 400, 0},       // beyond the tree
		{"GET", "start=5&end=4", 400, 0},         // reversed
		{"GET", "start=-1&end=4", 400, 0},        // negative
		{"GET", "start=x&end=4", 400, 0},         // not a number
		{"GET", "end=4", 400, 0},                 // missing start
		{"GET", "start=0&end=1&%zz", 400, 0},     // a query ParseForm refuses
		{"GET", "start=0&start=5&end=6", 200, 4}, // the first value counts
		{"POST", "start=0&end=3", 405, 0},
	} {
		ctlog.SetCtfeEntriesOnly(true)
		wantStatus, wantHdr, want := fetch(tc.method, tc.query)
		ctlog.SetCtfeEntriesOnly(false)
		status, hdr, got := fetch(tc.method, tc.query)
		if wantStatus != tc.status {
			t.Errorf("%s %s: ctfe answered %d, the test expects %d: %s", tc.method, tc.query, wantStatus, tc.status, want)
		}
		if status != wantStatus || got != want {
			t.Errorf("%s %s: %d %q, ctfe %d %q", tc.method, tc.query, status, got, wantStatus, want)
		}
		for _, h := range []string{"Cache-Control", "Content-Type"} {
			if hdr.Get(h) != wantHdr.Get(h) {
				t.Errorf("%s %s: %s %q, ctfe %q", tc.method, tc.query, h, hdr.Get(h), wantHdr.Get(h))
			}
		}
		if status == 200 {
			var rsp struct{ Entries []json.RawMessage }
			if err := json.Unmarshal([]byte(got), &rsp); err != nil || len(rsp.Entries) != tc.n {
				t.Errorf("%s %s: %d entries (%v), want %d", tc.method, tc.query, len(rsp.Entries), err, tc.n)
			}
		}
	}
}
