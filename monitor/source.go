package monitor

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Head is a tree head whose signature verified.
type Head struct {
	Size uint64    `json:"size"`
	Root Hash      `json:"root"`
	Time time.Time `json:"time"`
}

// Hash is a SHA-256 hash, hex in JSON.
type Hash [32]byte

func (h Hash) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h[:])) }

func (h *Hash) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil || len(d) != 32 {
		return fmt.Errorf("monitor: %q is not a SHA-256 hash", s)
	}
	copy(h[:], d)
	return nil
}

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Entry is one log entry as the monitor reads it.
type Entry struct {
	Index    uint64
	LeafHash Hash
	// Timestamp is the entry's (its SCT's) timestamp.
	Timestamp time.Time
	// Cert is the certificate, or the precertificate, as submitted (DER).
	Cert    []byte
	Precert bool
	Names   []string
	// Facts are the certificate's (a precertificate's TBS's) serial,
	// issuer, subject and validity.
	Facts CertFacts
	// Err is why the entry could not be parsed (a bad_entry; the alert
	// names the index).
	Err error
}

// source reads one log, of either kind.
type source interface {
	// head is the newest tree head, its signature checked: an error
	// wrapping errSignature when it does not verify, another when the
	// log could not be read.
	head(ctx context.Context) (Head, error)
	// consistency proves that to extends from (from.Size < to.Size): an
	// error wrapping errInconsistent when the proof fails.
	consistency(ctx context.Context, from, to Head) error
	// entries calls fn with entries [start, end) of the tree of to, in
	// order; an error wrapping errBadEntry when the log served entries
	// that do not match its tree.
	entries(ctx context.Context, start, end uint64, to Head, fn func(Entry) error) error
	// included reports whether the entry of leaf hash h (at index idx,
	// when its SCT says) is in the tree of to, its proof checked.
	included(ctx context.Context, h Hash, idx *uint64, to Head) (bool, error)
}

var (
	errSignature    = errors.New("signature does not verify")
	errInconsistent = errors.New("not consistent")
	errBadEntry     = errors.New("bad entry")
)

// parseLeaf fills e from an RFC 6962 MerkleTreeLeaf and its extra data.
// Only what the monitor needs is parsed, and without reflection: the
// leaf's structure (cryptobyte), the certificate or the precertificate's
// TBS for its names (crypto/x509, falling back to ct-go's lenient parser
// for what the standard library refuses), and a precertificate's
// pre_certificate bytes. The chain's certificates are not parsed.
func parseLeaf(e *Entry, leafInput, extraData []byte) {
	e.LeafHash = leafHash(leafInput)
	s := cryptobyte.String(leafInput)
	var version, leafType uint8
	var ts uint64
	var typ uint16
	var body, exts cryptobyte.String
	if !s.ReadUint8(&version) || !s.ReadUint8(&leafType) || version != 0 || leafType != 0 || !s.ReadUint64(&ts) || !s.ReadUint16(&typ) {
		e.Err = errors.New("not a v1 timestamped MerkleTreeLeaf")
		return
	}
	e.Timestamp = time.UnixMilli(int64(ts)).UTC()
	// A precert_entry has its issuer_key_hash first.
	if typ == 1 && !s.Skip(32) || typ > 1 || !s.ReadUint24LengthPrefixed(&body) || !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		e.Err = fmt.Errorf("malformed MerkleTreeLeaf (entry type %d)", typ)
		return
	}
	var err error
	if typ == 0 {
		e.Cert = body
		e.Names, e.Facts, err = certNames(body)
	} else {
		e.Precert = true
		e.Names, e.Facts, err = tbsNames(body)
		if err == nil {
			x := cryptobyte.String(extraData)
			var pre cryptobyte.String
			if !x.ReadUint24LengthPrefixed(&pre) || len(pre) == 0 {
				err = errors.New("the extra data holds no pre_certificate")
			}
			e.Cert = pre
		}
	}
	e.Err = err
}

// tbsSignatureAlgorithm is the signature AlgorithmIdentifier element of
// a TBSCertificate (RFC 5280 4.1: after the version and the serial).
func tbsSignatureAlgorithm(tbs []byte) ([]byte, bool) {
	s := cryptobyte.String(tbs)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, false
	}
	var serial cryptobyte.String
	var alg cryptobyte.String
	if !body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!body.ReadASN1Element(&serial, cbasn1.INTEGER) || !body.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return nil, false
	}
	return alg, true
}

// CertFacts are what an entry's certificate (or precertificate TBS)
// says of itself besides its names. Issuer and Subject are the parsed
// names (crypto/x509's or ct-go's pkix.Name), formatted only by a reader
// that wants them: the monitor's catch-up does not.
type CertFacts struct {
	Serial              *big.Int
	Issuer, Subject     fmt.Stringer
	NotBefore, NotAfter time.Time
}

func stdFacts(c *x509.Certificate) CertFacts {
	return CertFacts{Serial: c.SerialNumber, Issuer: c.Issuer, Subject: c.Subject, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
}

func ctFacts(c *ctx509.Certificate) CertFacts {
	return CertFacts{Serial: c.SerialNumber, Issuer: c.Issuer, Subject: c.Subject, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
}

// certNames is the names and facts of a certificate.
func certNames(der []byte) ([]string, CertFacts, error) {
	if c, err := x509.ParseCertificate(der); err == nil {
		return nameList(c.DNSNames, c.Subject.CommonName), stdFacts(c), nil
	}
	c, err := ctx509.ParseCertificate(der)
	if c == nil {
		return nil, CertFacts{}, fmt.Errorf("certificate: %v", err)
	}
	return nameList(c.DNSNames, c.Subject.CommonName), ctFacts(c), nil
}

// tbsNames is the names and facts of a TBSCertificate, parsed as a
// certificate with an empty signature (crypto/x509 parses no TBS on its
// own).
func tbsNames(tbs []byte) ([]string, CertFacts, error) {
	if alg, ok := tbsSignatureAlgorithm(tbs); ok {
		// The outer AlgorithmIdentifier must be the TBS's (crypto/x509
		// checks that they match).
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(tbs)
			b.AddBytes(alg)
			b.AddASN1BitString(nil)
		})
		der, err := b.Bytes()
		if err != nil {
			return nil, CertFacts{}, err
		}
		if c, err := x509.ParseCertificate(der); err == nil {
			return nameList(c.DNSNames, c.Subject.CommonName), stdFacts(c), nil
		}
	}
	c, err := ctx509.ParseTBSCertificate(tbs)
	if c == nil {
		return nil, CertFacts{}, fmt.Errorf("precertificate TBS: %v", err)
	}
	return nameList(c.DNSNames, c.Subject.CommonName), ctFacts(c), nil
}

// leafHash is RFC 6962's SHA-256(0x00 || leaf), without copying the leaf.
func leafHash(leafInput []byte) Hash {
	return Hash(rfc6962.DefaultHasher.HashLeaf(leafInput))
}

// nameList is a certificate's DNS names and its common name, once.
func nameList(dns []string, cn string) []string {
	out := append([]string(nil), dns...)
	if cn != "" && !contains(out, cn) {
		out = append(out, cn)
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
