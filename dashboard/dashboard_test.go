package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/ctlog"
)

func testIndex() *index {
	x := newIndex(slog.New(slog.DiscardHandler), http.DefaultClient)
	si := &shardIndex{}
	x.shards["s"] = si
	x.order = []string{"s"}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for i, names := range [][]string{
		{"example.com", "www.example.com"},
		{"a.b.example.com"},
		{"notexample.com"},
		{"EXAMPLE.org."},
	} {
		x.add(si, &record{Shard: "s", Index: uint64(i), Timestamp: now.Add(time.Duration(i) * time.Second), Names: names,
			Serial: fmt.Sprintf("%x", 0xab00+i), Issuer: "CN=I", SHA256: strings.Repeat(fmt.Sprint(i), 64)})
	}
	return x
}

func TestSearch(t *testing.T) {
	x := testIndex()
	for _, tc := range []struct {
		q    string
		kind string
		want []uint64 // indexes, newest first
	}{
		{"example.com", "name", []uint64{1, 0}},
		{"*.example.com", "name", []uint64{1, 0}},
		{"EXAMPLE.COM.", "name", []uint64{1, 0}},
		{"b.example.com", "name", []uint64{1}},
		{"www.example.com", "name", []uint64{0}},
		{"ample.com", "name", nil}, // labels, not substrings
		{"example.org", "name", []uint64{3}},
		{"com", "name", []uint64{2, 1, 0}},
		{"ab01", "serial", []uint64{1}},
		{"AB:01", "serial", []uint64{1}},
		{"00ab02", "serial", []uint64{2}},
		{strings.Repeat("3", 64), "SHA-256", []uint64{3}},
		{strings.Repeat("9", 64), "SHA-256", nil},
		{"<script>", "name", nil},
	} {
		kind, got, _ := x.search(tc.q)
		var idx []uint64
		for _, r := range got {
			idx = append(idx, r.Index)
		}
		if kind != tc.kind || fmt.Sprint(idx) != fmt.Sprint(tc.want) {
			t.Errorf("search(%q) = %s %v, want %s %v", tc.q, kind, idx, tc.kind, tc.want)
		}
	}
	// Paged newest first.
	recs, total := x.page("s", 1, 2)
	if total != 4 || len(recs) != 2 || recs[0].Index != 2 || recs[1].Index != 1 {
		t.Errorf("page(1, 2): %d of %d, %+v", len(recs), total, recs)
	}
	// An entry read twice (a retried read) is indexed once.
	x.add(x.shards["s"], &record{Shard: "s", Index: 2, Names: []string{"dup.example.com"}})
	if _, got, _ := x.search("dup.example.com"); len(got) != 0 {
		t.Errorf("a re-read entry was indexed again: %v", got)
	}
}

// FuzzSearch: any query gives an answer and never a panic.
func FuzzSearch(f *testing.F) {
	x := testIndex()
	for _, s := range []string{"example.com", "ab:01", strings.Repeat("a", 64), "", ".", "*.", "..", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		kind, got, _ := x.search(q)
		if kind == "" || len(got) > searchLimit {
			t.Fatalf("search(%q): kind %q, %d results", q, kind, len(got))
		}
	})
}

// fakeLogs is a Logs with one shard whose faults it records.
type fakeLogs struct{ set, cleared []string }

func (f *fakeLogs) LogList() *loglist3.LogList { return &loglist3.LogList{} }
func (f *fakeLogs) Shards() []ctlog.LogInfo    { return []ctlog.LogInfo{{Shard: "s", Type: "rfc6962"}} }
func (f *fakeLogs) AddFault(shard string, body []byte) (ctlog.LogInfo, error) {
	if shard != "s" {
		return ctlog.LogInfo{}, ctlog.ErrNoShard
	}
	if !strings.Contains(string(body), `"kind"`) {
		return ctlog.LogInfo{}, errors.New("no kind")
	}
	f.set = append(f.set, string(body))
	return ctlog.LogInfo{Shard: shard}, nil
}
func (f *fakeLogs) SetState(shard string, req ctlog.StateRequest) (ctlog.LogInfo, error) {
	if req.State != "readonly" {
		return ctlog.LogInfo{}, errors.New("bad state")
	}
	f.set = append(f.set, "state "+req.State)
	return ctlog.LogInfo{Shard: shard}, nil
}
func (f *fakeLogs) Submissions(string) uint64 { return 0 }
func (f *fakeLogs) ClearFaults(shard string) (ctlog.LogInfo, error) {
	f.cleared = append(f.cleared, shard)
	return ctlog.LogInfo{Shard: shard}, nil
}

