package loadgen

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/asn1"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/certificate-transparency-go/x509/pkix"
	"golang.org/x/sync/errgroup"
)

// precert is one submission prepared before the clock starts: the chain to
// send and the Merkle tree leaf the log will build from it, short of the
// SCT's timestamp and extensions.
type precert struct {
	chain []ct.ASN1Cert     // precertificate, issuer, then the rest of the chain
	leaf  ct.MerkleTreeLeaf // TimestampedEntry.Timestamp and Extensions unset
}

// leafHash is the RFC 6962 leaf hash of p's entry as logged with sct.
func (p *precert) leafHash(sct *ct.SignedCertificateTimestamp) ([32]byte, error) {
	leaf := p.leaf
	entry := *leaf.TimestampedEntry
	entry.Timestamp = sct.Timestamp
	entry.Extensions = sct.Extensions
	leaf.TimestampedEntry = &entry
	return ct.LeafHashForLeaf(&leaf)
}

// precertIssuer signs precertificates. The ct-go x509 fork is used to sign
// because, unlike crypto/x509, it does not verify every signature it makes,
// which would triple the cost of generation.
type precertIssuer struct {
	cert      *ctx509.Certificate
	signer    crypto.Signer
	chain     []ct.ASN1Cert // issuer, then the certificates above it
	leafKey   crypto.Signer // one P-256 key shared by every precertificate
	notAfter  time.Time
	notBefore time.Time
	runID     string // keeps names unique across runs
}

// oidCTPoison is the precertificate poison extension, RFC 6962 section 3.1.
var oidCTPoison = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}

func newPrecertIssuer(cfg *Config, now time.Time) (*precertIssuer, error) {
	cert, err := ctx509.ParseCertificate(cfg.Issuer.Raw)
	if ctx509.IsFatal(err) {
		return nil, fmt.Errorf("couldn't parse the issuer certificate: %w", err)
	}
	chain := []ct.ASN1Cert{{Data: cfg.Issuer.Raw}}
	for _, c := range cfg.Chain {
		chain = append(chain, ct.ASN1Cert{Data: c.Raw})
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("couldn't generate the precertificates' key: %w", err)
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("couldn't generate a run ID: %w", err)
	}
	return &precertIssuer{
		cert: cert, signer: cfg.IssuerSigner, chain: chain, leafKey: key,
		notAfter: cfg.NotAfter, notBefore: now.Add(-time.Hour), runID: hex.EncodeToString(id),
	}, nil
}

// generate makes n unique precertificates on every CPU.
func (iss *precertIssuer) generate(ctx context.Context, n int) ([]precert, error) {
	out := make([]precert, n)
	g, ctx := errgroup.WithContext(ctx)
	workers := runtime.GOMAXPROCS(0)
	var mu sync.Mutex
	next := 0
	for range workers {
		g.Go(func() error {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return nil
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				p, err := iss.precert(i)
				if err != nil {
					return err
				}
				out[i] = *p
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// precert makes the i-th precertificate: a 128-bit random serial, a name of
// its own, the critical poison extension, and the leaf it becomes in a log.
func (iss *precertIssuer) precert(i int) (*precert, error) {
	serial := make([]byte, 16)
	if _, err := rand.Read(serial); err != nil {
		return nil, fmt.Errorf("couldn't generate a serial: %w", err)
	}
	serial[0] = serial[0]&0x3f | 0x40 // positive, always 16 bytes in DER
	name := fmt.Sprintf("b%d.%s.loadgen.ctstage.test", i, iss.runID)
	tmpl := &ctx509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             iss.notBefore,
		NotAfter:              iss.notAfter,
		KeyUsage:              ctx509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []ctx509.ExtKeyUsage{ctx509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidCTPoison, Critical: true, Value: asn1.NullBytes}},
	}
	der, err := ctx509.CreateCertificate(rand.Reader, tmpl, iss.cert, iss.leafKey.Public(), iss.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign a precertificate: %w", err)
	}
	cert, err := ctx509.ParseCertificate(der)
	if ctx509.IsFatal(err) {
		return nil, fmt.Errorf("couldn't parse a generated precertificate: %w", err)
	}
	leaf, err := ct.MerkleTreeLeafFromChain([]*ctx509.Certificate{cert, iss.cert}, ct.PrecertLogEntryType, 0)
	if err != nil {
		return nil, fmt.Errorf("couldn't build the Merkle tree leaf of a precertificate: %w", err)
	}
	chain := append([]ct.ASN1Cert{{Data: der}}, iss.chain...)
	return &precert{chain: chain, leaf: *leaf}, nil
}
