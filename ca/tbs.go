package ca

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// RFC 6962 section 3.1 extensions.
var (
	// PoisonOID marks a precertificate; the extension is critical and its
	// value is ASN.1 NULL.
	PoisonOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	// SCTListOID carries the SignedCertificateTimestampList in a final
	// certificate.
	SCTListOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

// ErrMismatch reports that a final certificate's TBSCertificate does not
// correspond to its precertificate's: the CA refuses to sign it.
var ErrMismatch = errors.New("final certificate does not correspond to its precertificate")

// tbsFields are the raw DER elements of a TBSCertificate (RFC 5280 section
// 4.1), each with its tag and length.
type tbsFields struct {
	other [][]byte // version, serial, signature, issuer, validity, subject, spki, unique IDs: in order
	names []string // what each element of other is, for error messages
	exts  []rawExt // the extensions, in order
}

type rawExt struct {
	oid      asn1.ObjectIdentifier
	critical bool
	value    []byte // the extnValue contents
	der      []byte // the whole Extension element
}

// CheckCorrespondence checks that finalTBS is precertTBS with the poison
// extension replaced, in the same position, by the SCT list extension, as
// RFC 6962 section 3.1 requires. It compares DER byte for byte: every field
// and every other extension must be identical and in the same order. It
// never re-encodes anything. Errors wrap ErrMismatch and name the first
// difference.
func CheckCorrespondence(precertTBS, finalTBS []byte) error {
	pre, err := parseTBS(precertTBS)
	if err != nil {
		return fmt.Errorf("%w: precertificate: %v", ErrMismatch, err)
	}
	fin, err := parseTBS(finalTBS)
	if err != nil {
		return fmt.Errorf("%w: final certificate: %v", ErrMismatch, err)
	}
	if len(pre.other) != len(fin.other) {
		return fmt.Errorf("%w: precertificate has %d fields before the extensions, final certificate %d",
			ErrMismatch, len(pre.other), len(fin.other))
	}
	for i := range pre.other {
		if !bytes.Equal(pre.other[i], fin.other[i]) {
			return fmt.Errorf("%w: %s differs", ErrMismatch, pre.names[i])
		}
	}
	pi, err := findOnly(pre.exts, PoisonOID, SCTListOID)
	if err != nil {
		return fmt.Errorf("%w: precertificate: %v", ErrMismatch, err)
	}
	if !pre.exts[pi].critical || !bytes.Equal(pre.exts[pi].value, asn1.NullBytes) {
		return fmt.Errorf("%w: precertificate: poison extension is not critical NULL", ErrMismatch)
	}
	fi, err := findOnly(fin.exts, SCTListOID, PoisonOID)
	if err != nil {
		return fmt.Errorf("%w: final certificate: %v", ErrMismatch, err)
	}
	if pi != fi {
		return fmt.Errorf("%w: SCT list is extension %d, the poison was extension %d", ErrMismatch, fi, pi)
	}
	if len(pre.exts) != len(fin.exts) {
		return fmt.Errorf("%w: precertificate has %d extensions, final certificate %d", ErrMismatch, len(pre.exts), len(fin.exts))
	}
	for i := range pre.exts {
		if i == pi {
			continue
		}
		if !bytes.Equal(pre.exts[i].der, fin.exts[i].der) {
			return fmt.Errorf("%w: extension %d (%v in the precertificate, %v in the final certificate) differs",
				ErrMismatch, i, pre.exts[i].oid, fin.exts[i].oid)
		}
	}
	return nil
}

// findOnly returns the index of the one extension with oid, and refuses an
// extension list where it is missing or repeated or where forbidden occurs.
func findOnly(exts []rawExt, oid, forbidden asn1.ObjectIdentifier) (int, error) {
	at := -1
	for i, e := range exts {
		switch {
		case e.oid.Equal(forbidden):
			return 0, fmt.Errorf("unexpected extension %v", forbidden)
		case !e.oid.Equal(oid):
		case at >= 0:
			return 0, fmt.Errorf("extension %v appears twice", oid)
		default:
			at = i
		}
	}
	if at < 0 {
		return 0, fmt.Errorf("no extension %v", oid)
	}
	return at, nil
}

var tbsFieldNames = []struct {
	name     string
	tag      cbasn1.Tag
	optional bool
}{
	{"version", cbasn1.Tag(0).Constructed().ContextSpecific(), true},
	{"serialNumber", cbasn1.INTEGER, false},
	{"signature algorithm", cbasn1.SEQUENCE, false},
	{"issuer", cbasn1.SEQUENCE, false},
	{"validity", cbasn1.SEQUENCE, false},
	{"subject", cbasn1.SEQUENCE, false},
	{"subjectPublicKeyInfo", cbasn1.SEQUENCE, false},
	{"issuerUniqueID", cbasn1.Tag(1).ContextSpecific(), true},
	{"subjectUniqueID", cbasn1.Tag(2).ContextSpecific(), true},
}

// parseTBS splits a DER TBSCertificate into its raw elements.
func parseTBS(der []byte) (*tbsFields, error) {
	input := cryptobyte.String(der)
	var tbs cryptobyte.String
	if !input.ReadASN1(&tbs, cbasn1.SEQUENCE) || !input.Empty() {
		return nil, errors.New("malformed TBSCertificate")
	}
	f := &tbsFields{}
	for _, fn := range tbsFieldNames {
		if fn.optional && !tbs.PeekASN1Tag(fn.tag) {
			continue
		}
		var el cryptobyte.String
		if !tbs.ReadASN1Element(&el, fn.tag) {
			return nil, fmt.Errorf("malformed %s", fn.name)
		}
		f.other = append(f.other, el)
		f.names = append(f.names, fn.name)
	}
	if tbs.Empty() {
		return f, nil
	}
	var exts cryptobyte.String
	if !tbs.ReadASN1(&exts, cbasn1.Tag(3).Constructed().ContextSpecific()) || !tbs.Empty() {
		return nil, errors.New("malformed extensions")
	}
	var seq cryptobyte.String
	if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) || !exts.Empty() {
		return nil, errors.New("malformed extensions")
	}
	for !seq.Empty() {
		e, err := parseExt(&seq)
		if err != nil {
			return nil, err
		}
		f.exts = append(f.exts, e)
	}
	return f, nil
}

func parseExt(seq *cryptobyte.String) (rawExt, error) {
	var e rawExt
	var el, body cryptobyte.String
	if !seq.ReadASN1Element(&el, cbasn1.SEQUENCE) {
		return e, errors.New("malformed extension")
	}
	e.der = el
	if !el.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&e.oid) {
		return e, errors.New("malformed extension")
	}
	if body.PeekASN1Tag(cbasn1.BOOLEAN) && !body.ReadASN1Boolean(&e.critical) {
		return e, fmt.Errorf("malformed critical flag of extension %v", e.oid)
	}
	var val cryptobyte.String
	if !body.ReadASN1(&val, cbasn1.OCTET_STRING) || !body.Empty() {
		return e, fmt.Errorf("malformed value of extension %v", e.oid)
	}
	e.value = val
	return e, nil
}

// tbsOf returns the DER TBSCertificate of a DER certificate.
func tbsOf(certDER []byte) ([]byte, error) {
	input := cryptobyte.String(certDER)
	var cert, tbs cryptobyte.String
	if !input.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed certificate")
	}
	return tbs, nil
}
