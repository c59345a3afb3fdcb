package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/internal/loadgen"
)

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	data := fs.String("data", "./ctstage-data", "data directory of ctstage serve, whose staging intermediate signs the precertificates")
	caDir := fs.String("ca", "", "sign with the load-test CA in this directory (made by --make-ca) instead of the staging CA of --data")
	makeCA := fs.String("make-ca", "", "create a P-256 load-test CA in this directory and exit; start serve with --extra-roots DIR/root.pem to accept it")
	chain := fs.String("chain", "rsa", `staging chain that signs: "rsa" (RSA 2048 intermediate, RSA 4096 root: Let's Encrypt's main path) or "ecdsa" (P-384 intermediate and root: each submission costs the log two P-384 verifications, ~0.5 ms each)`)
	fs.StringVar(&cfg.LogURL, "log-url", "", "base URL of the log (shard) to load, or the submission URL of a tiled log of --log-list; default: the RFC 6962 shard of --log-list whose temporal interval contains --not-after")
	logList := fs.String("log-list", "http://127.0.0.1:6962/log.v3.json", "v3 log list (URL or file) giving the log's URL and public key")
	fs.IntVar(&cfg.Clients, "c", 64, "concurrent clients (shorthand)")
	fs.IntVar(&cfg.Clients, "clients", 64, "concurrent clients")
	fs.IntVar(&cfg.Total, "n", 20000, "submissions (shorthand for --total)")
	fs.IntVar(&cfg.Total, "total", 20000, "submissions, all generated before the clock starts; with --rate and --duration and no -n: rate×duration")
	fs.Float64Var(&cfg.Rate, "rate", 0, "steady target rate in submissions/s across all clients; 0: as fast as possible")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop submitting after this long (0: after --total)")
	notAfter := fs.String("not-after", "", "NotAfter of the precertificates, RFC 3339 (default now+90 days)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "PID of the log server on this machine: report its CPU time per accepted submission (Linux)")
	fs.DurationVar(&cfg.ServerIdle, "server-idle", 5*time.Second, "with --server-pid: sample the server's idle CPU this long before the load, and report the CPU per submission above it (negative: don't)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitUsage
	}
	cfg.Logger = log
	if err := benchFlags(fs, &cfg, *notAfter); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitUsage
	}
	if *makeCA != "" {
		if err := loadgen.WriteCA(*makeCA, time.Now()); err != nil {
			log.Error("bench: couldn't make the CA", "err", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "wrote a P-256 load-test CA to %s; serve with --extra-roots %s\n", *makeCA, filepath.Join(*makeCA, loadgen.CARootFile))
		return exitOK
	}
	if *chain != "rsa" && *chain != "ecdsa" {
		fmt.Fprintf(stderr, "bench: --chain %q: want rsa or ecdsa\n", *chain)
		return exitUsage
	}
	if err := benchSetup(ctx, &cfg, *data, *logList, *chain, *caDir); err != nil {
		log.Error("bench failed", "err", err)
		return exitFail
	}
	res, err := loadgen.Run(ctx, cfg)
	if res != nil {
		if werr := writeResult(stdout, res, *asJSON); werr != nil && err == nil {
			err = werr
		}
	}
	switch {
	case err != nil:
		log.Error("bench failed", "err", err)
		return exitFail
	case !res.OK():
		return exitFail
	}
	return exitOK
}

// benchFlags checks the flags and derives what they leave implicit.
func benchFlags(fs *flag.FlagSet, cfg *loadgen.Config, notAfter string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Clients < 1 || cfg.Total < 0 || cfg.Rate < 0 || cfg.Duration < 0 {
		return fmt.Errorf("-c must be positive; -n, --rate and --duration cannot be negative")
	}
	if cfg.Rate > 0 && cfg.Duration > 0 && !set["n"] && !set["total"] {
		cfg.Total = 0 // loadgen makes it rate×duration
	}
	cfg.NotAfter = time.Now().AddDate(0, 0, 90).UTC().Truncate(time.Second)
	if notAfter != "" {
		t, err := time.Parse(time.RFC3339, notAfter)
		if err != nil {
			return fmt.Errorf("--not-after: %w", err)
		}
		cfg.NotAfter = t
	}
	return nil
}

// benchSetup loads the staging intermediate and finds the log and its key.
func benchSetup(ctx context.Context, cfg *loadgen.Config, data, logList, chain, testCA string) error {
	if err := benchIssuer(cfg, data, chain, testCA); err != nil {
		return err
	}
	return benchLog(ctx, cfg, logList)
}

// benchIssuer loads the CA that signs: the load-test CA of --ca, or the
// staging intermediate of --chain.
func benchIssuer(cfg *loadgen.Config, data, chain, testCA string) error {
	if testCA != "" {
		var err error
		cfg.Issuer, cfg.IssuerSigner, cfg.Chain, err = loadgen.LoadCA(testCA)
		return err
	}
	caDir := filepath.Join(data, "ca")
	if _, err := os.Stat(filepath.Join(caDir, "root.pem")); err != nil {
		return fmt.Errorf("no staging CA in %s (start `ctstage serve --data %s` first): %w", caDir, data, err)
	}
	h, err := ca.LoadOrCreateHierarchy(caDir, time.Now())
	if err != nil {
		return err
	}
	issuer, root, signer := h.LoadTestSigner(chain)
	cfg.Issuer, cfg.IssuerSigner = issuer, signer
	cfg.Chain = []*x509.Certificate{root}
	return nil
}

// benchLog finds the log to load and its key.
func benchLog(ctx context.Context, cfg *loadgen.Config, logList string) error {
	ll, err := ctpolicy.LoadList(ctx, logList, http.DefaultClient)
	switch {
	case err != nil && cfg.LogURL == "":
		return err
	case err != nil:
		cfg.Logger.Warn("no log list: SCT and STH signatures will not be verified", "err", err)
		return nil
	case cfg.LogURL == "":
		l, err := loadgen.PickLog(ll, cfg.NotAfter)
		if err != nil {
			return err
		}
		cfg.LogURL, cfg.LogPublicKey = l.URL, l.Key
	default:
		if l := ll.FindLogByURL(cfg.LogURL); l != nil {
			cfg.LogPublicKey = l.Key
		} else if tl := findTiledLog(ll, cfg.LogURL); tl != nil {
			cfg.LogPublicKey, cfg.MonitoringURL = tl.Key, tl.MonitoringURL
		} else {
			cfg.Logger.Warn("--log-url is not in the log list: SCT and STH signatures will not be verified")
		}
	}
	return nil
}

// findTiledLog finds the tiled log whose submission URL is url.
func findTiledLog(ll *loglist3.LogList, url string) *loglist3.TiledLog {
	norm := func(u string) string { return strings.TrimRight(u, "/") }
	for _, op := range ll.Operators {
		for _, l := range op.TiledLogs {
			if norm(l.SubmissionURL) == norm(url) {
				return l
			}
		}
	}
	return nil
}

func writeResult(w io.Writer, res *loadgen.Result, asJSON bool) error {
	if !asJSON {
		return res.WriteReport(w)
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(res)
}
