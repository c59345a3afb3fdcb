package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ctstage/ctstage/internal/httpserver"
	"github.com/ctstage/ctstage/monitor"
	"github.com/ctstage/ctstage/sctverify"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// monitorCmd is `ctstage monitor`: see docs/monitor.md.
func monitorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logList := fs.String("log-list", "http://127.0.0.1:6962/log.v3.json", "v3 log list of the logs to follow, a file or an http(s) URL")
	stateDir := fs.String("state", "./ctstage-data/monitor", "directory of the monitor's state (tree heads and progress per log)")
	var watch, certs, vantages, sthFiles listFlag
	fs.Var(&vantages, "vantage-addr", "also read every log from this local client address, and compare the views (repeatable)")
	fs.Var(&sthFiles, "sth-file", "tree heads learned elsewhere (JSON lines: log_id, size, root, time), a file or another monitor's http(s) /heads; compared with this monitor's (repeatable)")
	caURL := fs.String("ca", "", "a running ctstage CA's management address (e.g. http://127.0.0.1:6963): every certificate it issued has its SCTs' entries checked within the MMD")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics (ctstage_monitor_*) at /metrics on this address")
	gossipAddr := fs.String("gossip-addr", "", "serve GET /heads, the verified tree heads, on this address for other monitors")
	fs.Var(&watch, "watch", "report certificates for names under this DNS suffix (repeatable)")
	fs.Var(&certs, "certs", "a PEM chain (leaf first): its embedded SCTs' entries must be in their logs within the MMD (repeatable)")
	once := fs.Bool("once", false, "poll every log once, read its entries, and exit: 0 when nothing was wrong, 1 when an alert fired")
	asJSON := fs.Bool("json", false, "one JSON object per line, for each alert and each watched certificate")
	interval := fs.Duration("interval", 10*time.Second, "how often each log is polled")
	maxAge := fs.Duration("max-age", 24*time.Hour, "a log's newest tree head older than this is stale")
	unreachable := fs.Duration("unreachable", 5*time.Minute, "a log failing to answer, or to serve the entries it signed, this long is unreachable (with --once and not set: at the first failure)")
	parallel := fs.Int("parallel", 4, "get-entries requests at once per RFC 6962 log")
	saveEvery := fs.Uint64("save-every", 10000, "entries read between two saves of the state (a killed monitor reads again at most this many)")
	reqTimeout := fs.Duration("request-timeout", 30*time.Second, "bound on each tree head and consistency proof request")
	level := fs.String("log-level", "info", "debug, info, warn or error (progress lines go to stderr)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "monitor: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *once && !flagSet(fs, "unreachable") {
		// One pass is the whole observation: a log it could not read is
		// something wrong, and --once must not exit 0 for it.
		*unreachable = -1
	}
	if *interval <= 0 || *parallel <= 0 {
		fmt.Fprintln(stderr, "monitor: --interval and --parallel must be above 0")
		return exitUsage
	}
	logger, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "monitor:", err)
		return exitUsage
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	ll, err := sctverify.LoadLogList(lctx, *logList, hc)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "monitor:", err)
		return exitUsage
	}
	var scts []monitor.SCT
	for _, f := range certs {
		chain, err := readChain([]string{f})
		if err != nil {
			fmt.Fprintln(stderr, "monitor: --certs:", err)
			return exitUsage
		}
		s, err := monitor.SCTsOf(f, chain)
		if err != nil {
			fmt.Fprintln(stderr, "monitor: --certs:", err)
			return exitUsage
		}
		scts = append(scts, s...)
	}
	var vs []monitor.Vantage
	for _, ip := range vantages {
		v, err := monitor.VantageFrom(ip, *reqTimeout)
		if err != nil {
			fmt.Fprintln(stderr, "monitor: --vantage-addr:", err)
			return exitUsage
		}
		vs = append(vs, v)
	}
	var heads []monitor.ForeignHead
	for _, src := range sthFiles {
		h, err := monitor.LoadHeads(ctx, hc, src)
		if err != nil {
			fmt.Fprintln(stderr, "monitor: --sth-file:", err)
			return exitUsage
		}
		heads = append(heads, h...)
	}
	var progress io.Writer
	if f, ok := stderr.(*os.File); ok && !*asJSON {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			progress = f // a terminal: a progress line, rewritten each second
		}
	}
	reg := prometheus.NewRegistry()
	m, err := monitor.New(monitor.Options{Registerer: reg, Progress: progress, Logs: ll, StateDir: *stateDir, Watch: watch, SCTs: scts, CAURL: *caURL, Vantages: vs, Heads: heads, Sink: &monitor.Writer{W: stdout, JSON: *asJSON},
		HTTPClient: hc, MaxAge: *maxAge, Unreachable: *unreachable, Parallel: *parallel, RequestTimeout: *reqTimeout, SaveEvery: *saveEvery, Logger: logger.With("component", "monitor")})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	for _, srv := range []struct {
		flag, addr, path string
		h                http.Handler
	}{
		{"--metrics-addr", *metricsAddr, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})},
		{"--gossip-addr", *gossipAddr, "/heads", m.HeadsHandler()},
	} {
		if srv.addr == "" {
			continue
		}
		stop, err := serveAt(srv.addr, srv.path, srv.h, logger)
		if err != nil {
			fmt.Fprintf(stderr, "monitor: %s: %v\n", srv.flag, err)
			return exitUsage
		}
		defer stop()
	}
	if *once {
		if m.Once(ctx) > 0 {
			return exitFail
		}
		return exitOK
	}
	logger.Info("monitor following", "logs", len(ll.Logs), "log_list", *logList, "state", *stateDir, "interval", *interval)
	m.Run(ctx, *interval)
	return exitOK
}

// serveAt serves h at path on addr with ctstage's server limits
// (internal/httpserver); stop closes it.
func serveAt(addr, path string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httpserver.New(mux, httpserver.Default, log)
	go srv.Serve(httpserver.Listener(lis, httpserver.Default))
	log.Info("serving", "url", "http://"+lis.Addr().String()+path)
	return func() { srv.Close() }, nil
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
