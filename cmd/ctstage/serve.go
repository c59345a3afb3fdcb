package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"time"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/internal/httpserver"
	"github.com/ctstage/ctstage/internal/loopback"
	"github.com/ctstage/ctstage/internal/serve"
)

func serveCmd(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serve.Options
	fs.StringVar(&o.DataDir, "data", "./ctstage-data", "directory for all state: databases, keys, generated roots")
	fs.StringVar(&o.ConfigFile, "config", "", "optional YAML config file; the built-in defaults serve without it")
	fs.StringVar(&o.Logs.Addr, "log-addr", "127.0.0.1:6962", "address of the logs' plain HTTP server")
	fs.StringVar(&o.Logs.PublicURL, "log-url", "", "the logs' URL as clients reach it, when not http://--log-addr (a load balancer in front of several frontends); it goes in the log list and in a new tiled shard's origin")
	fs.BoolVar(&o.Logs.NoDashboard, "no-dashboard", false, "serve no dashboard at / on the log address (and build no search index)")
	fs.StringVar(&o.Storage, "storage", "sqlite", `"sqlite" (files under --data) or "mysql://USER:PASS@HOST:PORT/DB"`)
	fs.StringVar(&o.Logs.ExtraRoots, "extra-roots", "", "PEM bundle of more roots that every shard accepts")
	fs.StringVar(&o.CA.LogList, "log-list", "", "v3 log list (file or URL) of the logs the CA submits to; default: this server's own logs")
	fs.DurationVar(&o.CA.LogListRefresh, "log-list-refresh", time.Minute, "how often the CA reads --log-list again (0 or less: once)")
	fs.StringVar(&o.CA.MgmtAddr, "mgmt-addr", "127.0.0.1:6963", `loopback address of the CA's management endpoint ("" for none)`)
	fs.StringVar(&o.ACME.Addr, "acme-addr", "127.0.0.1:14000", `address of the ACME server (HTTPS, directory at /directory; "" for none)`)
	fs.BoolVar(&o.ACME.AlwaysValid, "acme-always-valid", false, "ACME challenges succeed without contacting the client")
	fs.IntVar(&o.ACME.VAHTTPPort, "va-http-port", 80, "port the validator connects to for http-01")
	fs.IntVar(&o.ACME.VATLSPort, "va-tls-port", 443, "port the validator connects to for tls-alpn-01")
	fs.StringVar(&o.ACME.DNSAddr, "dns-addr", "127.0.0.1:8053", `loopback address of the built-in DNS server, UDP and TCP ("" for none)`)
	fs.StringVar(&o.ACME.DNSMgmtAddr, "dns-mgmt-addr", "127.0.0.1:8055", `loopback address of the DNS management API: POST /set-txt, /clear-txt ("" for none)`)
	role := fs.String("role", "all", `what this process runs: "all", or any of "log" (the shards' frontends), "sequencer" (integrates and signs the RFC 6962 trees) and "ca" (the CA and ACME), comma-separated; any role but all needs --storage mysql://`)
	fs.StringVar(&o.Election, "election", "", `etcd://HOST:PORT[,HOST:PORT...]: the sequencers elect one per tree on etcd ("" for none: this process sequences every tree)`)
	fs.StringVar(&o.KeysDir, "keys", "", "directory of what every process of a deployment shares: the shards' keys and the CA hierarchy (default: --data)")
	noLimits := fs.Bool("no-rate-limits", false, "turn every ACME rate limit off, whatever --config says")
	noFinal := fs.Bool("no-final-submission", false, "don't submit final certificates to the logs after issuance")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "if set, serve Go's /debug/pprof/ profiles on this loopback address")
	debugAnywhere := fs.Bool("debug-addr-on-any-interface-unsafe", false,
		"let --debug-addr listen beyond loopback: anyone who reaches it can read the process's memory through its profiles")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "serve:", err)
		return exitUsage
	}
	o.Logger = log
	if o.Roles, err = serve.ParseRoles(*role); err != nil {
		fmt.Fprintln(stderr, "serve:", err)
		return exitUsage
	}
	o.CA.NoFinalSubmission = *noFinal
	if o.CA.LogListRefresh <= 0 {
		o.CA.LogListRefresh = -1 // once
	}
	if *noLimits {
		o.ACME.RateLimits = &ratelimit.Config{Disabled: true}
	}
	if os.Getenv("GOGC") == "" {
		// The heap is small (tens of MiB) and short-lived garbage per request
		// is large; collecting at 4x rather than 2x the live heap buys ~5% of
		// CPU for a few hundred MiB at most.
		debug.SetGCPercent(400)
	}
	if *debugAddr != "" {
		if !loopback.IsAddr(*debugAddr) && !*debugAnywhere {
			fmt.Fprintf(stderr, "serve: --debug-addr %s is not a loopback address; profiles expose the process's memory (add --debug-addr-on-any-interface-unsafe to insist)\n", *debugAddr)
			return exitUsage
		}
		if err := serveDebug(*debugAddr, log); err != nil {
			log.Error("serve failed", "err", err)
			return exitFail
		}
	}
	if err := serve.Run(ctx, o); err != nil {
		log.Error("serve failed", "err", err)
		return exitFail
	}
	return exitOK
}

// serveDebug serves net/http/pprof's profiles for performance work.
func serveDebug(addr string, log *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("serving profiles", "addr", "http://"+lis.Addr().String()+"/debug/pprof/")
	srv := httpserver.New(mux, httpserver.Default, log)
	go srv.Serve(lis)
	return nil
}
