package sctverify

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OIDs of RFC 6962 section 3.3.
var (
	OIDSCTList     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2} // in the certificate
	OIDOCSPSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 5} // in an OCSP SingleResponse
	OIDPoison      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	OIDPrecertEKU  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 4}
)

// Parse errors, checked with errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed SCT, SCT list or extension.
	ErrMalformed = errors.New("malformed")
	// ErrTrailingData: well-formed, followed by bytes that belong to nothing.
	ErrTrailingData = errors.New("trailing data")
	// ErrUnsupportedVersion: an SCT of a version other than v1. Such an SCT
	// is not invalid: RFC 6962 clients skip versions they do not know.
	ErrUnsupportedVersion = errors.New("unsupported SCT version")
)

// SCT is a v1 SignedCertificateTimestamp (RFC 6962 section 3.2).
type SCT struct {
	LogID      [32]byte
	Timestamp  uint64 // milliseconds since the epoch
	Extensions []byte // CtExtensions, opaque
	HashAlg    uint8  // TLS HashAlgorithm: 4 is SHA-256
	SigAlg     uint8  // TLS SignatureAlgorithm: 1 RSA, 3 ECDSA
	Signature  []byte
	// Raw is the serialized SCT as it appeared in its list.
	Raw []byte
}

// Time is the SCT's timestamp.
func (s *SCT) Time() time.Time { return time.UnixMilli(int64(s.Timestamp)).UTC() }

// ParseSCTList splits a TLS-encoded SignedCertificateTimestampList
// (RFC 6962 section 3.3) into its serialized SCTs. The list and every SCT
// in it must be non-empty, and nothing may follow the list.
func ParseSCTList(b []byte) ([][]byte, error) {
	s := cryptobyte.String(b)
	var list cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&list) {
		return nil, fmt.Errorf("SCT list: %w: truncated length or contents", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("SCT list: %w: %d bytes after the list", ErrTrailingData, len(s))
	}
	if list.Empty() {
		return nil, fmt.Errorf("SCT list: %w: empty list", ErrMalformed)
	}
	var out [][]byte
	for !list.Empty() {
		var sct cryptobyte.String
		if !list.ReadUint16LengthPrefixed(&sct) {
			return nil, fmt.Errorf("SCT list: %w: truncated SCT #%d", ErrMalformed, len(out)+1)
		}
		if sct.Empty() {
			return nil, fmt.Errorf("SCT list: %w: empty SCT #%d", ErrMalformed, len(out)+1)
		}
		out = append(out, []byte(sct))
	}
	return out, nil
}

// ParseSCT decodes one serialized SCT. Versions other than v1 give
// ErrUnsupportedVersion; nothing may follow the signature.
func ParseSCT(b []byte) (*SCT, error) {
	s := cryptobyte.String(b)
	var version uint8
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("SCT: %w: empty", ErrMalformed)
	}
	if version != 0 {
		return nil, fmt.Errorf("SCT: %w: v%d", ErrUnsupportedVersion, int(version)+1)
	}
	sct := &SCT{Raw: b}
	var logID, ext, sig []byte
	if !s.ReadBytes(&logID, 32) || !s.ReadUint64(&sct.Timestamp) ||
		!s.ReadUint16LengthPrefixed((*cryptobyte.String)(&ext)) ||
		!s.ReadUint8(&sct.HashAlg) || !s.ReadUint8(&sct.SigAlg) ||
		!s.ReadUint16LengthPrefixed((*cryptobyte.String)(&sig)) {
		return nil, fmt.Errorf("SCT: %w: truncated", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("SCT: %w: %d bytes after the signature", ErrTrailingData, len(s))
	}
	copy(sct.LogID[:], logID)
	sct.Extensions, sct.Signature = ext, sig
	return sct, nil
}

// EmbeddedSCTList returns the TLS-encoded SCT list of the certificate's SCT
// list extension, or nil when it has none. More than one such extension,
// or a value that is not exactly one OCTET STRING, is an error.
func EmbeddedSCTList(cert *x509.Certificate) ([]byte, error) {
	var found []byte
	n := 0
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDSCTList) {
			n++
			found = e.Value
		}
	}
	switch n {
	case 0:
		return nil, nil
	case 1:
		return unwrapOctetString(found)
	}
	return nil, fmt.Errorf("certificate: %w: %d SCT list extensions, want at most 1", ErrMalformed, n)
}

// unwrapOctetString decodes an extension value that must be exactly one
// DER OCTET STRING.
func unwrapOctetString(v []byte) ([]byte, error) {
	s := cryptobyte.String(v)
	var inner cryptobyte.String
	if !s.ReadASN1(&inner, cbasn1.OCTET_STRING) {
		return nil, fmt.Errorf("SCT list extension: %w: not an OCTET STRING", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("SCT list extension: %w: %d bytes after the OCTET STRING", ErrTrailingData, len(s))
	}
	return inner, nil
}

// addChainAnswer is an add-(pre-)chain answer (RFC 6962 section 4.1).
type addChainAnswer struct {
	SCTVersion *uint8 `json:"sct_version"`
	ID         []byte `json:"id"`
	Timestamp  uint64 `json:"timestamp"`
	Extensions []byte `json:"extensions"`
	Signature  []byte `json:"signature"`
}

// ParseSCTFile reads SCTs from a file: add-chain answers as JSON (one object, an
// array, or one object per line), else a TLS-encoded SCT list. It returns
// each SCT serialized (RFC 6962 section 3.2).
func ParseSCTFile(b []byte) ([][]byte, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, errors.New("the file is empty")
	}
	if t[0] != '{' && t[0] != '[' {
		return ParseSCTList(b)
	}
	var answers []addChainAnswer
	if t[0] == '[' {
		if err := json.Unmarshal(t, &answers); err != nil {
			return nil, fmt.Errorf("not a JSON list of add-chain answers: %w", err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(t))
		for dec.More() {
			var a addChainAnswer
			if err := dec.Decode(&a); err != nil {
				return nil, fmt.Errorf("not add-chain answers: %w", err)
			}
			answers = append(answers, a)
		}
	}
	var out [][]byte
	for i, a := range answers {
		if a.SCTVersion == nil || len(a.ID) != 32 || len(a.Signature) == 0 || len(a.Extensions) > 0xffff {
			return nil, fmt.Errorf("answer %d: want sct_version, a 32-byte id, extensions and a signature", i+1)
		}
		sct := []byte{*a.SCTVersion}
		sct = append(sct, a.ID...)
		sct = binary.BigEndian.AppendUint64(sct, a.Timestamp)
		sct = binary.BigEndian.AppendUint16(sct, uint16(len(a.Extensions)))
		sct = append(sct, a.Extensions...)
		out = append(out, append(sct, a.Signature...))
	}
	if len(out) == 0 {
		return nil, errors.New("no SCTs in the file")
	}
	return out, nil
}