// TestFaultsForm: the faults form works from this origin on loopback
// with the page's token, and nothing else gets a fault set.
func TestFaultsForm(t *testing.T) {
	logs := &fakeLogs{}
	d, err := New(Options{Logs: logs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	post := func(remote, host, origin string, form url.Values) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/faults", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr, r.Host = remote, host
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	good := url.Values{"token": {d.token()}, "shard": {"s"}, "action": {"set"}, "kind": {"unavailable"}}
	for _, tc := range []struct {
		name                 string
		remote, host, origin string
		form                 url.Values
		want                 int
	}{
		{"from another machine", "192.0.2.1:5000", "127.0.0.1:6962", "", good, http.StatusForbidden},
		{"a non-loopback Host (DNS rebinding)", "127.0.0.1:5000", "evil.example:6962", "", good, http.StatusForbidden},
		{"another origin", "127.0.0.1:5000", "127.0.0.1:6962", "http://evil.example", good, http.StatusForbidden},
		{"another loopback origin", "127.0.0.1:5000", "127.0.0.1:6962", "http://127.0.0.1:8080", good, http.StatusForbidden},
		{"no token", "127.0.0.1:5000", "127.0.0.1:6962", "", url.Values{"shard": {"s"}, "action": {"set"}, "kind": {"unavailable"}}, http.StatusForbidden},
		{"a wrong token", "127.0.0.1:5000", "127.0.0.1:6962", "", url.Values{"token": {"00"}, "shard": {"s"}, "action": {"set"}, "kind": {"x"}}, http.StatusForbidden},
		{"no such shard", "127.0.0.1:5000", "127.0.0.1:6962", "", url.Values{"token": {d.token()}, "shard": {"nope"}, "action": {"set"}, "kind": {"drop"}}, http.StatusNotFound},
		{"a bad fault", "127.0.0.1:5000", "127.0.0.1:6962", "", url.Values{"token": {d.token()}, "shard": {"s"}, "action": {"set"}, "fault": {"{}"}}, http.StatusBadRequest},
		{"a bad action", "127.0.0.1:5000", "127.0.0.1:6962", "", url.Values{"token": {d.token()}, "shard": {"s"}, "action": {"boom"}}, http.StatusBadRequest},
		{"set", "127.0.0.1:5000", "127.0.0.1:6962", "http://127.0.0.1:6962", good, http.StatusSeeOther},
		{"clear", "[::1]:5000", "localhost:6962", "", url.Values{"token": {d.token()}, "shard": {"s"}, "action": {"clear"}}, http.StatusSeeOther},
		{"a bad state", "127.0.0.1:5000", "127.0.0.1:6962", "", url.Values{"token": {d.token()}, "shard": {"s"}, "action": {"state"}, "state": {"gone"}}, http.StatusBadRequest},
		{"state", "127.0.0.1:5000", "127.0.0.1:6962", "", url.Values{"token": {d.token()}, "shard": {"s"}, "action": {"state"}, "state": {"readonly"}}, http.StatusSeeOther},
	} {
		if w := post(tc.remote, tc.host, tc.origin, tc.form); w.Code != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.name, w.Code, tc.want, w.Body)
		}
	}
	if len(logs.set) != 2 || logs.set[0] != `{"kind":"unavailable"}` || logs.set[1] != "state readonly" || len(logs.cleared) != 1 {
		t.Errorf("faults set %q, cleared %q: want one of each, from the good posts only", logs.set, logs.cleared)
	}
}

// TestPagesEscape: a name with markup is text in every page that shows it.
func TestPagesEscape(t *testing.T) {
	d, err := New(Options{Logs: &fakeLogs{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	si := &shardIndex{}
	d.index.shards["s"], d.index.order = si, []string{"s"}
	d.index.add(si, &record{Shard: "s", Index: 0, Names: []string{`<script>alert("x")</script>.example.com`}, Issuer: `CN="<b>"`, SHA256: strings.Repeat("a", 64)})
	for _, path := range []string{"/search?q=example.com", "/shard/s", `/search?q="><script>`} {
		w := httptest.NewRecorder()
		d.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		body := w.Body.String()
		if w.Code != http.StatusOK || strings.Contains(body, "<script>") || strings.Contains(body, "<b>") {
			t.Errorf("%s: %d, markup in the page:\n%s", path, w.Code, body)
		}
		if !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: no CSP", path)
		}
	}
	for _, path := range []string{"/shard/nope", "/cert/xyz", "/cert/" + strings.Repeat("b", 64), "/shard/s?page=9"} {
		w := httptest.NewRecorder()
		d.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, w.Code)
		}
	}
}

func TestPerSecond(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s := []sample{{At: t0, Size: 10}, {At: t0.Add(10 * time.Second), Size: 60}, {At: t0.Add(20 * time.Second), Size: 40}, {At: t0.Add(20 * time.Second), Size: 90}}
	f := perSecond(s, func(x sample) uint64 { return x.Size })
	for i, want := range []float64{0, 5, 0, 0} { // first; 50 in 10 s; went back; no time passed
		if got := f(i); got != want {
			t.Errorf("perSecond at %d = %v, want %v", i, got, want)
		}
	}
}
