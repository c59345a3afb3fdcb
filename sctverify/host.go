package sctverify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// FetchHost makes a TLS handshake with addr (HOST:PORT) and returns what
// the server presented: its chain, the SCTs of the TLS extension and the
// stapled OCSP response. Session resumption is off, so the server sends
// both extensions every time. The chain is not checked against any roots:
// SCTs are verified whatever the trust.
func FetchHost(ctx context.Context, addr string) (Input, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return Input{}, fmt.Errorf("--host %q: %w", addr, err)
	}
	d := &tls.Dialer{Config: &tls.Config{
		ServerName:             host,
		InsecureSkipVerify:     true, // trust is not what is verified here; SCTs are
		ClientSessionCache:     nil,  // no resumption: a resumed session carries no SCTs
		SessionTicketsDisabled: true,
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Input{}, fmt.Errorf("couldn't handshake with %s: %w", addr, err)
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return Input{}, errors.New("the server sent no certificate")
	}
	return Input{Chain: cs.PeerCertificates, TLSSCTs: cs.SignedCertificateTimestamps, OCSPResponse: cs.OCSPResponse}, nil
}
