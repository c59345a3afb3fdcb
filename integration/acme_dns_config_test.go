package integration

import (
	"crypto"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/miekg/dns"
)

// dnsConfig maps a and c to 127.0.0.2, where the test's http-01 server
// listens, b to 127.0.0.3, where nothing does, and puts a CAA record for
// another CA on c. Linux routes all of 127/8 to loopback.
const dnsConfig = `acme:
  dns:
    default_addresses: [127.0.0.1, '::1']
    hosts:
      a.ctstage.example.com: [127.0.0.2]
      b.ctstage.example.com: [127.0.0.3]
      c.ctstage.example.com: [127.0.0.2]
      '*.w.ctstage.example.com': [127.0.0.4]
    caa:
      c.ctstage.example.com:
      - {flag: 0, tag: issue, value: other-ca.example}
`

// TestACMEConfigDNS runs `ctstage serve --config FILE` with acme.dns
// records, without --acme-always-valid, and checks them over the real
// network: the built-in DNS answers them, the validator connects where
// they say (an http-01 order for a validates against a server on
// 127.0.0.2 only; b's, on 127.0.0.3, fails with connection), and c's CAA
// record for another CA makes its order fail with caa.
func TestACMEConfigDNS(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(file, []byte(dnsConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsAddr := freeAddr(t)
	cs := startClientStage(t, "--config", file, "--dns-addr", dnsAddr)
	t.Run("DNS", func(t *testing.T) { checkConfigDNS(t, dnsAddr) })

	hs := startHTTP01(t, "127.0.0.2:"+strconv.Itoa(cs.httpPort))
	c := newRawClient(t, binaryACMEStage(t, cs))
	c.register()
	for _, tc := range []struct {
		name    string
		status  string // of the challenge, the authorization and the order
		problem string // the challenge's error type, "" for none
		fetched bool   // whether the validator reached the http-01 server
	}{
		{"a.ctstage.example.com", "valid", "", true},
		{"b.ctstage.example.com", "invalid", "urn:ietf:params:acme:error:connection", false},
		{"c.ctstage.example.com", "invalid", "urn:ietf:params:acme:error:caa", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orderURL, o := c.newOrder(tc.name)
			azURL := o["authorizations"].([]any)[0].(string)
			ch := http01Challenge(t, c, azURL)
			hs.set(ch.Token, ch.Token+"."+thumbprint(t, c))
			r := c.post(ch.URL, map[string]any{})
			var got struct {
				Status string
				Error  struct{ Type, Detail string }
			}
			json.Unmarshal(r.body, &got)
			if r.status != http.StatusOK || got.Status != tc.status || got.Error.Type != tc.problem {
				t.Fatalf("challenge: %d %s, want status %s, error %q\n--- ctstage serve:\n%s", r.status, r.body, tc.status, tc.problem, cs.logs())
			}
			if s := objectStatus(t, c, azURL); s != tc.status {
				t.Errorf("authorization %s, want %s", s, tc.status)
			}
			want := map[string]string{"valid": "ready", "invalid": "invalid"}[tc.status]
			if s := objectStatus(t, c, orderURL); s != want {
				t.Errorf("order %s, want %s", s, want)
			}
			if hosts := hs.fetches(ch.Token); tc.fetched != (len(hosts) > 0) || tc.fetched && !slices.Contains(hosts, tc.name) {
				t.Errorf("http-01 server on 127.0.0.2 got Host %q for the token, want fetched=%v", hosts, tc.fetched)
			}
		})
	}
}

// checkConfigDNS queries the built-in DNS with miekg/dns over UDP and TCP.
func checkConfigDNS(t *testing.T, addr string) {
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string // answers' data, in order
	}{
		{"a.ctstage.example.com.", dns.TypeA, []string{"127.0.0.2"}},
		{"B.CTSTAGE.EXAMPLE.COM.", dns.TypeA, []string{"127.0.0.3"}},
		{"b.ctstage.example.com.", dns.TypeAAAA, nil},
		{"unlisted.ctstage.example.com.", dns.TypeA, []string{"127.0.0.1"}},
		{"unlisted.ctstage.example.com.", dns.TypeAAAA, []string{"::1"}},
		{"x.w.ctstage.example.com.", dns.TypeA, []string{"127.0.0.4"}},
		{"w.ctstage.example.com.", dns.TypeA, []string{"127.0.0.1"}},
		{"c.ctstage.example.com.", dns.TypeCAA, []string{`0 issue "other-ca.example"`}},
		{"a.ctstage.example.com.", dns.TypeCAA, nil},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network+"/"+dns.TypeToString[tc.qtype]+"/"+tc.name, func(t *testing.T) {
				m := new(dns.Msg)
				m.SetQuestion(tc.name, tc.qtype)
				cl := &dns.Client{Net: network, Timeout: 5 * time.Second}
				rsp, _, err := cl.Exchange(m, addr)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, rr := range rsp.Answer {
					got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
				}
				if rsp.Rcode != dns.RcodeSuccess || !slices.Equal(got, tc.want) {
					t.Errorf("%s %s: rcode %s, answers %q, want %q", dns.TypeToString[tc.qtype], tc.name, dns.RcodeToString[rsp.Rcode], got, tc.want)
				}
			})
		}
	}
}

// http01Server answers http-01 requests on one address and records the
// Host header of each request by token.
type http01Server struct {
	mu   sync.Mutex
	keys map[string]string   // token -> key authorization
	hits map[string][]string // token -> Host of each request
}

func startHTTP01(t *testing.T, addr string) *http01Server {
	t.Helper()
	s := &http01Server{keys: map[string]string{}, hits: map[string][]string{}}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("http-01 server on %s (Linux routes 127/8 to loopback): %v", addr, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits[token] = append(s.hits[token], r.Host)
		if key, found := s.keys[token]; ok && found {
			w.Write([]byte(key))
			return
		}
		http.NotFound(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *http01Server) set(token, keyAuth string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[token] = keyAuth
}

func (s *http01Server) fetches(token string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hits[token])
}

type challengeRef struct{ Type, URL, Token string }

// http01Challenge is the http-01 challenge of the authorization at url.
func http01Challenge(t *testing.T, c *rawClient, url string) challengeRef {
	t.Helper()
	r := c.post(url, nil)
	var az struct{ Challenges []challengeRef }
	json.Unmarshal(r.body, &az)
	for _, ch := range az.Challenges {
		if ch.Type == "http-01" {
			return ch
		}
	}
	t.Fatalf("authorization: %d %s: no http-01 challenge", r.status, r.body)
	return challengeRef{}
}

// objectStatus is the status of the order or authorization at url.
func objectStatus(t *testing.T, c *rawClient, url string) string {
	t.Helper()
	r := c.post(url, nil)
	var o struct{ Status string }
	if err := json.Unmarshal(r.body, &o); err != nil || r.status != http.StatusOK {
		t.Fatalf("POST-as-GET %s: %d %s", url, r.status, r.body)
	}
	return o.Status
}

// thumbprint is the account key's JWK thumbprint (RFC 7638), base64url.
func thumbprint(t *testing.T, c *rawClient) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: c.key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b64(tp)
}
