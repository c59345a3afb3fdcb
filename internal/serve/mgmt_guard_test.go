package serve

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestManagementEndpointsRefuseWebPages drives each management endpoint
// of a running serve over real HTTP: a JSON POST from loopback changes
// state; a text/plain POST, a foreign Origin and a foreign Host (a
// DNS-rebinding page) are refused with 415 or 403 and a message, and
// change nothing.
func TestManagementEndpointsRefuseWebPages(t *testing.T) {
	st, err := Start(t.Context(), testOptions(t.TempDir(), listeners{mgmt: true, acme: true, dns: true, dnsMgmt: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, st)
	issued := func() int { return countIssued(t, st) }
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"guard.example.com"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	issueBody := `{"csr":"` + base64.StdEncoding.EncodeToString(csr) + `"}`
	txt := func(name string) int { return countTXT(t, st.DNSAddr, name) }

	endpoints := []struct {
		name, url, body string
		state           func() int
	}{
		{"CA /issue", st.MgmtURL + "/issue", issueBody, issued},
		{"DNS /set-txt", st.DNSMgmtURL + "/set-txt", `{"host":"_acme-challenge.guard.example.com.","value":"v"}`,
			func() int { return txt("_acme-challenge.guard.example.com.") }},
	}
	cases := []struct {
		name         string
		ctype, host  string
		origin       string
		want         int
		changesState bool
	}{
		{"json from loopback", "application/json", "", "", 200, true},
		{"text/plain", "text/plain", "", "", 415, false},
		{"foreign Origin", "application/json", "", "http://attacker.example", 403, false},
		{"foreign Host", "application/json", "attacker.example", "", 403, false},
	}
	for _, ep := range endpoints {
		for _, tc := range cases {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				before := ep.state()
				req, err := http.NewRequest(http.MethodPost, ep.url, strings.NewReader(ep.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", tc.ctype)
				if tc.host != "" {
					_, port, _ := net.SplitHostPort(req.URL.Host)
					req.Host = tc.host + ":" + port
				}
				if tc.origin != "" {
					req.Header.Set("Origin", tc.origin)
				}
				rsp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(rsp.Body)
				rsp.Body.Close()
				if rsp.StatusCode != tc.want {
					t.Fatalf("%d %s, want %d", rsp.StatusCode, body, tc.want)
				}
				if tc.want != 200 {
					var e struct{ Error string }
					if json.Unmarshal(body, &e) != nil || e.Error == "" {
						t.Errorf("body %q, want {\"error\": ...}", body)
					}
				}
				after := ep.state()
				if changed := after != before; changed != tc.changesState {
					t.Errorf("state %d -> %d; want changed=%v", before, after, tc.changesState)
				}
			})
		}
	}
}

// countIssued reads ctstage_ca_issuances_total{outcome="issued"} from the
// log address's /metrics.
func countIssued(t *testing.T, st *Stage) int {
	t.Helper()
	rsp, err := http.Get(st.LogURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(`ctstage_ca_issuances_total{outcome="issued"} `)); ok {
			var n int
			json.Unmarshal(v, &n)
			return n
		}
	}
	return 0
}

// countTXT asks the built-in DNS for name's TXT records.
func countTXT(t *testing.T, addr, name string) int {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	return len(r.Answer)
}
