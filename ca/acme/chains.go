package acme

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ctstage/ctstage/ca"
)

// Chains are the chains served with certificates: by default each
// intermediate under the root of its own key type, and, as the alternate
// chain (RFC 8555 section 7.4.2, Link rel="alternate"), the same
// intermediate cross-signed by the other root, as Let's Encrypt served
// ISRG Root X1 and DST Root CA X3 chains.
type Chains struct {
	h *ca.Hierarchy
	// by issuer name ("ecdsa", "rsa"): [default, alternate] intermediates, DER
	chains map[string][2][]byte
}

// LoadOrCreateChains loads the cross-signed intermediates from dir
// (cross-ecdsa.pem, cross-rsa.pem), creating them when missing or when
// they no longer match the hierarchy.
func LoadOrCreateChains(dir string, h *ca.Hierarchy) (*Chains, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create %s: %w", dir, err)
	}
	c := &Chains{h: h, chains: map[string][2][]byte{}}
	for _, b := range []struct {
		name         string
		inter, other *ca.Issuer
	}{{"ecdsa", h.ECDSAIntermediate, h.RSARoot}, {"rsa", h.RSAIntermediate, h.ECDSARoot}} {
		cross, err := ca.LoadOrCrossSign(filepath.Join(dir, "cross-"+b.name+".pem"), b.inter, b.other)
		if err != nil {
			return nil, err
		}
		c.chains[b.name] = [2][]byte{b.inter.Cert.Raw, cross}
	}
	return c, nil
}

func (c *Chains) issuerName(iss *ca.Issuer) string {
	if iss == c.h.RSAIntermediate {
		return "rsa"
	}
	return "ecdsa"
}

// pem is the chain of leaf under issuer: alt 0 the default, 1 the
// alternate.
func (c *Chains) pem(leaf []byte, issuer string, alt int) []byte {
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: leaf})
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.chains[issuer][alt]})
	return b.Bytes()
}
