// Package serve wires the pieces of `ctstage serve` together and runs them:
// the staging CA hierarchy, the storage, the logs and their HTTP server.
// cmd/ctstage only parses flags; tests start the same Stage in-process.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/certificate-transparency-go/x509util"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ratelimit"
	castore "github.com/ctstage/ctstage/ca/store"
	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/internal/config"
	"github.com/ctstage/ctstage/internal/logging"
	"github.com/ctstage/ctstage/storage"
)

// Options are the settings of `ctstage serve`; see docs/design.md for the flags.
type Options struct {
	// DataDir holds all state: databases, keys, generated roots.
	DataDir string
	// ConfigFile is an optional YAML file; "" serves the built-in defaults.
	ConfigFile string
	// LogAddr is where the logs' plain HTTP server listens ("127.0.0.1:0" picks a port).
	LogAddr string
	// Storage is "sqlite" or "mysql://USER:PASS@HOST:PORT/DB".
	Storage string
	// ExtraRoots is an optional PEM bundle of more roots every shard accepts.
	ExtraRoots string
	// Logger receives all logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for the default topology. Default time.Now.
	Now func() time.Time
	// LogList is where the CA finds the logs it submits to: a v3 log list
	// file or http(s) URL. "" uses the running logs' own list.
	LogList string
	// MgmtAddr is the loopback address of the CA's management endpoint
	// (POST /issue); "" serves none. Non-loopback addresses are refused.
	MgmtAddr string
	// NoFinalSubmission turns off the background submission of final
	// certificates to the logs.
	NoFinalSubmission bool
	// ACMEAddr is where the ACME server listens (HTTPS); "" serves no
	// ACME, no built-in DNS and no DNS management API.
	ACMEAddr string
	// ACMEAlwaysValid makes every challenge succeed without contacting
	// the client.
	ACMEAlwaysValid bool
	// VAHTTPPort and VATLSPort are where the validator connects for
	// http-01 and tls-alpn-01; 0 is 80 and 443.
	VAHTTPPort, VATLSPort int
	// DNSAddr is the built-in DNS server's loopback address (UDP and
	// TCP); "" serves none (dns-01 then reads the zone directly).
	DNSAddr string
	// DNSMgmtAddr is the loopback address of the DNS management API
	// (POST /set-txt, /clear-txt, ...); "" serves none.
	DNSMgmtAddr string
	// RateLimits, when set, are the ACME rate limits, in place of the
	// config file's acme.rate_limits; nil takes the file's, or
	// ratelimit.Defaults() without one.
	RateLimits *ratelimit.Config
	// DNS, when set, are the built-in resolver's records at start, in
	// place of the config file's acme.dns; nil takes the file's, or
	// every name at 127.0.0.1 without one.
	DNS *config.DNS
}

// Stage is a running ctstage.
type Stage struct {
	// Logs is the log server.
	Logs *ctlog.Server
	// LogURL is the logs' base URL, e.g. "http://127.0.0.1:6962".
	LogURL string
	// Hierarchy is the staging CA hierarchy.
	Hierarchy *ca.Hierarchy
	// CA issues certificates with embedded SCTs from the logs.
	CA *ca.CA
	// MgmtURL is the management endpoint's base URL, e.g.
	// "http://127.0.0.1:6963"; "" when none is served.
	MgmtURL string

	log      *slog.Logger
	cfg      config.Config // the config file's settings, Options' overrides applied
	store    *storage.Backend
	http     *http.Server
	cancel   context.CancelFunc
	done     chan error
	serveErr chan error
	unlock   func()
	caReady  atomic.Bool
	caStore  castore.Store
	mgmt     *http.Server
	mgmtErr  chan error
	// caHandler serves the CA's issuer certificates and CRLs under /ca/.
	caHandler http.Handler

	// ACMEURL is the ACME server's base URL, e.g. "https://127.0.0.1:14000"
	// (directory at ACMEURL+"/directory"); "" when none is served.
	ACMEURL string
	// DNSAddr is the built-in DNS server's address; DNSMgmtURL its
	// management API's base URL.
	DNSAddr, DNSMgmtURL string
	acme                acmeParts
}

// CAStoreFile is the CA's issuance database under the data directory.
const CAStoreFile = "ca.db"

// LogListFile is the log list's name under the data directory.
const LogListFile = "log_list.json"

