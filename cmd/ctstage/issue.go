package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/internal/keyfile"
)

// namesFlag collects repeated --name flags.
type namesFlag []string

func (n *namesFlag) String() string     { return strings.Join(*n, ",") }
func (n *namesFlag) Set(s string) error { *n = append(*n, s); return nil }

func issueCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var names namesFlag
	fs.Var(&names, "name", "a DNS name (or, for shortlived, an IP address) to include; repeat for more")
	addr := fs.String("mgmt-addr", "127.0.0.1:6963", "address of the serve's management endpoint")
	keyType := fs.String("key-type", "ecdsa-p256", "ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096")
	profile := fs.String("profile", "", `"classic" (default), "tlsserver" or "shortlived"`)
	lifetime := fs.String("lifetime", "", `e.g. "90d" or "160h"; default: the profile's`)
	keyOut := fs.String("key-out", "", "write the new private key here (PEM, mode 0600); without it the key is discarded")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if len(names) == 0 {
		fmt.Fprintln(stderr, "issue: at least one --name is required")
		return exitUsage
	}
	if _, err := ca.ParseLifetime(*lifetime); err != nil {
		fmt.Fprintln(stderr, "issue: --lifetime:", err)
		return exitUsage
	}
	key, err := newKey(*keyType)
	if err != nil {
		fmt.Fprintln(stderr, "issue:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rsp, err := requestIssue(ctx, *addr, key, ca.IssueRequest{Names: names, Profile: *profile, Lifetime: *lifetime})
	if err != nil {
		fmt.Fprintln(stderr, "issue:", err)
		return exitFail
	}
	if *keyOut != "" {
		if err := keyfile.Write(*keyOut, key); err != nil {
			fmt.Fprintln(stderr, "issue:", err)
			return exitFail
		}
	}
	fmt.Fprintf(stderr, "issued serial %s (%s) with %d SCTs\n", rsp.Serial, rsp.Profile, len(rsp.SCTs))
	io.WriteString(stdout, rsp.Chain)
	return exitOK
}

func newKey(kind string) (crypto.Signer, error) {
	switch kind {
	case "ecdsa-p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa-2048", "rsa-3072", "rsa-4096":
		var bits int
		fmt.Sscanf(kind, "rsa-%d", &bits)
		return rsa.GenerateKey(rand.Reader, bits)
	}
	return nil, fmt.Errorf("--key-type %q: want ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096", kind)
}

// requestIssue sends a CSR for key to the management endpoint.
func requestIssue(ctx context.Context, addr string, key crypto.Signer, req ca.IssueRequest) (*ca.IssueResponse, error) {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("couldn't create CSR: %w", err)
	}
	req.CSR = base64.StdEncoding.EncodeToString(csr)
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	url := "http://" + addr + "/issue"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hrsp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("couldn't reach the management endpoint: %w", err)
	}
	defer hrsp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hrsp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("couldn't read the answer: %w", err)
	}
	if hrsp.StatusCode != http.StatusOK {
		var e ca.ErrorResponse
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", hrsp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s: %.200s", hrsp.Status, b)
	}
	var rsp ca.IssueResponse
	if err := json.Unmarshal(b, &rsp); err != nil {
		return nil, fmt.Errorf("couldn't decode the answer: %w", err)
	}
	if blk, _ := pem.Decode([]byte(rsp.Chain)); blk == nil {
		return nil, fmt.Errorf("the answer holds no PEM chain")
	}
	return &rsp, nil
}
