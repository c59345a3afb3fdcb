// Package fakelog is a small RFC 6962 log for tests: add-chain and
// add-pre-chain over real HTTP with its own ECDSA P-256 key, and faults to
// switch on. It keeps no tree: it only issues SCTs.
package fakelog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/tls"
)

// Fault is how a fake log misbehaves.
type Fault int

const (
	OK        Fault = iota // answers with a valid SCT
	Hang                   // never answers (until the request is cancelled)
	Status500              // answers 500
	BadSig                 // signs with a key other than its own
	Future                 // timestamps its SCTs an hour ahead
	Stale                  // timestamps its SCTs two days back
)

// Log is one fake log.
type Log struct {
	Server   *httptest.Server
	Operator string
	Key      *ecdsa.PrivateKey
	Fault    atomic.Int32 // a Fault; may change while serving
	// Requests counts add-chain and add-pre-chain requests.
	Requests atomic.Int64
	// Delay is added before each answer.
	Delay time.Duration
	// Precerts counts accepted add-pre-chain submissions; Finals add-chain.
	Precerts, Finals atomic.Int64

	other *ecdsa.PrivateKey
}

// New starts a fake log; Close its Server when done.
func New(operator string, fault Fault) *Log {
	l := &Log{Operator: operator}
	l.Key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l.other, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l.Fault.Store(int32(fault))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ct/v1/add-pre-chain", func(w http.ResponseWriter, r *http.Request) { l.add(w, r, ct.PrecertLogEntryType) })
	mux.HandleFunc("POST /ct/v1/add-chain", func(w http.ResponseWriter, r *http.Request) { l.add(w, r, ct.X509LogEntryType) })
	l.Server = httptest.NewServer(mux)
	return l
}

func (l *Log) add(w http.ResponseWriter, r *http.Request, etype ct.LogEntryType) {
	l.Requests.Add(1)
	// Read the body first: the server notices a client that went away only
	// once the body is consumed.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if l.Delay > 0 {
		select {
		case <-time.After(l.Delay):
		case <-r.Context().Done():
			return
		}
	}
	fault := Fault(l.Fault.Load())
	switch fault {
	case Hang:
		<-r.Context().Done()
		return
	case Status500:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var req ct.AddChainRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.Chain) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	chain := make([]ct.ASN1Cert, len(req.Chain))
	for i, c := range req.Chain {
		chain[i] = ct.ASN1Cert{Data: c}
	}
	ts := time.Now()
	switch fault {
	case Future:
		ts = ts.Add(time.Hour)
	case Stale:
		ts = ts.Add(-48 * time.Hour)
	}
	leaf, err := ct.MerkleTreeLeafFromRawChain(chain, etype, uint64(ts.UnixMilli()))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := l.Key
	if fault == BadSig {
		key = l.other
	}
	rsp, err := l.sign(leaf, key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if etype == ct.PrecertLogEntryType {
		l.Precerts.Add(1)
	} else {
		l.Finals.Add(1)
	}
	json.NewEncoder(w).Encode(rsp)
}

func (l *Log) sign(leaf *ct.MerkleTreeLeaf, key *ecdsa.PrivateKey) (*ct.AddChainResponse, error) {
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: l.LogID()}, Timestamp: leaf.TimestampedEntry.Timestamp}
	input, err := ct.SerializeSCTSignatureInput(sct, ct.LogEntry{Leaf: *leaf})
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(input)
	sig, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	ds, err := tls.Marshal(ct.DigitallySigned{
		Algorithm: tls.SignatureAndHashAlgorithm{Hash: tls.SHA256, Signature: tls.ECDSA},
		Signature: sig,
	})
	if err != nil {
		return nil, err
	}
	id := l.LogID()
	return &ct.AddChainResponse{SCTVersion: ct.V1, ID: id[:], Timestamp: sct.Timestamp, Extensions: base64.StdEncoding.EncodeToString(nil), Signature: ds}, nil
}

// PublicKeyDER is the log's key as a DER SubjectPublicKeyInfo.
func (l *Log) PublicKeyDER() []byte {
	der, _ := x509.MarshalPKIXPublicKey(l.Key.Public())
	return der
}

// LogID is the SHA-256 of the log's key.
func (l *Log) LogID() [32]byte { return sha256.Sum256(l.PublicKeyDER()) }

// Entry is the log's entry for a v3 log list: usable, no temporal interval.
func (l *Log) Entry() *loglist3.Log {
	id := l.LogID()
	return &loglist3.Log{
		Description: l.Operator + " " + l.Server.URL,
		LogID:       id[:],
		Key:         l.PublicKeyDER(),
		URL:         l.Server.URL + "/",
		MMD:         86400,
		State:       &loglist3.LogStates{Usable: &loglist3.LogState{Timestamp: time.Now().Add(-time.Hour)}},
	}
}

// List is a v3 log list of logs, grouped by operator.
func List(logs ...*Log) *loglist3.LogList {
	ll := &loglist3.LogList{Version: "1", LogListTimestamp: time.Now()}
	ops := map[string]*loglist3.Operator{}
	for _, l := range logs {
		op := ops[l.Operator]
		if op == nil {
			op = &loglist3.Operator{Name: l.Operator, Email: []string{}}
			ops[l.Operator] = op
			ll.Operators = append(ll.Operators, op)
		}
		op.Logs = append(op.Logs, l.Entry())
	}
	return ll
}
