package va

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// listenDNS serves z with the package's DNS server on loopback.
func listenDNS(t *testing.T, z *Zone) string {
	t.Helper()
	s, err := ListenDNS("127.0.0.1:0", z, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

// stubDNS is a DNS server on loopback (UDP) answering every query with
// rcode and no records.
func stubDNS(t *testing.T, rcode int) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		w.WriteMsg(m)
	})}
	go s.ActivateAndServe()
	t.Cleanup(func() { s.Shutdown() })
	return pc.LocalAddr().String()
}

// closedUDP is a loopback UDP address nothing listens on.
func closedUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestDNS01(t *testing.T) {
	good := KeyAuthDigest(testKeyAuth)
	many := func(n int, match bool) []string {
		var out []string
		for i := range n {
			out = append(out, KeyAuthDigest(fmt.Sprintf("token-%d.thumbprint", i)))
		}
		if match {
			out = append(out, good)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		ident   string // "" is example.com
		txt     map[string][]string
		server  func(t *testing.T) string // nil: the package's DNS server on the test's Zone
		direct  bool                      // no DNSAddr: read the Zone
		kind    Kind
		details []string
	}{
		{name: "match", txt: map[string][]string{"_acme-challenge.example.com": {good}}},
		{name: "match, reading the Zone", direct: true, txt: map[string][]string{"_acme-challenge.example.com": {good}}},
		{name: "match, name case differs", txt: map[string][]string{"_ACME-Challenge.Example.COM.": {good}}},
		{name: "mismatch", txt: map[string][]string{"_acme-challenge.example.com": {KeyAuthDigest("token-abc.other")}},
			kind: KindUnauthorized, details: []string{"_acme-challenge.example.com", "1 found"}},
		{name: "key authorization itself, not its digest", txt: map[string][]string{"_acme-challenge.example.com": {testKeyAuth}},
			kind: KindUnauthorized},
		{name: "several TXT records, one matching", txt: map[string][]string{"_acme-challenge.example.com": many(3, true)}},
		{name: "more TXT records than fit in 512 bytes", txt: map[string][]string{"_acme-challenge.example.com": many(20, true)}},
		{name: "more TXT records than fit in a UDP answer", txt: map[string][]string{"_acme-challenge.example.com": many(100, true)}},
		{name: "several TXT records, none matching", txt: map[string][]string{"_acme-challenge.example.com": many(3, false)},
			kind: KindUnauthorized, details: []string{"3 found"}},
		{name: "no TXT record", kind: KindUnauthorized, details: []string{"no TXT record found"}},
		{name: "record on the name, not _acme-challenge", txt: map[string][]string{"example.com": {good}},
			kind: KindUnauthorized},
		{name: "wildcard uses the base name", ident: "*.example.com",
			txt: map[string][]string{"_acme-challenge.example.com": {good}}},
		{name: "wildcard does not use _acme-challenge.*", ident: "*.example.com",
			txt:  map[string][]string{"_acme-challenge.*.example.com": {good}},
			kind: KindUnauthorized, details: []string{"_acme-challenge.example.com"}},
		{name: "NXDOMAIN", server: func(t *testing.T) string { return stubDNS(t, dns.RcodeNameError) },
			kind: KindDNS, details: []string{"NXDOMAIN", "_acme-challenge.example.com"}},
		{name: "SERVFAIL", server: func(t *testing.T) string { return stubDNS(t, dns.RcodeServerFailure) },
			kind: KindDNS, details: []string{"SERVFAIL"}},
		{name: "no DNS server", server: closedUDP, kind: KindDNS, details: []string{"couldn't query TXT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := NewZone(nil, nil)
			for name, vals := range tc.txt {
				for _, v := range vals {
					z.AddTXT(name, v)
				}
			}
			opts := Options{Zone: z, Timeout: time.Second}
			switch {
			case tc.server != nil:
				opts.DNSAddr = tc.server(t)
			case !tc.direct:
				opts.DNSAddr = listenDNS(t, z)
			}
			ident := "example.com"
			if tc.ident != "" {
				ident = tc.ident
			}
			err := New(opts).Validate(testCtx(t), DNS01, "dns", ident, testToken, testKeyAuth)
			wantFailure(t, err, tc.kind, tc.details...)
		})
	}
}

func TestDNS01RefusesIP(t *testing.T) {
	err := New(Options{}).Validate(testCtx(t), DNS01, "ip", "127.0.0.1", testToken, testKeyAuth)
	wantFailure(t, err, KindMalformed, "IP address")
}

func TestValidateUnknownType(t *testing.T) {
	err := New(Options{}).Validate(testCtx(t), "http-02", "dns", "example.com", testToken, testKeyAuth)
	wantFailure(t, err, KindMalformed, `"http-02"`)
}

// TestDNSServer queries the package's DNS server over UDP and TCP.
func TestDNSServer(t *testing.T) {
	z := NewZone(nil, map[string][]netip.Addr{"v6.example": {netip.MustParseAddr("::1"), netip.MustParseAddr("192.0.2.1")}})
	z.AddTXT("_acme-challenge.example.com", "v1")
	z.AddTXT("_acme-challenge.example.com.", "v2")
	z.SetCAA("example.com", []CAA{{Flag: 128, Tag: "issue", Value: "ctstage.invalid"}})
	addr := listenDNS(t, z)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"example.com", dns.TypeA, []string{"127.0.0.1"}},
		{"example.com", dns.TypeAAAA, nil},
		{"v6.example", dns.TypeA, []string{"192.0.2.1"}},
		{"v6.example", dns.TypeAAAA, []string{"::1"}},
		{"_acme-challenge.example.com", dns.TypeTXT, []string{"v1", "v2"}},
		{"other.example", dns.TypeTXT, nil},
		{"example.com", dns.TypeCAA, []string{`128 issue "ctstage.invalid"`}},
		{"www.example.com", dns.TypeCAA, nil}, // no climbing in the server
		{"example.com", dns.TypeMX, nil},
	} {
		for _, network := range []string{"udp", "tcp"} {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(tc.name), tc.qtype)
			r, _, err := (&dns.Client{Net: network}).Exchange(m, addr)
			if err != nil {
				t.Fatalf("%s %s over %s: %v", tc.name, dns.TypeToString[tc.qtype], network, err)
			}
			var got []string
			for _, rr := range r.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = append(got, rr.A.String())
				case *dns.AAAA:
					got = append(got, rr.AAAA.String())
				case *dns.TXT:
					got = append(got, rr.Txt...)
				case *dns.CAA:
					got = append(got, fmt.Sprintf("%d %s %q", rr.Flag, rr.Tag, rr.Value))
				}
			}
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || !slices.Equal(got, tc.want) {
				t.Errorf("%s %s over %s: rcode %s, aa %v, %q; want NOERROR, aa, %q",
					tc.name, dns.TypeToString[tc.qtype], network, dns.RcodeToString[r.Rcode], r.Authoritative, got, tc.want)
			}
		}
	}
}