// Start builds everything and serves. It returns once every shard is
// ready, or with the first error; the caller ends it with Shutdown.
func Start(ctx context.Context, opts Options) (st *Stage, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logging.RouteKlog(opts.Logger.With("component", "trillian"))
	cfg, err := loadConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create data directory: %w", err)
	}
	unlock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	h, err := ca.LoadOrCreateHierarchy(filepath.Join(opts.DataDir, "ca"), opts.Now())
	if err != nil {
		return nil, err
	}
	roots := []string{h.RootsPEMPath()}
	if opts.ExtraRoots != "" {
		if err := checkRoots(opts.ExtraRoots); err != nil {
			return nil, err
		}
		roots = append(roots, opts.ExtraRoots)
	}
	lis, err := net.Listen("tcp", opts.LogAddr)
	if err != nil {
		return nil, fmt.Errorf("couldn't listen on --log-addr: %w", err)
	}
	defer func() {
		if err != nil {
			lis.Close()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store, err := storage.Open(ctx, opts.Storage, opts.DataDir, ctlog.NewMetricFactory(reg, "ctstage_storage_"))
	if err != nil {
		return nil, err
	}
	st = &Stage{LogURL: "http://" + lis.Addr().String(), Hierarchy: h, log: opts.Logger, store: store, unlock: unlock, cfg: cfg}
	st.Logs, err = ctlog.New(ctx, ctlog.Options{
		DataDir:      opts.DataDir,
		Config:       cfg.Logs,
		LogStorage:   store.Log,
		AdminStorage: store.Admin,
		RootFiles:    roots,
		BaseURL:      st.LogURL,
		Logger:       opts.Logger,
		Registerer:   reg,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	if err := st.Logs.WriteLogList(filepath.Join(opts.DataDir, LogListFile)); err != nil {
		st.Logs.Close()
		store.Close()
		return nil, err
	}
	if opts.MgmtAddr != "" && !ca.IsLoopbackAddr(opts.MgmtAddr) {
		st.Logs.Close()
		store.Close()
		return nil, fmt.Errorf("--mgmt-addr %s: the management endpoint listens on loopback only", opts.MgmtAddr)
	}
	st.acme.starting.Store(opts.ACMEAddr != "")
	st.start(lis, reg)
	if err := st.startServices(ctx, opts, reg); err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.unlock = func() {} // the deferred unlock does it
		return nil, errors.Join(err, st.Shutdown(sctx))
	}
	opts.Logger.Info("ctstage serving", "logs", st.LogURL, "storage", store.Kind, "data", opts.DataDir,
		"log_list", st.LogURL+"/log.v3.json", "root", h.RootsPEMPath())
	return st, nil
}

func (st *Stage) start(lis net.Listener, reg *prometheus.Registry) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", st.Logs.Handler())
	mux.HandleFunc("GET /healthz", st.serveHealthACME)
	mux.Handle("/ca/", http.StripPrefix("/ca", http.HandlerFunc(st.serveCA)))
	st.http = &http.Server{
		Handler:           logging.Requests(st.log, mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(st.log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	st.done = make(chan error, 1)
	st.serveErr = make(chan error, 1)
	go func() { st.done <- st.Logs.Run(ctx) }()
	go func() {
		if err := st.http.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			st.serveErr <- err
		}
		close(st.serveErr)
	}()
}

// Err delivers an error if the HTTP server stops on its own.
func (st *Stage) Err() <-chan error { return st.serveErr }

// Shutdown stops accepting requests, lets those in flight finish (until ctx
// ends), stops the sequencer and Trillian, and closes the storage.
func (st *Stage) Shutdown(ctx context.Context) error {
	err := st.stopACME(ctx)
	if st.mgmt != nil {
		err = errors.Join(err, st.mgmt.Shutdown(ctx))
	}
	if st.CA != nil {
		err = errors.Join(err, st.CA.Close(ctx))
	}
	err = errors.Join(err, st.http.Shutdown(ctx))
	if st.caStore != nil {
		err = errors.Join(err, st.caStore.Close())
	}
	st.cancel()
	<-st.done
	st.Logs.Close()
	err = errors.Join(err, st.store.Close())
	st.unlock()
	return err
}

// Run starts ctstage and serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, opts Options) error {
	st, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-st.Err():
	case serveErr = <-st.mgmtErrs():
	case serveErr = <-st.acmeErrs():
	}
	st.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return errors.Join(serveErr, st.Shutdown(sctx))
}

// loadConfig reads opts.ConfigFile, or takes the defaults without one.
// The rate limits are, first to last: opts.RateLimits when set (which
// --no-rate-limits sets to Disabled), the file's acme.rate_limits, the
// staging defaults. The resolver's records are opts.DNS when set, else
// the file's acme.dns, else every name at 127.0.0.1.
func loadConfig(opts Options) (config.Config, error) {
	cfg := config.Default(opts.Now())
	if opts.ConfigFile != "" {
		var err error
		if cfg, err = config.Load(opts.ConfigFile, opts.Now()); err != nil {
			return config.Config{}, err
		}
	}
	if opts.RateLimits != nil {
		if err := opts.RateLimits.Validate(); err != nil {
			return config.Config{}, fmt.Errorf("invalid Options.RateLimits: %w", err)
		}
		cfg.RateLimits = *opts.RateLimits
	}
	if opts.DNS != nil {
		if err := opts.DNS.Validate(); err != nil {
			return config.Config{}, fmt.Errorf("invalid Options.DNS: %w", err)
		}
		cfg.DNS = *opts.DNS
	}
	return cfg, nil
}

// checkRoots refuses an --extra-roots file without a parsable certificate,
// so that a typo is an error at start and not a log that takes nothing.
func checkRoots(path string) error {
	pool := x509util.NewPEMCertPool()
	if err := pool.AppendCertsFromPEMFile(path); err != nil {
		return fmt.Errorf("--extra-roots %s: %w", path, err)
	}
	if len(pool.RawCertificates()) == 0 {
		return fmt.Errorf("--extra-roots %s: no certificates", path)
	}
	return nil
}

// lockDataDir takes an exclusive lock on the data directory, so that two
// processes never write the same databases and keys.
func lockDataDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another ctstage (%w)", dir, err)
	}
	return func() { f.Close() }, nil
}
