package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// ServingCertificate is the ACME server's own TLS certificate: a fresh
// P-256 key, for localhost, 127.0.0.1 and ::1, signed by the ECDSA
// intermediate of the staging hierarchy, so that clients trusting
// --data/ca/root.pem trust the server. It has no SCTs: it is not a
// subscriber certificate and never reaches the CA pipeline.
func ServingCertificate(h *Hierarchy, now time.Time) (tls.Certificate, error) {
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.Cert, key.Public(), iss.signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("couldn't issue the ACME server's certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, iss.Cert.Raw}, PrivateKey: key}, nil
}

// LoadOrCrossSign returns the certificate of inter's key and name signed by
// root (as Let's Encrypt's ISRG Root X1 was cross-signed by DST Root CA X3),
// from path when the one there still matches, else newly signed and written
// there.
func LoadOrCrossSign(path string, inter, root *Issuer) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil &&
				bytes.Equal(c.RawSubjectPublicKeyInfo, inter.Cert.RawSubjectPublicKeyInfo) &&
				c.CheckSignatureFrom(root.Cert) == nil {
				return c.Raw, nil
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("couldn't read %s: %w", path, err)
	}
	ic := inter.Cert
	tmpl := &x509.Certificate{
		SerialNumber: ic.SerialNumber, Subject: ic.Subject, NotBefore: ic.NotBefore, NotAfter: ic.NotAfter,
		KeyUsage: ic.KeyUsage, ExtKeyUsage: ic.ExtKeyUsage, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: 0, MaxPathLenZero: true, SubjectKeyId: ic.SubjectKeyId,
	}
	if tmpl.NotAfter.After(root.Cert.NotAfter) {
		tmpl.NotAfter = root.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, ic.PublicKey, root.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't cross-sign %s: %w", ic.Subject.CommonName, err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("couldn't write %s: %w", path, err)
	}
	return der, nil
}

// LoadTestSigner is the one hand-out of an issuer's key: `ctstage bench`
// signs its own precertificates under a staging intermediate, so that the
// logs accept them as they accept the CA's. kind is "ecdsa" or "rsa"; it
// returns the intermediate, its root and the intermediate's key.
func (h *Hierarchy) LoadTestSigner(kind string) (inter, root *x509.Certificate, signer crypto.Signer) {
	if kind == "ecdsa" {
		return h.ECDSAIntermediate.Cert, h.ECDSARoot.Cert, h.ECDSAIntermediate.signer
	}
	return h.RSAIntermediate.Cert, h.RSARoot.Cert, h.RSAIntermediate.signer
}
