package sctverify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Entry types of RFC 6962 section 3.1.
const (
	entryX509    = 0
	entryPrecert = 1
)

// TLS algorithm codes (RFC 5246 section 7.4.1.4.1).
const (
	hashSHA256 = 4
	sigRSA     = 1
	sigECDSA   = 3
)

// ErrSignature: the SCT's signature does not verify.
var ErrSignature = errors.New("signature does not verify")

// RemoveSCTList returns the TBSCertificate with the SCT list extension cut
// out byte for byte, as Chromium does: every other byte is kept as it was,
// and only the lengths of the enclosing extensions, [3] and TBSCertificate
// are rewritten. The extensions field is dropped when the SCT list was the
// only extension. It is an error for the TBS to hold no SCT list extension,
// or more than one.
func RemoveSCTList(tbs []byte) ([]byte, error) { return RemoveExtension(tbs, oidSCTListDER) }

// RemoveExtension is RemoveSCTList for any extension: oid is the content
// octets of its OBJECT IDENTIFIER. With the CT poison's
// (1.3.6.1.4.1.11129.2.4.3) it turns a precertificate's TBSCertificate
// into the one its SCT signs (RFC 6962 section 3.2), as ct-go's
// BuildPrecertTBS does without a precertificate signing certificate, but
// without re-encoding the rest.
func RemoveExtension(tbs, oid []byte) ([]byte, error) {
	s := cryptobyte.String(tbs)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, fmt.Errorf("TBSCertificate: %w", ErrMalformed)
	}
	var head []byte // everything before the extensions, verbatim
	rest := body
	for !rest.Empty() {
		var elem cryptobyte.String
		var tag cbasn1.Tag
		before := rest
		if !rest.ReadAnyASN1Element(&elem, &tag) {
			return nil, fmt.Errorf("TBSCertificate: %w", ErrMalformed)
		}
		if tag == cbasn1.Tag(3).Constructed().ContextSpecific() {
			if !rest.Empty() {
				return nil, fmt.Errorf("TBSCertificate: %w: fields after the extensions", ErrMalformed)
			}
			exts, err := cutExtension(elem, oid)
			if err != nil {
				return nil, err
			}
			head = body[:len(body)-len(before)]
			var b cryptobyte.Builder
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(head)
				if len(exts) > 0 {
					b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(exts) })
					})
				}
			})
			return b.Bytes()
		}
	}
	return nil, fmt.Errorf("TBSCertificate: %w: no extensions", ErrMalformed)
}

// cutExtension takes the [3] element and returns the concatenated DER of
// every extension but the one with oid (content octets), which must occur
// exactly once.
func cutExtension(explicit cryptobyte.String, oid []byte) ([]byte, error) {
	var inner, seq cryptobyte.String
	if !explicit.ReadASN1(&inner, cbasn1.Tag(3).Constructed().ContextSpecific()) ||
		!inner.ReadASN1(&seq, cbasn1.SEQUENCE) || !inner.Empty() {
		return nil, fmt.Errorf("TBSCertificate extensions: %w", ErrMalformed)
	}
	var out []byte
	found := 0
	for !seq.Empty() {
		var ext, extBody cryptobyte.String
		if !seq.ReadASN1Element(&ext, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("TBSCertificate extension: %w", ErrMalformed)
		}
		extBody = ext
		var id []byte
		var idElem cryptobyte.String
		if !extBody.ReadASN1(&idElem, cbasn1.SEQUENCE) || !idElem.ReadASN1((*cryptobyte.String)(&id), cbasn1.OBJECT_IDENTIFIER) {
			return nil, fmt.Errorf("TBSCertificate extension: %w", ErrMalformed)
		}
		if bytes.Equal(id, oid) {
			found++
			continue
		}
		out = append(out, ext...)
	}
	if found != 1 {
		return nil, fmt.Errorf("TBSCertificate: %w: %d %s extensions, want 1", ErrMalformed, found, oidName(oid))
	}
	return out, nil
}

// oidSCTListDER is the content octets of OIDSCTList; OIDPoisonDER those
// of the CT poison extension's OID, 1.3.6.1.4.1.11129.2.4.3.
var (
	oidSCTListDER = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02}
	OIDPoisonDER  = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03}
)

func oidName(oid []byte) string {
	switch {
	case bytes.Equal(oid, oidSCTListDER):
		return "SCT list"
	case bytes.Equal(oid, OIDPoisonDER):
		return "CT poison"
	}
	return fmt.Sprintf("%x", oid)
}

// FindIssuer returns the certificate among candidates that issued cert:
// its subject is cert's issuer name (byte for byte), its subject key ID
// does not contradict cert's authority key ID, and cert's signature
// verifies with its key. The position in the chain does not matter.
// SHA-1 signatures are accepted here (they only identify the issuer; the
// ct-cpp test certificates use them).
func FindIssuer(cert *x509.Certificate, candidates []*x509.Certificate) (*x509.Certificate, error) {
	for _, c := range candidates {
		if c == cert || !bytes.Equal(c.RawSubject, cert.RawIssuer) {
			continue
		}
		if len(cert.AuthorityKeyId) > 0 && len(c.SubjectKeyId) > 0 && !bytes.Equal(cert.AuthorityKeyId, c.SubjectKeyId) {
			continue
		}
		if checkSignatureFrom(cert, c) == nil {
			return c, nil
		}
	}
	return nil, errors.New("issuer not found: no certificate given has the issuer's name and a key that verifies the signature")
}

