package ca

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/internal/loopback"
)

// IssueRequest is the body of POST /issue on the management endpoint: a
// CSR (whose key becomes the certificate's), names, a profile and a lifetime.
type IssueRequest struct {
	// CSR is a DER PKCS#10 request, base64 (standard encoding). Its
	// signature must verify; its names are used when Names is empty.
	CSR string `json:"csr"`
	// Names override the CSR's DNS names and IP addresses.
	Names []string `json:"names,omitempty"`
	// Profile is "classic" (default), "tlsserver" or "shortlived".
	Profile string `json:"profile,omitempty"`
	// Lifetime is "90d", "160h", or any Go duration; "" is the profile's.
	Lifetime string `json:"lifetime,omitempty"`
}

// IssueResponse is the answer to a successful POST /issue.
type IssueResponse struct {
	Serial  string    `json:"serial"` // hex
	Profile string    `json:"profile"`
	Chain   string    `json:"chain"` // PEM, leaf first, then the intermediate
	SCTs    []SCTInfo `json:"scts"`
}

// SCTInfo describes one embedded SCT.
type SCTInfo struct {
	Log       string `json:"log"`
	Operator  string `json:"operator"`
	LogID     string `json:"log_id"`    // base64
	Timestamp uint64 `json:"timestamp"` // ms since the epoch
}

// ErrorResponse is the body of every answer other than 200.
type ErrorResponse struct {
	Error string `json:"error"`
}

const maxMgmtBody = 64 << 10

// ParseIssueRequest decodes and checks a POST /issue body: strict JSON
// (unknown fields refused), a CSR with a valid signature, a lifetime that
// parses. Errors wrap ErrBadRequest.
func ParseIssueRequest(body []byte) (Request, error) {
	var ir IssueRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ir); err != nil {
		return Request{}, fmt.Errorf("%w: couldn't decode JSON: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return Request{}, fmt.Errorf("%w: data after the JSON object", ErrBadRequest)
	}
	der, err := base64.StdEncoding.DecodeString(ir.CSR)
	if err != nil {
		return Request{}, fmt.Errorf("%w: csr is not base64: %v", ErrBadRequest, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return Request{}, fmt.Errorf("%w: couldn't parse csr: %v", ErrBadRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return Request{}, fmt.Errorf("%w: csr signature: %v", ErrBadRequest, err)
	}
	lifetime, err := ParseLifetime(ir.Lifetime)
	if err != nil {
		return Request{}, err
	}
	req := Request{PublicKey: csr.PublicKey, Names: ir.Names, Profile: ir.Profile, Lifetime: lifetime}
	if len(req.Names) == 0 {
		req.Names = append(req.Names, csr.DNSNames...)
		for _, ip := range csr.IPAddresses {
			req.Names = append(req.Names, ip.String())
		}
	}
	return req, nil
}

// ParseLifetime parses "90d" (days), or a Go duration ("160h"); "" is 0.
func ParseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 10000 {
			return 0, fmt.Errorf("%w: lifetime %q: want a positive number of days like 90d", ErrBadRequest, s)
		}
		return time.Duration(n) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: lifetime %q: want 90d or a duration like 160h", ErrBadRequest, s)
	}
	return d, nil
}

// MgmtHandler serves the management endpoint: POST /issue and GET
// /issuances, behind
// loopback.Guard (loopback peers and Host, no foreign Origin, JSON only);
// serve it on a loopback listener too.
func (c *CA) MgmtHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /issue", c.serveIssue)
	mux.HandleFunc("GET /issuances", c.serveIssuances)
	return loopback.Guard(mux)
}

func (c *CA) serveIssue(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMgmtBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "couldn't read body: " + err.Error()})
		return
	}
	req, err := ParseIssueRequest(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	iss, err := c.Issue(r.Context(), req)
	if err != nil {
		writeJSON(w, statusOf(err), ErrorResponse{Error: err.Error()})
		return
	}
	rsp := IssueResponse{Serial: iss.Serial.Text(16), Profile: iss.Profile, Chain: string(iss.ChainPEM())}
	for _, s := range iss.SCTs {
		rsp.SCTs = append(rsp.SCTs, SCTInfo{
			Log: s.Log.Description, Operator: s.Log.Operator,
			LogID: base64.StdEncoding.EncodeToString(s.Log.LogID[:]), Timestamp: s.SCT.Timestamp,
		})
	}
	writeJSON(w, http.StatusOK, rsp)
}

// statusOf maps an issuance error to the management endpoint's status: the
// endpoint is loopback-only, for testers, so error texts are not masked.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ctpolicy.ErrPolicy):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("couldn't write management response", "err", err)
	}
}
