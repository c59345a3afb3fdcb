package scalebench

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"

	ct "github.com/google/certificate-transparency-go"
	ctasn1 "github.com/google/certificate-transparency-go/asn1"
	"github.com/google/certificate-transparency-go/trillian/util"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/certificate-transparency-go/x509/pkix"
	"github.com/google/trillian"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// leafGen makes distinct, valid precertificate log entries of a realistic
// size, exactly as ctfe stores them for add-pre-chain, at the cost of one
// ECDSA signature each: the precertificate is made once as a template with
// a placeholder serial and a placeholder index in its names, and each entry
// overwrites those fixed-length fields in the template's TBSCertificate (and
// in the poison-free TBSCertificate of the Merkle tree leaf), then signs the
// TBS with the issuer's key. Overwriting fixed-length content keeps the DER
// valid, and removing the poison commutes with it, so every leaf is what
// ct.MerkleTreeLeafFromChain would build from its precertificate (the tests
// check this).
type leafGen struct {
	signer        crypto.Signer
	chain         []ct.ASN1Cert // issuer, then the certificates above it
	issuerKeyHash [sha256.Size]byte
	precertTBS    []byte // template TBSCertificate, with the poison extension
	leafTBS       []byte // template TBSCertificate as logged, without it
	sigAlg        []byte // DER AlgorithmIdentifier of the issuer's signatures
	serialAt      [2]int // offsets of the serial's content in precertTBS, leafTBS
	indexAt       [2][]int
}

// Placeholders in the template: a 16-byte serial and a 12-digit index.
var (
	serialPlaceholder = []byte{0x4b, 0xe1, 0x7a, 0x5c, 0xd3, 0x9f, 0x02, 0x6e, 0xb8, 0x44, 0x71, 0xc0, 0x3d, 0x95, 0xaa, 0x18}
	indexPlaceholder  = []byte("i000000000000")
)

const indexDigits = 12

// sanLabels are the first labels of the template's names: a certificate
// with nine names, as a hosting provider's certificates often have.
var sanLabels = []string{"www", "api", "mail", "cdn", "static", "app", "login", "shop"}

// oidCTPoison is the precertificate poison extension, RFC 6962 section 3.1.
var oidCTPoison = ctasn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}

func newLeafGen(issuer *x509.Certificate, signer crypto.Signer, above []*x509.Certificate, notAfter time.Time) (*leafGen, error) {
	iss, err := ctx509.ParseCertificate(issuer.Raw)
	if ctx509.IsFatal(err) {
		return nil, fmt.Errorf("couldn't parse the issuer: %w", err)
	}
	// An RSA 2048 subject key, shared by every entry, as most web PKI
	// leaves still have; its size is part of what makes the entry realistic.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	host := string(indexPlaceholder) + ".scale.ctstage.test"
	names := []string{host}
	for _, l := range sanLabels {
		names = append(names, l+"."+host)
	}
	tmpl := &ctx509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serialPlaceholder),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              names,
		NotBefore:             notAfter.AddDate(0, 0, -90),
		NotAfter:              notAfter,
		KeyUsage:              ctx509.KeyUsageDigitalSignature | ctx509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []ctx509.ExtKeyUsage{ctx509.ExtKeyUsageServerAuth, ctx509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          bytes.Repeat([]byte{0x5a}, 20),
		OCSPServer:            []string{"http://ocsp.scale.ctstage.test"},
		IssuingCertificateURL: []string{"http://ca.scale.ctstage.test/intermediate.der"},
		CRLDistributionPoints: []string{"http://crl.scale.ctstage.test/17.crl"},
		PolicyIdentifiers:     []ctasn1.ObjectIdentifier{{2, 23, 140, 1, 2, 1}},
		ExtraExtensions:       []pkix.Extension{{Id: oidCTPoison, Critical: true, Value: []byte{0x05, 0x00}}},
	}
	der, err := ctx509.CreateCertificate(rand.Reader, tmpl, iss, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign the template precertificate: %w", err)
	}
	cert, err := ctx509.ParseCertificate(der)
	if ctx509.IsFatal(err) {
		return nil, fmt.Errorf("couldn't parse the template precertificate: %w", err)
	}
	ml, err := ct.MerkleTreeLeafFromChain([]*ctx509.Certificate{cert, iss}, ct.PrecertLogEntryType, 0)
	if err != nil {
		return nil, fmt.Errorf("couldn't build the template's Merkle tree leaf: %w", err)
	}
	g := &leafGen{
		signer:        signer,
		chain:         []ct.ASN1Cert{{Data: issuer.Raw}},
		issuerKeyHash: ml.TimestampedEntry.PrecertEntry.IssuerKeyHash,
		precertTBS:    cert.RawTBSCertificate,
		leafTBS:       ml.TimestampedEntry.PrecertEntry.TBSCertificate,
	}
	for _, c := range above {
		g.chain = append(g.chain, ct.ASN1Cert{Data: c.Raw})
	}
	if g.sigAlg, err = signatureAlgorithm(der); err != nil {
		return nil, err
	}
	serialTLV := append([]byte{0x02, byte(len(serialPlaceholder))}, serialPlaceholder...)
	for i, tbs := range [][]byte{g.precertTBS, g.leafTBS} {
		at := offsets(tbs, serialTLV)
		if len(at) != 1 {
			return nil, fmt.Errorf("template TBS %d holds the serial placeholder %d times", i, len(at))
		}
		g.serialAt[i] = at[0] + 2
		for _, o := range offsets(tbs, indexPlaceholder) {
			g.indexAt[i] = append(g.indexAt[i], o+1)
		}
		// The common name and each DNS name.
		if len(g.indexAt[i]) != 1+len(names) {
			return nil, fmt.Errorf("template TBS %d holds the index placeholder %d times, want %d", i, len(g.indexAt[i]), 1+len(names))
		}
	}
	return g, nil
}

