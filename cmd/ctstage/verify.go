package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ctstage/ctstage/sctverify"
)

// verifyCmd is `ctstage verify`: see docs/design.md and docs/verify.md.
func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logList := fs.String("log-list", "http://127.0.0.1:6962/log.v3.json", "v3 log list, a file or an http(s) URL")
	policy := fs.String("policy", "", `evaluate only this policy: "chrome", "apple" or "mozilla" (default: all three)`)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	host := fs.String("host", "", "HOST:PORT: verify what a TLS server presents (embedded, TLS extension and stapled OCSP SCTs)")
	ocspFile := fs.String("ocsp", "", "a DER OCSP response for the certificate, whose SCTs are checked too")
	sctsFile := fs.String("scts", "", "for a precertificate: its SCTs, as add-pre-chain answers (JSON, one or a list) or a TLS-encoded SCT list")
	inclusion := fs.Bool("inclusion", true, "prove each SCT's inclusion: get-proof-by-hash on RFC 6962 logs, the tiles at its leaf_index on tiled logs")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	nowFlag := fs.String("now", "", "time of check, RFC 3339 or YYYY-MM-DD (default: now): SCT timestamps, log states and the policies' dates are taken at it")
	fetchIssuer := fs.Bool("fetch-issuer", false, "fetch a missing issuer from the certificate's AIA caIssuers URL even when it is not loopback (loopback URLs are always fetched)")
	chromeVersion := fs.Int("chrome-version", 0, "the Chrome whose rules apply (default: the one current at the time of check; 147 still takes OCSP SCTs, 148 does not)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ctstage verify [flags] CHAIN.pem|CHAIN.der ...   or   ctstage verify [flags] --host HOST:PORT")
		fs.PrintDefaults()
	}
	files, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if *host == "" && len(files) == 0 {
		fmt.Fprintln(stderr, "verify: give certificate files or --host (both: a precertificate file, and the server whose certificate embeds its SCTs)")
		return exitUsage
	}
	var policies []string
	if *policy != "" {
		if !slices.Contains(sctverify.AllPolicies, *policy) {
			fmt.Fprintf(stderr, "verify: --policy %q: want chrome, apple or mozilla\n", *policy)
			return exitUsage
		}
		policies = []string{*policy}
	}
	var now func() time.Time
	if *nowFlag != "" {
		t, err := parseTime(*nowFlag)
		if err != nil {
			fmt.Fprintf(stderr, "verify: --now %q: %v\n", *nowFlag, err)
			return exitUsage
		}
		now = func() time.Time { return t }
	}
	if *chromeVersion < 0 {
		fmt.Fprintf(stderr, "verify: --chrome-version %d: want a Chrome milestone such as 148\n", *chromeVersion)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hc := &http.Client{Timeout: *timeout}
	// The input first: a file that is no certificate is said so, whatever
	// the log list.
	in, err := verifyInput(ctx, *host, files, *ocspFile, *sctsFile)
	if err != nil {
		fmt.Fprintln(stderr, "verify:", err)
		return exitFail
	}
	ll, err := sctverify.LoadLogList(ctx, *logList, hc)
	if err != nil {
		fmt.Fprintln(stderr, "verify:", err)
		return exitFail
	}
	v := &sctverify.Verifier{Logs: ll, HTTPClient: hc, Inclusion: *inclusion, Policies: policies, Now: now, ChromeVersion: *chromeVersion, FetchIssuer: *fetchIssuer}
	r, err := v.Verify(ctx, in)
	if err != nil {
		fmt.Fprintln(stderr, "verify:", err)
		return exitFail
	}
	if *asJSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil || !r.OK {
		return exitFail
	}
	return exitOK
}

// parseTime reads --now: RFC 3339, or a date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 (2026-04-15T00:00:00Z) or a date (2026-04-15)")
	}
	return t, nil
}

// parseInterleaved parses flags that may come after the file arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var files []string
	for {
		if code, ok := parseFlagsOnly(fs, args); !ok {
			return nil, code, false
		}
		if fs.NArg() == 0 {
			return files, 0, true
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func parseFlagsOnly(fs *flag.FlagSet, args []string) (int, bool) {
	switch err := fs.Parse(args); {
	case err == flag.ErrHelp:
		return exitOK, false
	case err != nil:
		return exitUsage, false
	}
	return 0, true
}

func verifyInput(ctx context.Context, host string, files []string, ocspFile, sctsFile string) (sctverify.Input, error) {
	var in sctverify.Input
	var err error
	if len(files) > 0 {
		if in.Chain, err = readChain(files); err != nil {
			return in, err
		}
	}
	if host != "" {
		served, err := sctverify.FetchHost(ctx, host)
		if err != nil {
			return in, err
		}
		if len(files) == 0 {
			in = served
		} else {
			// A precertificate file and the server of its final
			// certificate: the final certificate's embedded SCTs must
			// sign the precertificate's entry.
			if !sctverify.IsPrecertificate(in.Chain[0]) {
				return in, errors.New("--host with a file: the file must be a precertificate, whose SCTs the served certificate embeds")
			}
			list, err := sctverify.EmbeddedSCTList(served.Chain[0])
			if err != nil || list == nil {
				return in, fmt.Errorf("--host %s: the served certificate embeds no SCT list (%v)", host, err)
			}
			if in.PrecertSCTs, err = sctverify.ParseSCTList(list); err != nil {
				return in, fmt.Errorf("--host %s: the served certificate's SCT list: %w", host, err)
			}
			in.Chain = append(in.Chain, served.Chain[1:]...) // issuer candidates
		}
	}
	if sctsFile != "" {
		b, err := os.ReadFile(sctsFile)
		if err != nil {
			return in, fmt.Errorf("couldn't read --scts: %w", err)
		}
		scts, err := sctverify.ParseSCTFile(b)
		if err != nil {
			return in, fmt.Errorf("--scts %s: %w", sctsFile, err)
		}
		in.PrecertSCTs = append(in.PrecertSCTs, scts...)
	}
	if ocspFile != "" {
		if in.OCSPResponse, err = os.ReadFile(ocspFile); err != nil {
			return in, fmt.Errorf("couldn't read --ocsp: %w", err)
		}
	}
	return in, nil
}

// readChain reads certificates from PEM or DER files, in order: the first
// is the one verified.
func readChain(files []string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("couldn't read %s: %w", f, err)
		}
		ders, err := certBlocks(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, der := range ders {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("%s: couldn't parse certificate: %w", f, err)
			}
			chain = append(chain, c)
		}
	}
	return chain, nil
}

func certBlocks(b []byte) ([][]byte, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("the file is empty: want a certificate, PEM or DER")
	}
	if !strings.Contains(string(b), "-----BEGIN") {
		if b[0] != 0x30 {
			return nil, errors.New("neither PEM (no -----BEGIN line) nor DER (no ASN.1 SEQUENCE): want a certificate")
		}
		return [][]byte{b}, nil // DER
	}
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, blk.Bytes)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("PEM without a CERTIFICATE block: want a certificate")
	}
	return out, nil
}
