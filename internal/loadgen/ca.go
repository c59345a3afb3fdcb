package loadgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ctstage/ctstage/internal/keyfile"
)

// Files of a CA directory made by WriteCA and read by LoadCA.
const (
	CARootFile         = "root.pem"
	CAIntermediateFile = "intermediate.pem"
	CAKeyFile          = "intermediate.key"
)

// WriteCA creates a load-test CA in dir: a P-256 root and a P-256
// intermediate, the chain a log verifies cheapest. A log must accept
// dir/root.pem (ctstage serve --extra-roots) before the CA can submit.
func WriteCA(dir string, now time.Time) error {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	intKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{"ctstage load test (DO NOT TRUST)"}}
	}
	root := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: name("ctstage bench P-256 root"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	root, _ = x509.ParseCertificate(rootDER)
	inter := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: name("ctstage bench P-256 intermediate"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	intDER, err := x509.CreateCertificate(rand.Reader, inter, root, intKey.Public(), rootKey)
	if err != nil {
		return err
	}
	if err := keyfile.Write(filepath.Join(dir, CAKeyFile), intKey); err != nil {
		return err
	}
	for file, der := range map[string][]byte{CARootFile: rootDER, CAIntermediateFile: intDER} {
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := keyfile.WriteFileAtomic(filepath.Join(dir, file), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// LoadCA reads a CA directory written by WriteCA (or laid out the same way
// by hand: any key type the log accepts).
func LoadCA(dir string) (issuer *x509.Certificate, signer crypto.Signer, chain []*x509.Certificate, err error) {
	signer, err = keyfile.Load(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, nil, err
	}
	certs := make([]*x509.Certificate, 2)
	for i, file := range []string{CAIntermediateFile, CARootFile} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("couldn't read the load-test CA: %w", err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, nil, nil, fmt.Errorf("%s: no PEM certificate", filepath.Join(dir, file))
		}
		if certs[i], err = x509.ParseCertificate(block.Bytes); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, file), err)
		}
	}
	return certs[0], signer, certs[1:], nil
}
