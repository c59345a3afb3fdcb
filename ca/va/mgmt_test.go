package va

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestMgmtHandler(t *testing.T) {
	z := NewZone(nil, nil)
	srv := httptest.NewServer(MgmtHandler(z))
	defer srv.Close()
	post := func(path, body string) int {
		t.Helper()
		rsp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		return rsp.StatusCode
	}
	txt := func() []string { return z.TXT("_acme-challenge.example.com") }
	addrs := func() []netip.Addr { return z.Addrs("example.com") }
	caa := func() []CAA { return z.CAA("example.com") }
	for _, tc := range []struct {
		path, body string
		status     int
		check      func() bool
	}{
		{"/set-txt", `{"host":"_acme-challenge.example.com.","value":"v1"}`, 200, func() bool { return slices.Equal(txt(), []string{"v1"}) }},
		{"/set-txt", `{"host":"_ACME-challenge.example.com","value":"v2"}`, 200, func() bool { return slices.Equal(txt(), []string{"v1", "v2"}) }},
		{"/set-txt", `{"host":"_acme-challenge.example.com","value":"v2"}`, 200, func() bool { return len(txt()) == 2 }},
		{"/set-txt", `{"host":"_acme-challenge.example.com","value":"` + strings.Repeat("x", 256) + `"}`, 400, func() bool { return len(txt()) == 2 }},
		{"/clear-txt", `{"host":"_acme-challenge.example.com"}`, 200, func() bool { return len(txt()) == 0 }},
		{"/add-a", `{"host":"example.com","addresses":["192.0.2.1","2001:db8::1"]}`, 200, func() bool {
			return slices.Equal(addrs(), []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")})
		}},
		{"/add-a", `{"host":"example.com","addresses":["192.0.2.300"]}`, 400, func() bool { return len(addrs()) == 2 }},
		{"/clear-a", `{"host":"example.com"}`, 200, func() bool { return slices.Equal(addrs(), []netip.Addr{netip.MustParseAddr("127.0.0.1")}) }},
		{"/set-caa", `{"host":"example.com","policies":[{"tag":"issue","value":"ctstage.invalid"},{"flag":128,"tag":"tbs","value":""}]}`, 200,
			func() bool { return len(caa()) == 2 && caa()[1].Flag == 128 }},
		{"/set-caa", `{"host":"example.com","policies":[{"tag":"","value":"x"}]}`, 400, func() bool { return len(caa()) == 2 }},
		{"/set-caa", `{"host":"example.com","policies":[{"tag":"is sue","value":"x"}]}`, 400, func() bool { return len(caa()) == 2 }},
		{"/set-caa", `{"host":"example.com","policies":[{"tag":"issue","value":"x"}],"extra":1}`, 400, func() bool { return len(caa()) == 2 }},
		{"/clear-caa", `{"host":"example.com"}`, 200, func() bool { return len(caa()) == 0 }},
		{"/set-txt", `{"value":"v1"}`, 400, func() bool { return len(txt()) == 0 }},
		{"/set-txt", `{"host":"bad..name","value":"v1"}`, 400, func() bool { return len(z.TXT("bad..name")) == 0 }},
		{"/set-txt", `not json`, 400, func() bool { return len(txt()) == 0 }},
		{"/set-txt", `[]`, 400, func() bool { return true }},
		{"/set-txt", `{"host":"_acme-challenge.example.com","value":"v"} trailing`, 400, func() bool { return len(txt()) == 0 }},
		{"/set-txt", `{"host":"_acme-challenge.example.com","value":"` + strings.Repeat("x", 70<<10) + `"}`, 400, func() bool { return len(txt()) == 0 }},
		{"/unknown", `{"host":"example.com"}`, 404, func() bool { return true }},
	} {
		if got := post(tc.path, tc.body); got != tc.status {
			t.Errorf("POST %s %.80s: status %d, want %d", tc.path, tc.body, got, tc.status)
		}
		if !tc.check() {
			t.Errorf("POST %s %.80s: zone is now TXT %q, A %v, CAA %v", tc.path, tc.body, txt(), addrs(), caa())
		}
	}
	rsp, err := http.Get(srv.URL + "/set-txt")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /set-txt: %d, want 405", rsp.StatusCode)
	}
}

// FuzzMgmtHandler feeds outside bytes to every endpoint of the management
// API: it answers 200 or 400 (never panics), and whatever it accepts the
// DNS server can still answer with: each record of the host packs.
func FuzzMgmtHandler(f *testing.F) {
	paths := []string{"/set-txt", "/clear-txt", "/add-a", "/clear-a", "/set-caa", "/clear-caa"}
	for i, body := range []string{
		`{"host":"_acme-challenge.example.com.","value":"abc"}`,
		`{"host":"example.com"}`,
		`{"host":"example.com","addresses":["192.0.2.1","::1"]}`,
		`{"host":"example.com"}`,
		`{"host":"example.com","policies":[{"flag":128,"tag":"issue","value":"ctstage.invalid"}]}`,
		`{"host":"example.com"}`,
		`{"host":"a","policies":[{"flag":300,"tag":"issue"}]}`,
		`{"host":"\u0000.","value":"\u00ff"}`,
	} {
		f.Add(uint8(i), body)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		z := NewZone(nil, nil)
		path := paths[int(which)%len(paths)]
		w := httptest.NewRecorder()
		MgmtHandler(z).ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("POST %s %q: status %d", path, body, w.Code)
		}
		if w.Code != http.StatusOK {
			return
		}
		var req mgmtReq
		decodeMgmt(strings.NewReader(body), &req)
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeCAA} {
			q := new(dns.Msg)
			q.SetQuestion(dns.Fqdn(req.Host), qt)
			if _, err := answer(z, q).Pack(); err != nil {
				t.Fatalf("POST %s %q accepted, but the %s answer does not pack: %v", path, body, dns.TypeToString[qt], err)
			}
		}
	})
}