func TestCAA(t *testing.T) {
	issue := func(v string) CAA { return CAA{Tag: "issue", Value: v} }
	wild := func(v string) CAA { return CAA{Tag: "issuewild", Value: v} }
	const us, them = "ctstage.invalid", "other-ca.example"
	for _, tc := range []struct {
		name     string
		recs     map[string][]CAA
		ident    string
		wildcard bool
		kind     Kind
		details  []string
	}{
		{name: "no record", ident: "example.com"},
		{name: "issue for us", recs: map[string][]CAA{"example.com": {issue(us)}}, ident: "example.com"},
		{name: "issue for us with parameters", recs: map[string][]CAA{"example.com": {issue(us + "; accounturi=https://x/acct/1")}}, ident: "example.com"},
		{name: "issue for us, other case", recs: map[string][]CAA{"example.com": {issue("CTSTAGE.Invalid")}}, ident: "example.com"},
		{name: "tag in upper case", recs: map[string][]CAA{"example.com": {{Tag: "ISSUE", Value: them}}}, ident: "example.com",
			kind: KindCAA},
		{name: "issue for another CA", recs: map[string][]CAA{"example.com": {issue(them)}}, ident: "example.com",
			kind: KindCAA, details: []string{"issue records at example.com", us, "for example.com"}},
		{name: "issue for nobody", recs: map[string][]CAA{"example.com": {issue(";")}}, ident: "example.com", kind: KindCAA},
		{name: "issue for another CA and for us", recs: map[string][]CAA{"example.com": {issue(them), issue(us)}}, ident: "example.com"},
		{name: "only iodef", recs: map[string][]CAA{"example.com": {{Tag: "iodef", Value: "mailto:x@example.com"}}}, ident: "example.com"},
		{name: "only issuewild, not a wildcard", recs: map[string][]CAA{"example.com": {wild(them)}}, ident: "example.com"},
		{name: "issuewild for us, wildcard", recs: map[string][]CAA{"example.com": {issue(them), wild(us)}},
			ident: "*.example.com", wildcard: true},
		{name: "issuewild for another CA, wildcard", recs: map[string][]CAA{"example.com": {issue(us), wild(them)}},
			ident: "*.example.com", wildcard: true, kind: KindCAA, details: []string{"issuewild records at example.com", "for *.example.com"}},
		{name: "issuewild for another CA, not a wildcard", recs: map[string][]CAA{"example.com": {issue(us), wild(them)}},
			ident: "example.com"},
		{name: "wildcard falls back to issue", recs: map[string][]CAA{"example.com": {issue(us)}}, ident: "*.example.com", wildcard: true},
		{name: "wildcard falls back to issue for another CA", recs: map[string][]CAA{"example.com": {issue(them)}},
			ident: "*.example.com", wildcard: true, kind: KindCAA},
		{name: "critical unknown tag", recs: map[string][]CAA{"example.com": {{Flag: 128, Tag: "tbs", Value: "x"}}}, ident: "example.com",
			kind: KindCAA, details: []string{"unknown critical property", `"tbs"`}},
		{name: "critical unknown tag after issue for us", recs: map[string][]CAA{"example.com": {issue(us), {Flag: 128, Tag: "tbs", Value: "x"}}},
			ident: "example.com", kind: KindCAA, details: []string{"unknown critical property"}},
		{name: "non-critical unknown tag", recs: map[string][]CAA{"example.com": {{Tag: "tbs", Value: "x"}, issue(us)}}, ident: "example.com"},
		{name: "critical issue for us", recs: map[string][]CAA{"example.com": {{Flag: 128, Tag: "issue", Value: us}}}, ident: "example.com"},
		{name: "critical iodef", recs: map[string][]CAA{"example.com": {{Flag: 128, Tag: "iodef", Value: "mailto:x@example.com"}}}, ident: "example.com"},
		{name: "tree climbing to the parent", recs: map[string][]CAA{"example.com": {issue(them)}}, ident: "www.sub.example.com",
			kind: KindCAA, details: []string{"at example.com", "for www.sub.example.com"}},
		{name: "tree climbing to the TLD", recs: map[string][]CAA{"com": {issue(them)}}, ident: "www.example.com", kind: KindCAA},
		{name: "closest set wins", recs: map[string][]CAA{"www.example.com": {issue(us)}, "example.com": {issue(them)}},
			ident: "www.example.com"},
		{name: "closest set forbids", recs: map[string][]CAA{"www.example.com": {issue(them)}, "example.com": {issue(us)}},
			ident: "www.example.com", kind: KindCAA},
		{name: "a child's records do not apply", recs: map[string][]CAA{"www.example.com": {issue(them)}}, ident: "example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := NewZone(nil, nil)
			for n, r := range tc.recs {
				z.SetCAA(n, r)
			}
			v := New(Options{Zone: z, CAAIdentities: []string{us}})
			wantFailure(t, v.CheckCAA(tc.ident, tc.wildcard), tc.kind, tc.details...)
		})
	}
}