func checkSignatureFrom(cert, parent *x509.Certificate) error {
	err := parent.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature)
	var insecure x509.InsecureAlgorithmError
	if !errors.As(err, &insecure) {
		return err
	}
	h := sha1.Sum(cert.RawTBSCertificate)
	switch k := parent.PublicKey.(type) {
	case *rsa.PublicKey:
		if cert.SignatureAlgorithm == x509.SHA1WithRSA {
			return rsa.VerifyPKCS1v15(k, crypto.SHA1, h[:], cert.Signature)
		}
	case *ecdsa.PublicKey:
		if cert.SignatureAlgorithm == x509.ECDSAWithSHA1 && ecdsa.VerifyASN1(k, h[:], cert.Signature) {
			return nil
		}
	}
	return err
}

// signedEntry is the part of the signed data (and of the MerkleTreeLeaf)
// that depends on the certificate only: entry type and signed_entry.
func x509Entry(certDER []byte) []byte {
	b := make([]byte, 0, 2+3+len(certDER))
	b = append(b, 0, entryX509)
	b = appendUint24(b, len(certDER))
	return append(b, certDER...)
}

func precertEntry(issuerKeyHash [32]byte, tbs []byte) []byte {
	b := make([]byte, 0, 2+32+3+len(tbs))
	b = append(b, 0, entryPrecert)
	b = append(b, issuerKeyHash[:]...)
	b = appendUint24(b, len(tbs))
	return append(b, tbs...)
}

func appendUint24(b []byte, n int) []byte { return append(b, byte(n>>16), byte(n>>8), byte(n)) }

// signedData is the digitally-signed struct of RFC 6962 section 3.2 for an
// SCT over entry. With the leading signature_type byte (0) read as
// leaf_type (0, timestamped_entry), it is also the MerkleTreeLeaf: the
// leaf hash is SHA-256(0x00 || signedData).
func signedData(sct *SCT, entry []byte) []byte {
	b := make([]byte, 0, 10+len(entry)+2+len(sct.Extensions))
	b = append(b, 0, 0) // v1, certificate_timestamp
	b = binary.BigEndian.AppendUint64(b, sct.Timestamp)
	b = append(b, entry...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sct.Extensions)))
	return append(b, sct.Extensions...)
}

// LeafHash is the RFC 6962 Merkle leaf hash of the entry the SCT was
// issued for, the SCT's extensions included.
func leafHash(data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// verifySignature checks a TLS digitally-signed struct over data with a
// log's key: SHA-256 only, and the signature algorithm of the key.
func verifySignature(pub crypto.PublicKey, hashAlg, sigAlg uint8, sig, data []byte) error {
	if hashAlg != hashSHA256 {
		return fmt.Errorf("hash algorithm %d, want SHA-256 (4)", hashAlg)
	}
	h := sha256.Sum256(data)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if sigAlg != sigECDSA {
			return fmt.Errorf("signature algorithm %d, want ECDSA (3) for the log's key", sigAlg)
		}
		if !ecdsa.VerifyASN1(k, h[:], sig) {
			return ErrSignature
		}
	case *rsa.PublicKey:
		if sigAlg != sigRSA {
			return fmt.Errorf("signature algorithm %d, want RSA (1) for the log's key", sigAlg)
		}
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) != nil {
			return ErrSignature
		}
	default:
		return fmt.Errorf("log key of type %T", pub)
	}
	return nil
}

// EmbeddedLeaf is an embedded SCT with the leaf hash of the entry it was
// issued for: what a monitor looks for in the log.
type EmbeddedLeaf struct {
	SCT      *SCT
	LeafHash [32]byte
}

// EmbeddedLeaves parses the embedded SCTs of chain[0] and computes each
// one's leaf hash (the precertificate entry, with the SCT's timestamp and
// extensions); the issuer is found among chain[1:] by name and signature.
func EmbeddedLeaves(chain []*x509.Certificate) ([]EmbeddedLeaf, error) {
	if len(chain) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf := chain[0]
	list, err := EmbeddedSCTList(leaf)
	if err != nil {
		return nil, err
	}
	if list == nil {
		return nil, errors.New("the certificate embeds no SCT list")
	}
	issuer, err := FindIssuer(leaf, chain[1:])
	if err != nil {
		return nil, err
	}
	tbs, err := RemoveSCTList(leaf.RawTBSCertificate)
	if err != nil {
		return nil, err
	}
	entry := precertEntry(sha256.Sum256(issuer.RawSubjectPublicKeyInfo), tbs)
	raws, err := ParseSCTList(list)
	if err != nil {
		return nil, err
	}
	var out []EmbeddedLeaf
	for _, raw := range raws {
		sct, err := ParseSCT(raw)
		if err != nil {
			continue // an unsupported or malformed SCT names no entry
		}
		out = append(out, EmbeddedLeaf{SCT: sct, LeafHash: leafHash(signedData(sct, entry))})
	}
	return out, nil
}
