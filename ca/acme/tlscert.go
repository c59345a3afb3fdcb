package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/ctstage/ctstage/ca"
)

// ServingCertificate is the ACME server's own TLS certificate: a fresh
// P-256 key, for localhost, 127.0.0.1 and ::1, signed by the ECDSA
// intermediate of the staging hierarchy, so that clients trusting
// --data/ca/root.pem trust the server. It has no SCTs: it is not a
// subscriber certificate and never reaches the CA pipeline.
func ServingCertificate(h *ca.Hierarchy, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return tls.Certificate{}, err
	}
	iss := h.ECDSAIntermediate
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(iss.Cert.NotAfter) {
		tmpl.NotAfter = iss.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.Cert, key.Public(), iss.Signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("couldn't issue the ACME server's certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, iss.Cert.Raw}, PrivateKey: key}, nil
}
