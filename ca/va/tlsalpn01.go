package va

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// IDPeACMEIdentifier is id-pe-acmeIdentifier (RFC 8737 section 6.1).
var IDPeACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// ALPNProto is the ALPN protocol of tls-alpn-01.
const ALPNProto = "acme-tls/1"

// tlsALPN01 connects to the identifier's address on TLSPort with ALPN
// acme-tls/1 and checks the certificate (RFC 8737 section 3): exactly the
// identifier as its one subjectAltName, and a critical acmeIdentifier
// extension holding SHA-256 of the key authorization. A failed TCP
// connection or a timeout is a connection problem, a failed handshake a
// tls problem, a wrong certificate unauthorized.
func (v *VA) tlsALPN01(ctx context.Context, identType, value, keyAuth string) error {
	addrs, err := v.resolve(identType, value)
	if err != nil {
		return err
	}
	sni := value
	if identType == "ip" {
		sni = reverseName(addrs[0])
	}
	addr := net.JoinHostPort(addrs[0].String(), strconv.Itoa(v.opts.TLSPort))
	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(KindConnection, "couldn't connect to %s: %v", addr, err)
	}
	conn := tls.Client(tcp, &tls.Config{
		ServerName: sni, NextProtos: []string{ALPNProto}, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: true, // the certificate is self-signed by design
	})
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			return fail(KindConnection, "TLS handshake with %s timed out: %v", addr, err)
		}
		return fail(KindTLS, "TLS handshake with %s failed: %v", addr, err)
	}
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ALPNProto {
		return fail(KindTLS, "%s did not negotiate ALPN %s", addr, ALPNProto)
	}
	if len(cs.PeerCertificates) == 0 {
		return fail(KindTLS, "%s sent no certificate", addr)
	}
	return checkALPNCert(cs.PeerCertificates[0], identType, value, keyAuth)
}

func checkALPNCert(c *x509.Certificate, identType, value, keyAuth string) error {
	switch identType {
	case "dns":
		if len(c.DNSNames) != 1 || len(c.IPAddresses) != 0 || c.DNSNames[0] != value {
			return fail(KindUnauthorized, "certificate's names %v %v are not exactly %s", c.DNSNames, c.IPAddresses, value)
		}
	case "ip":
		ip := net.ParseIP(value)
		if len(c.IPAddresses) != 1 || len(c.DNSNames) != 0 || !c.IPAddresses[0].Equal(ip) {
			return fail(KindUnauthorized, "certificate's names %v %v are not exactly %s", c.DNSNames, c.IPAddresses, value)
		}
	}
	want := sha256.Sum256([]byte(keyAuth))
	i := slices.IndexFunc(c.Extensions, func(e pkixExt) bool { return e.Id.Equal(IDPeACMEIdentifier) })
	if i < 0 {
		return fail(KindUnauthorized, "certificate has no acmeIdentifier extension")
	}
	ext := c.Extensions[i]
	if !ext.Critical {
		return fail(KindUnauthorized, "acmeIdentifier extension is not critical")
	}
	var got []byte
	if rest, err := asn1.Unmarshal(ext.Value, &got); err != nil || len(rest) > 0 {
		return fail(KindUnauthorized, "acmeIdentifier extension is not an OCTET STRING")
	}
	if !bytes.Equal(got, want[:]) {
		return fail(KindUnauthorized, "acmeIdentifier extension does not match the key authorization")
	}
	return nil
}

// reverseName is the reverse-mapping name of an IP address (RFC 8738
// section 6), e.g. "1.0.0.127.in-addr.arpa".
func reverseName(a netip.Addr) string {
	b := a.AsSlice()
	var s []byte
	if a.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			s = strconv.AppendInt(s, int64(b[i]), 10)
			s = append(s, '.')
		}
		return string(s) + "in-addr.arpa"
	}
	const hex = "0123456789abcdef"
	for i := len(b) - 1; i >= 0; i-- {
		s = append(s, hex[b[i]&0xf], '.', hex[b[i]>>4], '.')
	}
	return string(s) + "ip6.arpa"
}
