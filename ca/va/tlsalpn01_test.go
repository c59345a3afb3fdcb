package va

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// alpnCert describes a tls-alpn-01 certificate to craft.
type alpnCert struct {
	dnsNames []string
	ips      []net.IP
	ext      *pkix.Extension // the acmeIdentifier extension; nil for none
}

// acmeExt is an acmeIdentifier extension holding SHA-256 of keyAuth.
func acmeExt(keyAuth string, critical bool) *pkix.Extension {
	sum := sha256.Sum256([]byte(keyAuth))
	v, _ := asn1.Marshal(sum[:])
	return &pkix.Extension{Id: IDPeACMEIdentifier, Critical: critical, Value: v}
}

func (c alpnCert) tls(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tls-alpn-01 test"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: c.dnsNames, IPAddresses: c.ips,
	}
	if c.ext != nil {
		tmpl.ExtraExtensions = []pkix.Extension{*c.ext}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsServer serves TLS with cert on a loopback port, offering protos over
// ALPN, and records the SNI each client sent. It returns the port.
func tlsServer(t *testing.T, cert tls.Certificate, protos []string) (int, func() string) {
	t.Helper()
	var (
		mu  sync.Mutex
		sni string
	)
	cfg := &tls.Config{NextProtos: protos, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		mu.Lock()
		sni = h.ServerName
		mu.Unlock()
		return &cert, nil
	}}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					io.Copy(io.Discard, c) // until the VA closes
				}
			}()
		}
	}()
	return port(t, l.Addr()), func() string { mu.Lock(); defer mu.Unlock(); return sni }
}

func TestTLSALPN01(t *testing.T) {
	acme := []string{ALPNProto}
	for _, tc := range []struct {
		name    string
		ident   string // "" is example.com
		cert    alpnCert
		protos  []string
		kind    Kind
		details []string
		sni     string
	}{
		{name: "good", cert: alpnCert{dnsNames: []string{"example.com"}, ext: acmeExt(testKeyAuth, true)},
			protos: acme, sni: "example.com"},
		{name: "good IP identifier", ident: "127.0.0.1",
			cert:   alpnCert{ips: []net.IP{net.IPv4(127, 0, 0, 1)}, ext: acmeExt(testKeyAuth, true)},
			protos: acme, sni: "1.0.0.127.in-addr.arpa"},
		{name: "server without ALPN", cert: alpnCert{dnsNames: []string{"example.com"}, ext: acmeExt(testKeyAuth, true)},
			kind: KindTLS, details: []string{"did not negotiate ALPN acme-tls/1"}},
		{name: "server offering only h2", cert: alpnCert{dnsNames: []string{"example.com"}, ext: acmeExt(testKeyAuth, true)},
			protos: []string{"h2"}, kind: KindTLS, details: []string{"TLS handshake", "no application protocol"}},
		{name: "no acmeIdentifier", cert: alpnCert{dnsNames: []string{"example.com"}}, protos: acme,
			kind: KindUnauthorized, details: []string{"no acmeIdentifier extension"}},
		{name: "acmeIdentifier not critical", cert: alpnCert{dnsNames: []string{"example.com"}, ext: acmeExt(testKeyAuth, false)},
			protos: acme, kind: KindUnauthorized, details: []string{"not critical"}},
		{name: "wrong digest", cert: alpnCert{dnsNames: []string{"example.com"}, ext: acmeExt("token-abc.other", true)},
			protos: acme, kind: KindUnauthorized, details: []string{"does not match the key authorization"}},
		{name: "acmeIdentifier not an OCTET STRING",
			cert:   alpnCert{dnsNames: []string{"example.com"}, ext: &pkix.Extension{Id: IDPeACMEIdentifier, Critical: true, Value: []byte{2, 1, 5}}},
			protos: acme, kind: KindUnauthorized, details: []string{"not an OCTET STRING"}},
		{name: "wrong SAN", cert: alpnCert{dnsNames: []string{"other.example"}, ext: acmeExt(testKeyAuth, true)},
			protos: acme, kind: KindUnauthorized, details: []string{"not exactly example.com", "other.example"}},
		{name: "two SANs", cert: alpnCert{dnsNames: []string{"example.com", "www.example.com"}, ext: acmeExt(testKeyAuth, true)},
			protos: acme, kind: KindUnauthorized, details: []string{"not exactly example.com"}},
		{name: "DNS and IP SAN", cert: alpnCert{dnsNames: []string{"example.com"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}, ext: acmeExt(testKeyAuth, true)},
			protos: acme, kind: KindUnauthorized, details: []string{"not exactly example.com"}},
		{name: "IP identifier, DNS SAN", ident: "127.0.0.1", cert: alpnCert{dnsNames: []string{"example.com"}, ext: acmeExt(testKeyAuth, true)},
			protos: acme, kind: KindUnauthorized, details: []string{"not exactly 127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, sni := tlsServer(t, tc.cert.tls(t), tc.protos)
			v := New(Options{TLSPort: p})
			ident, identType := "example.com", "dns"
			if tc.ident != "" {
				ident, identType = tc.ident, "ip"
			}
			err := v.Validate(testCtx(t), TLSALPN01, identType, ident, testToken, testKeyAuth)
			wantFailure(t, err, tc.kind, tc.details...)
			if tc.sni != "" && sni() != tc.sni {
				t.Errorf("SNI %q, want %q", sni(), tc.sni)
			}
		})
	}
}

// TestTLSALPN01Connection: what is no TLS server at all is a connection
// or tls problem, never a panic or success.
func TestTLSALPN01Connection(t *testing.T) {
	plain := func(t *testing.T) int { // a plain HTTP server where TLS is expected
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &http.Server{Handler: http.NotFoundHandler()}
		go s.Serve(l)
		t.Cleanup(func() { s.Close() })
		return port(t, l.Addr())
	}
	silent := func(t *testing.T) int { // accepts and never answers
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu    sync.Mutex
			conns []net.Conn
		)
		t.Cleanup(func() {
			l.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		return port(t, l.Addr())
	}
	for _, tc := range []struct {
		name    string
		port    func(*testing.T) int
		kind    Kind
		details []string
	}{
		{"connection refused", func(t *testing.T) int { return closedPort(t) }, KindConnection, []string{"couldn't connect", "refused"}},
		{"plain HTTP", plain, KindTLS, []string{"TLS handshake"}},
		{"silent", silent, KindConnection, []string{"timed out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := New(Options{TLSPort: tc.port(t), Timeout: 300 * time.Millisecond})
			err := v.Validate(testCtx(t), TLSALPN01, "dns", "example.com", testToken, testKeyAuth)
			wantFailure(t, err, tc.kind, tc.details...)
		})
	}
}

// TestReverseName checks the SNI of IP identifiers (RFC 8738 section 6).
func TestReverseName(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":   "1.0.0.127.in-addr.arpa",
		"192.0.2.10":  "10.2.0.192.in-addr.arpa",
		"2001:db8::1": "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	} {
		if got := reverseName(mustAddr(t, in)); got != want {
			t.Errorf("reverseName(%s) = %s, want %s", in, got, want)
		}
	}
}
