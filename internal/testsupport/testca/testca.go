// Package testca makes small certificate hierarchies for tests: a root, an
// intermediate, and leaf certificates or precertificates under them, as a
// CA outside ctstage would submit them to a log.
package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// PoisonOID marks a precertificate (RFC 6962 section 3.1).
var PoisonOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}

// CA is a root and an intermediate, both ECDSA P-256.
type CA struct {
	Root, Intermediate       *x509.Certificate
	RootKey, IntermediateKey crypto.Signer
	// LeafKey is shared by every leaf to keep tests fast.
	LeafKey crypto.Signer

	serial atomic.Int64
}

// New makes a CA whose names carry name.
func New(name string) (*CA, error) {
	ca := &CA{}
	var err error
	if ca.RootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if ca.IntermediateKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if ca.LeafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	now := time.Now()
	root := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " Root", Organization: []string{"ctstage tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if ca.Root, err = sign(root, root, ca.RootKey.Public(), ca.RootKey); err != nil {
		return nil, err
	}
	inter := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: name + " Intermediate", Organization: []string{"ctstage tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if ca.Intermediate, err = sign(inter, ca.Root, ca.IntermediateKey.Public(), ca.RootKey); err != nil {
		return nil, err
	}
	ca.serial.Store(1000)
	return ca, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// Leaf issues a serverAuth leaf for dnsName expiring at notAfter; with
// precert it carries the critical poison extension. It returns the chain
// leaf, intermediate, root as DER.
func (ca *CA) Leaf(dnsName string, notAfter time.Time, precert bool) ([][]byte, error) {
	return ca.LeafNamed(dnsName, []string{dnsName}, notAfter, precert)
}

// LeafNamed is Leaf with a common name and DNS names of the caller's:
// any UTF-8 in the common name, any IA5 (ASCII) in the DNS names, valid
// host names or not, for tests of what shows them.
func (ca *CA) LeafNamed(commonName string, dnsNames []string, notAfter time.Time, precert bool) ([][]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject:      pkix.Name{CommonName: commonName},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if precert {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: PoisonOID, Critical: true, Value: asn1.NullBytes}}
	}
	leaf, err := sign(tmpl, ca.Intermediate, ca.LeafKey.Public(), ca.IntermediateKey)
	if err != nil {
		return nil, err
	}
	return [][]byte{leaf.Raw, ca.Intermediate.Raw, ca.Root.Raw}, nil
}

// WriteRoot writes the root as PEM into dir and returns the file's path.
func (ca *CA) WriteRoot(dir string) (string, error) {
	path := filepath.Join(dir, "testca-root.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})
	return path, os.WriteFile(path, b, 0o644)
}
