package sctverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/json"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// Deterministic-enough generators for tests: logs with P-256 keys, a
// P-256 CA that issues certificates with embedded SCTs the way a real CA
// does (precertificate with the poison, SCTs over the precertificate
// entry, final certificate with the SCT list in the poison's place).

type testLog struct {
	name, operator string
	key            *ecdsa.PrivateKey
	state          string
	stateTime      time.Time
	tiled          bool
	prev           []*loglist3.PreviousOperator
}

func newTestLog(t testing.TB, name, operator string) *testLog {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{name: name, operator: operator, key: k, state: StateUsable, stateTime: time.Now().Add(-365 * Day)}
}

func (l *testLog) keyDER(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&l.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (l *testLog) id(t testing.TB) [32]byte { return sha256.Sum256(l.keyDER(t)) }

func logListJSON(t testing.TB, logs ...*testLog) []byte {
	t.Helper()
	ll := &loglist3.LogList{Version: "1"}
	ops := map[string]*loglist3.Operator{}
	for _, l := range logs {
		op := ops[l.operator]
		if op == nil {
			op = &loglist3.Operator{Name: l.operator, Email: []string{}, Logs: []*loglist3.Log{}, TiledLogs: []*loglist3.TiledLog{}}
			ops[l.operator] = op
			ll.Operators = append(ll.Operators, op)
		}
		st := &loglist3.LogState{Timestamp: l.stateTime}
		states := &loglist3.LogStates{}
		switch l.state {
		case StateQualified:
			states.Qualified = st
		case StateReadOnly:
			states.ReadOnly = &loglist3.ReadOnlyLogState{LogState: *st}
		case StateRetired:
			states.Retired = st
		case StatePending:
			states.Pending = st
		case StateRejected:
			states.Rejected = st
		default:
			states.Usable = st
		}
		if l.tiled {
			op.TiledLogs = append(op.TiledLogs, &loglist3.TiledLog{Description: l.name, Key: l.keyDER(t), SubmissionURL: "http://" + l.name + ".invalid/",
				MonitoringURL: "http://" + l.name + ".invalid/", MMD: 60, State: states, PreviousOperators: l.prev})
		} else {
			op.Logs = append(op.Logs, &loglist3.Log{Description: l.name, Key: l.keyDER(t), URL: "http://" + l.name + ".invalid/", MMD: 86400,
				State: states, PreviousOperators: l.prev})
		}
	}
	b, err := json.Marshal(ll)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func makeLogList(t testing.TB, logs ...*testLog) *LogList {
	t.Helper()
	ll, err := ParseLogList(logListJSON(t, logs...))
	if err != nil {
		t.Fatal(err)
	}
	return ll
}

// sctSpec says how to make one SCT.
type sctSpec struct {
	log     *testLog
	at      time.Time // zero: an hour ago
	version uint8     // 0 for v1
	ext     []byte
	// entry, when set, replaces the precertificate entry the SCT signs.
	entry []byte
}

// serializeSCT signs and encodes a v1 SCT over entry.
func serializeSCT(t testing.TB, s sctSpec, entry []byte) []byte {
	t.Helper()
	at := s.at
	if at.IsZero() {
		at = time.Now().Add(-time.Hour)
	}
	sct := &SCT{LogID: s.log.id(t), Timestamp: uint64(at.UnixMilli()), Extensions: s.ext, HashAlg: hashSHA256, SigAlg: sigECDSA}
	if s.entry != nil {
		entry = s.entry
	}
	h := sha256.Sum256(signedData(sct, entry))
	sig, err := ecdsa.SignASN1(rand.Reader, s.log.key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{s.version}
	b = append(b, sct.LogID[:]...)
	b = binary.BigEndian.AppendUint64(b, sct.Timestamp)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.ext)))
	b = append(b, s.ext...)
	b = append(b, hashSHA256, sigECDSA)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
	return append(b, sig...)
}

func encodeSCTList(scts [][]byte) []byte {
	var body []byte
	for _, s := range scts {
		body = binary.BigEndian.AppendUint16(body, uint16(len(s)))
		body = append(body, s...)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	leaf   *ecdsa.PrivateKey
	serial atomic.Int64
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sctverify test CA"},
		NotBefore: time.Now().Add(-Day), NotAfter: time.Now().Add(3650 * Day), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: c, key: key, leaf: leaf}
	ca.serial.Store(100)
	return ca
}

// issue makes a certificate valid [notBefore, notAfter] whose embedded SCT
// list is made by list from the SCTs the specs give; list nil embeds the
// plain encoding, and no specs embeds no SCT list at all.
func (ca *testCA) issue(t testing.TB, notBefore, notAfter time.Time, specs []sctSpec, list func([][]byte) []byte) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: "leaf.example"},
		DNSNames: []string{"leaf.example"}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if len(specs) == 0 {
		return ca.sign(t, tmpl)
	}
	tmpl.ExtraExtensions = []pkix.Extension{{Id: OIDPoison, Critical: true, Value: asn1.NullBytes}}
	pre := ca.sign(t, tmpl)
	tbs, err := ctx509.RemoveCTPoison(pre.RawTBSCertificate) // ct-go, independent of this package's cutting
	if err != nil {
		t.Fatal(err)
	}
	entry := precertEntry(sha256.Sum256(ca.cert.RawSubjectPublicKeyInfo), tbs)
	var scts [][]byte
	for _, s := range specs {
		scts = append(scts, serializeSCT(t, s, entry))
	}
	if list == nil {
		list = encodeSCTList
	}
	val, err := asn1.Marshal(list(scts))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExtraExtensions = []pkix.Extension{{Id: OIDSCTList, Value: val}}
	return ca.sign(t, tmpl)
}

func (ca *testCA) sign(t testing.TB, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leaf.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
