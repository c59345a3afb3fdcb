package ctpolicy

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/sctverify"
)

// Log is one CT log the CA may submit to, from a v3 log list.
type Log struct {
	// Description names the log in metrics and errors (the log list's
	// description, or its URL when it has none).
	Description string
	// URL is the submission prefix: the RFC 6962 log URL, or a
	// static-ct-api log's submission_url.
	URL string
	// Operator is the name of the log's operator in the list.
	Operator string
	// LogID is the SHA-256 of Key.
	LogID [sha256.Size]byte
	// Key is the log's public key, DER SubjectPublicKeyInfo.
	Key []byte
	// RFC6962 is false for static-ct-api (tiled) logs.
	RFC6962 bool
	// State is the log list state ("usable", "readonly", ...; "" when the
	// list gives none) and StateAt its timestamp.
	State   string
	StateAt time.Time
	// Start and End bound the NotAfter the log takes: [Start, End); zero
	// when the log is not temporally sharded.
	Start, End time.Time

	verifier *ct.SignatureVerifier
	base     string // URL without its trailing "/"
	hc       *http.Client
}

// UsableAt reports whether the CA submits to the log at now: its state is
// usable or qualified, or it becomes readonly, retired or rejected only
// after now (a log that retires in the future is used until then). A
// pending log, or one whose list gives no state, is not submitted to.
func (l *Log) UsableAt(now time.Time) bool {
	switch l.State {
	case "usable", "qualified":
		return true
	case "readonly", "retired", "rejected":
		return now.Before(l.StateAt)
	}
	return false
}

// Accepts reports whether the log takes, at now, a certificate expiring
// at notAfter.
func (l *Log) Accepts(notAfter, now time.Time) bool {
	if !l.UsableAt(now) {
		return false
	}
	if !l.Start.IsZero() && notAfter.Before(l.Start) {
		return false
	}
	return l.End.IsZero() || notAfter.Before(l.End)
}

// LoadList reads a v3 log list from a file or an http(s) URL.
func LoadList(ctx context.Context, src string, hc *http.Client) (*loglist3.LogList, error) {
	var b []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		b, err = fetch(ctx, src, hc)
	} else {
		b, err = os.ReadFile(src)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read log list %s: %w", src, err)
	}
	ll, err := loglist3.NewFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse log list %s: %w", src, err)
	}
	return ll, nil
}

func fetch(ctx context.Context, url string, hc *http.Client) ([]byte, error) {
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
		return nil, fmt.Errorf("HTTP status %s", rsp.Status)
	}
	return io.ReadAll(io.LimitReader(rsp.Body, 16<<20))
}

// LogsFromList returns every log and tiled log of ll, with clients that use
// hc. It refuses a log whose key does not parse or whose log ID is not the
// hash of its key.
func LogsFromList(ll *loglist3.LogList, hc *http.Client) ([]*Log, error) {
	var logs []*Log
	for _, op := range ll.Operators {
		for _, l := range op.Logs {
			lg, err := newLog(op.Name, l.Description, l.URL, l.Key, l.LogID, l.State, l.TemporalInterval, true, hc)
			if err != nil {
				return nil, err
			}
			logs = append(logs, lg)
		}
		for _, l := range op.TiledLogs {
			lg, err := newLog(op.Name, l.Description, l.SubmissionURL, l.Key, l.LogID, l.State, l.TemporalInterval, false, hc)
			if err != nil {
				return nil, err
			}
			logs = append(logs, lg)
		}
	}
	return logs, nil
}

func newLog(operator, desc, url string, key, logID []byte, st *loglist3.LogStates, ti *loglist3.TemporalInterval,
	rfc6962 bool, hc *http.Client) (*Log, error) {
	if desc == "" {
		desc = url
	}
	pub, err := x509.ParsePKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("log %s: couldn't parse key: %w", desc, err)
	}
	v, err := ct.NewSignatureVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", desc, err)
	}
	l := &Log{Description: desc, URL: url, Operator: operator, LogID: sha256.Sum256(key), Key: key, RFC6962: rfc6962, verifier: v}
	if len(logID) != 0 && string(logID) != string(l.LogID[:]) {
		return nil, fmt.Errorf("log %s: log_id is not the SHA-256 of its key", desc)
	}
	l.State, l.StateAt = sctverify.ListState(st)
	if ti != nil {
		l.Start, l.End = ti.StartInclusive, ti.EndExclusive
	}
	l.base, l.hc = strings.TrimRight(url, "/"), hc
	return l, nil
}
