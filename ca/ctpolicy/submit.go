package ctpolicy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ctstage/ctstage/sctverify"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
)

// Kinds of submission failure, as the log_failures metric labels them.
const (
	FailTimeout   = "timeout"    // the per-log timeout or the overall deadline passed
	FailTransport = "transport"  // no HTTP answer
	FailStatus    = "status"     // an HTTP status other than 200
	FailMalformed = "malformed"  // a 200 whose body is not a valid SCT
	FailSignature = "signature"  // the SCT's signature does not verify with the log's key
	FailTimestamp = "timestamp"  // the SCT's timestamp is in the future or stale
	FailLogID     = "log_id"     // the SCT names another log
	FailLeafIndex = "leaf_index" // a tiled log's SCT without exactly one valid leaf_index extension
)

// maxResponse bounds the body read from a log.
const maxResponse = 64 << 10

// SubmitError is one failed submission to one log.
type SubmitError struct {
	Log  *Log
	Kind string // one of the Fail* constants
	Err  error
}

func (e *SubmitError) Error() string {
	return fmt.Sprintf("log %s: %s: %v", e.Log.Description, e.Kind, e.Err)
}

func (e *SubmitError) Unwrap() error { return e.Err }

// StatusError is the Err of a FailStatus SubmitError: the log's HTTP
// answer other than 200.
type StatusError struct {
	Code   int
	Status string // e.g. "400 Bad Request"
	Body   []byte
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %s: %.200s", e.Status, e.Body) }

// post sends chain to the log's path once (no retries: the race replaces a
// failed log at once) and decodes the SCT. It does not verify the SCT.
func (l *Log) post(ctx context.Context, path string, chain [][]byte) (*ct.SignedCertificateTimestamp, error) {
	body, err := json.Marshal(ct.AddChainRequest{Chain: chain})
	if err != nil {
		return nil, &SubmitError{l, FailMalformed, err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, &SubmitError{l, FailTransport, err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ctstage-ca/1")
	rsp, err := l.hc.Do(req)
	if err != nil {
		return nil, &SubmitError{l, transportKind(ctx, err), err}
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(rsp.Body, maxResponse))
	if err != nil {
		return nil, &SubmitError{l, transportKind(ctx, err), err}
	}
	if rsp.StatusCode != http.StatusOK {
		return nil, &SubmitError{l, FailStatus, &StatusError{Code: rsp.StatusCode, Status: rsp.Status, Body: b}}
	}
	sct, err := decodeSCT(b)
	if err != nil {
		return nil, &SubmitError{l, FailMalformed, err}
	}
	return sct, nil
}

func transportKind(ctx context.Context, err error) string {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return FailTimeout
	}
	return FailTransport
}

// decodeSCT turns an add-chain response (RFC 6962 section 4.1) into an SCT.
func decodeSCT(b []byte) (*ct.SignedCertificateTimestamp, error) {
	var rsp ct.AddChainResponse
	if err := json.Unmarshal(b, &rsp); err != nil {
		return nil, fmt.Errorf("couldn't decode response: %w", err)
	}
	if rsp.SCTVersion != ct.V1 {
		return nil, fmt.Errorf("SCT version %v, want v1", rsp.SCTVersion)
	}
	if len(rsp.ID) != 32 {
		return nil, fmt.Errorf("log ID of %d bytes, want 32", len(rsp.ID))
	}
	var ds ct.DigitallySigned
	if rest, err := tls.Unmarshal(rsp.Signature, &ds); err != nil {
		return nil, fmt.Errorf("couldn't decode signature: %w", err)
	} else if len(rest) > 0 {
		return nil, errors.New("trailing data after the signature")
	}
	exts, err := decodeB64(rsp.Extensions)
	if err != nil {
		return nil, fmt.Errorf("couldn't decode extensions: %w", err)
	}
	sct := &ct.SignedCertificateTimestamp{SCTVersion: ct.V1, Timestamp: rsp.Timestamp, Extensions: exts, Signature: ds}
	copy(sct.LogID.KeyID[:], rsp.ID)
	return sct, nil
}

// check verifies an SCT for entry: issued by this log, signed with its key,
// and timestamped within [now-maxAge, now+maxFuture].
func (l *Log) check(sct *ct.SignedCertificateTimestamp, entry ct.LogEntry, now time.Time, maxFuture, maxAge time.Duration) error {
	if sct.LogID.KeyID != l.LogID {
		return &SubmitError{l, FailLogID, fmt.Errorf("SCT log ID %x, want %x", sct.LogID.KeyID, l.LogID)}
	}
	if err := l.verifier.VerifySCTSignature(*sct, entry); err != nil {
		return &SubmitError{l, FailSignature, err}
	}
	if !l.RFC6962 {
		if _, err := sctverify.LeafIndex(sct.Extensions); err != nil {
			return &SubmitError{l, FailLeafIndex, err}
		}
	}
	ts := time.UnixMilli(int64(sct.Timestamp))
	if ts.After(now.Add(maxFuture)) {
		return &SubmitError{l, FailTimestamp, fmt.Errorf("SCT timestamp %s is %s in the future", ts.UTC().Format(time.RFC3339Nano), ts.Sub(now))}
	}
	if ts.Before(now.Add(-maxAge)) {
		return &SubmitError{l, FailTimestamp, fmt.Errorf("SCT timestamp %s is older than %s", ts.UTC().Format(time.RFC3339Nano), maxAge)}
	}
	return nil
}
