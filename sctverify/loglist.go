package sctverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
)

// Log states of Chrome's v3 log list.
const (
	StatePending   = "pending"
	StateQualified = "qualified"
	StateUsable    = "usable"
	StateReadOnly  = "readonly"
	StateRetired   = "retired"
	StateRejected  = "rejected"
)

// Log is one log of a v3 log list, RFC 6962 ("logs") or static-ct-api
// ("tiled_logs").
type Log struct {
	Description string
	// URL is the RFC 6962 base URL (ending in "/"), or a tiled log's
	// monitoring URL.
	URL string
	// Operator is the current operator; PreviousOperators the earlier
	// ones, each until its end time.
	Operator          string
	PreviousOperators []PreviousOperator
	ID                [32]byte
	Key               []byte // DER SubjectPublicKeyInfo
	// PublicKey is the parsed key; nil with KeyErr set when the key is not
	// one an SCT may be signed with (RSA of 2048 bits or more, ECDSA P-256).
	PublicKey crypto.PublicKey
	KeyErr    error
	MMD       time.Duration
	// State is one of the State constants, "" when the list gives none;
	// StateTime is when the log entered it.
	State     string
	StateTime time.Time
	// Start and End bound the NotAfter the log accepts, [Start, End); zero
	// when not sharded.
	Start, End time.Time
	// Tiled is true for static-ct-api logs.
	Tiled bool
}

// PreviousOperator ran a log until End.
type PreviousOperator struct {
	Name string
	End  time.Time
}

// OperatorAt is the log's operator at t: the first previous operator whose
// end is after t, else the current one.
func (l *Log) OperatorAt(t time.Time) string {
	for _, p := range l.PreviousOperators { // sorted by End
		if t.Before(p.End) {
			return p.Name
		}
	}
	return l.Operator
}

// LogList is a parsed v3 log list, indexed by log ID.
type LogList struct {
	Logs []*Log
	// Timestamp is the list's log_list_timestamp: the browsers stop
	// enforcing CT on a list too old.
	Timestamp time.Time
	byID      map[[32]byte]*Log
}

// Lookup returns the log with this ID, or nil.
func (ll *LogList) Lookup(id [32]byte) *Log { return ll.byID[id] }

// ErrLogList: the log list is unusable (it does not parse, a log ID is
// not the hash of its key, or two logs share an ID).
var ErrLogList = errors.New("bad log list")

// ParseLogList parses a log list in Chrome's v3 schema.
func ParseLogList(b []byte) (*LogList, error) {
	raw, err := loglist3.NewFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLogList, err)
	}
	ll := &LogList{byID: map[[32]byte]*Log{}, Timestamp: raw.LogListTimestamp}
	for _, op := range raw.Operators {
		if op == nil {
			continue
		}
		for _, l := range op.Logs {
			if l == nil {
				continue
			}
			if err := ll.add(op.Name, l.Description, l.URL, l.Key, l.LogID, l.MMD, l.PreviousOperators, l.State, l.TemporalInterval, false); err != nil {
				return nil, err
			}
		}
		for _, l := range op.TiledLogs {
			if l == nil {
				continue
			}
			if err := ll.add(op.Name, l.Description, l.MonitoringURL, l.Key, l.LogID, l.MMD, l.PreviousOperators, l.State, l.TemporalInterval, true); err != nil {
				return nil, err
			}
		}
	}
	return ll, nil
}

// NewLog is a log known by its URL (a tiled log's monitoring URL) and
// key, as ParseLogList makes each: its ID is the key's SHA-256, and a key
// no SCT may be signed with is KeyErr, not an error.
func NewLog(desc, url string, key []byte, tiled bool) (*Log, error) {
	l := &Log{Description: desc, URL: url, ID: sha256.Sum256(key), Key: key, Tiled: tiled}
	if l.Description == "" {
		l.Description = url
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: log %q has no key", ErrLogList, l.Description)
	}
	l.PublicKey, l.KeyErr = parseLogKey(key)
	return l, nil
}

func (ll *LogList) add(operator, desc, url string, key, logID []byte, mmd int32, prev []*loglist3.PreviousOperator,
	st *loglist3.LogStates, ti *loglist3.TemporalInterval, tiled bool) error {
	l, err := NewLog(desc, url, key, tiled)
	if err != nil {
		return err
	}
	l.Operator, l.MMD = operator, time.Duration(mmd)*time.Second
	if len(logID) != 0 && string(logID) != string(l.ID[:]) {
		return fmt.Errorf("%w: log %q: log_id is not the SHA-256 of its key", ErrLogList, l.Description)
	}
	if ll.byID[l.ID] != nil {
		return fmt.Errorf("%w: log %q: log ID listed twice", ErrLogList, l.Description)
	}
	for _, p := range prev {
		if p != nil {
			l.PreviousOperators = append(l.PreviousOperators, PreviousOperator{Name: p.Name, End: p.EndTime})
		}
	}
	sort.Slice(l.PreviousOperators, func(i, j int) bool { return l.PreviousOperators[i].End.Before(l.PreviousOperators[j].End) })
	l.State, l.StateTime = ListState(st)
	if ti != nil {
		l.Start, l.End = ti.StartInclusive, ti.EndExclusive
	}
	ll.Logs = append(ll.Logs, l)
	ll.byID[l.ID] = l
	return nil
}

// ListState reads a log list state object: the state's name (one of the
// State* constants, "" for none) and its timestamp.
func ListState(st *loglist3.LogStates) (string, time.Time) {
	switch {
	case st == nil:
		return "", time.Time{}
	case st.Pending != nil:
		return StatePending, st.Pending.Timestamp
	case st.Qualified != nil:
		return StateQualified, st.Qualified.Timestamp
	case st.Usable != nil:
		return StateUsable, st.Usable.Timestamp
	case st.ReadOnly != nil:
		return StateReadOnly, st.ReadOnly.Timestamp
	case st.Retired != nil:
		return StateRetired, st.Retired.Timestamp
	case st.Rejected != nil:
		return StateRejected, st.Rejected.Timestamp
	}
	return "", time.Time{}
}

// parseLogKey accepts the keys RFC 6962 logs sign with: RSA of at least
// 2048 bits and ECDSA on P-256.
func parseLogKey(der []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("log key does not parse: %v", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("log key is RSA-%d, want 2048 bits or more", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("log key is ECDSA on %s, want P-256", k.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("log key is %T, want RSA or ECDSA P-256", pub)
	}
	return pub, nil
}

// LoadLogList reads a v3 log list from a file or an http(s) URL.
func LoadLogList(ctx context.Context, src string, hc *http.Client) (*LogList, error) {
	var b []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		b, err = httpGet(ctx, hc, src, 16<<20)
	} else {
		b, err = os.ReadFile(src)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read log list %s: %w", src, err)
	}
	ll, err := ParseLogList(b)
	if err != nil {
		return nil, fmt.Errorf("log list %s: %w", src, err)
	}
	return ll, nil
}

// errHTTPStatus carries a non-200 answer.
type errHTTPStatus struct{ code int }

func (e errHTTPStatus) Error() string { return fmt.Sprintf("HTTP status %d", e.code) }

func httpGet(ctx context.Context, hc *http.Client, url string, limit int64) ([]byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	rsp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(rsp.Body, 1<<16))
		return nil, errHTTPStatus{rsp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(rsp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer longer than %d bytes", limit)
	}
	return b, nil
}