// signatureAlgorithm returns the DER AlgorithmIdentifier of a certificate's
// signature.
func signatureAlgorithm(der []byte) ([]byte, error) {
	s := cryptobyte.String(der)
	var cert cryptobyte.String
	var alg cryptobyte.String
	if !s.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.SkipASN1(cbasn1.SEQUENCE) ||
		!cert.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return nil, errors.New("couldn't find the template's signature algorithm")
	}
	return alg, nil
}

// offsets returns where sub starts in b, every time.
func offsets(b, sub []byte) []int {
	var out []int
	for i := 0; ; {
		j := bytes.Index(b[i:], sub)
		if j < 0 {
			return out
		}
		out = append(out, i+j)
		i += j + 1
	}
}

// entry is one generated entry: the leaf to queue and the precertificate.
type entry struct {
	leaf    *trillian.LogLeaf
	precert []byte
	tbs     []byte // the TBSCertificate as logged
}

// make builds the entry with the given index (0 <= index < 10^12) and SCT
// timestamp (ms since the epoch).
func (g *leafGen) make(index uint64, timestamp uint64) (*entry, error) {
	serial := make([]byte, len(serialPlaceholder))
	rand.Read(serial)
	serial[0] = serial[0]&0x3f | 0x40 // positive, always 16 bytes in DER
	digits := fmt.Appendf(nil, "%0*d", indexDigits, index)
	if len(digits) != indexDigits {
		return nil, fmt.Errorf("index %d has more than %d digits", index, indexDigits)
	}
	tbs := bytes.Clone(g.precertTBS)
	leafTBS := bytes.Clone(g.leafTBS)
	for i, b := range [][]byte{tbs, leafTBS} {
		copy(b[g.serialAt[i]:], serial)
		for _, o := range g.indexAt[i] {
			copy(b[o:], digits)
		}
	}
	h := sha256.Sum256(tbs)
	sig, err := g.signer.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign precertificate %d: %w", index, err)
	}
	var cb cryptobyte.Builder
	cb.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
		c.AddBytes(tbs)
		c.AddBytes(g.sigAlg)
		c.AddASN1(cbasn1.BIT_STRING, func(c *cryptobyte.Builder) {
			c.AddUint8(0)
			c.AddBytes(sig)
		})
	})
	der, err := cb.Bytes()
	if err != nil {
		return nil, err
	}
	ml := ct.MerkleTreeLeaf{
		Version:  ct.V1,
		LeafType: ct.TimestampedEntryLeafType,
		TimestampedEntry: &ct.TimestampedEntry{
			Timestamp: timestamp,
			EntryType: ct.PrecertLogEntryType,
			PrecertEntry: &ct.PreCert{
				IssuerKeyHash:  g.issuerKeyHash,
				TBSCertificate: leafTBS,
			},
		},
	}
	// What ctfe does for add-pre-chain, then what Trillian's QueueLeaf does.
	leaf, err := util.BuildLogLeaf("scale", ml, 0, ct.ASN1Cert{Data: der}, g.chain, true)
	if err != nil {
		return nil, err
	}
	leaf.MerkleLeafHash = rfc6962.DefaultHasher.HashLeaf(leaf.LeafValue)
	return &entry{leaf: leaf, precert: der, tbs: leafTBS}, nil
}
