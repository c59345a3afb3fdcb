// Package serve wires the pieces of `ctstage serve` together and runs them:
// the staging CA hierarchy, the storage, the logs, the CA and the ACME
// server, each a part that Start opens in order and that pushes its close
// on one undo stack (docs/design.md, "The lifecycle of ctstage serve").
// cmd/ctstage only parses flags; tests start the same Stage in-process.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/internal/config"
	"github.com/ctstage/ctstage/internal/httpserver"
	"github.com/ctstage/ctstage/internal/logging"
	"github.com/ctstage/ctstage/internal/loopback"
)

// Options are the settings of `ctstage serve`, grouped by role; see
// docs/design.md for the flags.
type Options struct {
	// DataDir holds all state: databases, keys, generated roots.
	DataDir string
	// ConfigFile is an optional YAML file; "" serves the built-in defaults.
	ConfigFile string
	// Storage is "sqlite" or "mysql://USER:PASS@HOST:PORT/DB".
	Storage string
	// Logger receives all logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for the default topology and the CA. Default time.Now.
	Now func() time.Time
	// ServerLimits are every listener's timeouts; zero fields take
	// httpserver.Default's.
	ServerLimits httpserver.Limits
	// Roles are what this process runs; the zero value is all of them.
	Roles Roles
	// Election is "etcd://HOST:PORT[,HOST:PORT...]": the processes with
	// the sequencer role elect one sequencer per tree there. "" sequences
	// every tree in this process.
	Election string
	// KeysDir holds what every process of a deployment must share: the
	// shards' keys and the CA hierarchy. Default DataDir.
	KeysDir string

	Logs LogOptions
	CA   CAOptions
	ACME ACMEOptions
}

// LogOptions are the settings of the logs.
type LogOptions struct {
	// Addr is where the logs' plain HTTP server listens ("127.0.0.1:0"
	// picks a port). It also serves /log.v3.json, /metrics, /healthz and
	// the CA's /ca/ files.
	Addr string
	// ExtraRoots is an optional PEM bundle of more roots every shard accepts.
	ExtraRoots string
	// PublicURL is where clients reach the logs when that is not Addr:
	// the load balancer in front of several frontends, which must all
	// say the same URL in the log list and, for a tiled shard created
	// behind it, the checkpoints' origin. Default "http://" + Addr.
	PublicURL string
	// NoDashboard turns off the dashboard (package dashboard) and its
	// index, which reads every entry the shards integrate.
	NoDashboard bool
}

// CAOptions are the settings of the staging CA.
type CAOptions struct {
	// LogList is where the CA finds the logs it submits to: a v3 log list
	// file or http(s) URL. "" uses the running logs' own list.
	LogList string
	// LogListRefresh is how often a LogList is read again, so that the
	// CA follows its logs' states as a CA reading a published list
	// does. 0 is a minute; negative reads it once.
	LogListRefresh time.Duration
	// MgmtAddr is the loopback address of the CA's management endpoint
	// (POST /issue); "" serves none. Non-loopback addresses are refused.
	MgmtAddr string
	// NoFinalSubmission turns off the background submission of final
	// certificates to the logs.
	NoFinalSubmission bool
}

// ACMEOptions are the settings of the ACME server and its validator.
type ACMEOptions struct {
	// Addr is where the ACME server listens (HTTPS); "" serves no ACME,
	// no built-in DNS and no DNS management API.
	Addr string
	// AlwaysValid makes every challenge succeed without contacting the
	// client.
	AlwaysValid bool
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
	// LogURL is the logs' base URL, e.g. "http://127.0.0.1:6962", or
	// Options.Logs.PublicURL.
	LogURL string
	// Hierarchy is the staging CA hierarchy.
	Hierarchy *ca.Hierarchy
	// CA issues certificates with embedded SCTs from the logs.
	CA *ca.CA
	// MgmtURL is the management endpoint's base URL, e.g.
	// "http://127.0.0.1:6963"; "" when none is served.
	MgmtURL string
	// ACMEURL is the ACME server's base URL, e.g. "https://127.0.0.1:14000"
	// (directory at ACMEURL+"/directory"); "" when none is served.
	ACMEURL string
	// DNSAddr is the built-in DNS server's address; DNSMgmtURL its
	// management API's base URL.
	DNSAddr, DNSMgmtURL string

	opts  Options
	log   *slog.Logger
	cfg   config.Config // the config file's settings, Options' overrides applied
	reg   *prometheus.Registry
	undo  undoStack
	group *errgroup.Group
	gctx  context.Context // ends when a server or the sequencer stops on its own
	ready readiness

	store   storageParts
	logs    logParts
	dash    dashboardParts
	ca      caParts
	started time.Time
}

// CAStoreFile is the CA's issuance database under the data directory.
const CAStoreFile = "ca.db"

// LogListFile is the log list's name under the data directory.
const LogListFile = "log_list.json"

// shutdownTimeout bounds the undoing of a Start that failed part-way, and
// Run's graceful shutdown.
const shutdownTimeout = 15 * time.Second

// part is one step of Start. A gated part is a readiness check of its
// own, "<name> starting", from the moment Start begins until its start
// returns nil, so that /healthz, served from the logs part on, never
// answers 200 before every part is up.
type part struct {
	name  string
	start func(context.Context) error
	gate  bool
}

// parts are Start's steps, in order. The CA and ACME parts are the ca
// role's; the logs part serves what the log and sequencer roles run.
func (st *Stage) parts() []part {
	return []part{
		{"config", st.loadConfig, false},
		{"data directory", st.openDataDir, false},
		{"storage", st.openStorage, false},
		{"hierarchy", st.openHierarchy, false},
		{"logs", st.startLogs, true},
		{"CA", st.ifCA(st.startCA), true},
		{"ACME", st.ifCA(st.startACME), true},
		{"dashboard", st.startDashboard, false},
	}
}

// Start builds everything and serves. It returns once every part is
// ready, or with the first error, having closed whatever it had opened;
// the caller ends a Stage with Shutdown.
func Start(ctx context.Context, opts Options) (_ *Stage, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logging.RouteKlog(opts.Logger.With("component", "trillian"))
	st := &Stage{opts: opts, log: opts.Logger, started: time.Now()}
	st.group, st.gctx = errgroup.WithContext(context.Background())
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			err = errors.Join(err, st.Shutdown(sctx))
		}
	}()
	parts := st.parts()
	opened := make([]func(), len(parts))
	for i, p := range parts {
		opened[i] = func() {}
		if p.gate {
			var check func(context.Context) error
			check, opened[i] = startingCheck(p.name)
			st.ready.add(p.name+" starting", check)
		}
	}
	for i, p := range parts {
		if err := p.start(ctx); err != nil {
			return nil, err
		}
		opened[i]()
	}
	st.log.Info("ctstage serving", "roles", opts.Roles.orAll().String(), "logs", st.LogURL, "storage", st.store.backend.Kind, "data", opts.DataDir,
		"log_list", st.LogURL+"/log.v3.json", "root", st.Hierarchy.RootsPEMPath(),
		"start", time.Since(st.started).Round(time.Millisecond))
	return st, nil
}

// Done is closed when a server or the sequencer stops on its own: the
// Stage must then be shut down, and Shutdown returns the cause.
func (st *Stage) Done() <-chan struct{} { return st.gctx.Done() }

// Shutdown stops accepting requests, lets those in flight finish (until
// ctx ends), then closes every part in the reverse of the order Start
// opened them, and waits for every goroutine Start began. It returns the
// closes' errors and any server's own failure.
func (st *Stage) Shutdown(ctx context.Context) error {
	err := st.undo.run(ctx)
	return errors.Join(err, st.group.Wait())
}

// Run starts ctstage and serves until ctx ends or a server stops on its
// own, then shuts down gracefully.
func Run(ctx context.Context, opts Options) error {
	st, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-st.Done():
	}
	st.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return st.Shutdown(sctx)
}

// loadConfig reads the config file, or takes the defaults without one.
// The rate limits are, first to last: Options.ACME.RateLimits when set
// (which --no-rate-limits sets to Disabled), the file's acme.rate_limits,
// the staging defaults. The resolver's records are Options.ACME.DNS when
// set, else the file's acme.dns, else every name at 127.0.0.1.
func (st *Stage) loadConfig(context.Context) error {
	if a := st.opts.CA.MgmtAddr; a != "" && !loopback.IsAddr(a) {
		return fmt.Errorf("--mgmt-addr %s: the management endpoint listens on loopback only", a)
	}
	if a := st.opts.ACME.DNSMgmtAddr; st.opts.ACME.Addr != "" && a != "" && !loopback.IsAddr(a) {
		return fmt.Errorf("--dns-mgmt-addr %s: the DNS management API listens on loopback only", a)
	}
	if a := st.opts.ACME.DNSAddr; st.opts.ACME.Addr != "" && a != "" && !loopback.IsAddr(a) {
		return fmt.Errorf("--dns-addr %s: the built-in DNS listens on loopback only (it answers with whatever the management API set)", a)
	}
	if err := st.checkRoles(); err != nil {
		return err
	}
	cfg, err := loadConfig(st.opts)
	st.cfg = cfg
	return err
}

// ifCA runs start only in a process with the ca role.
func (st *Stage) ifCA(start func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if !st.opts.Roles.orAll().CA {
			return nil
		}
		return start(ctx)
	}
}

// keysDir is where the shared keys live.
func (st *Stage) keysDir() string {
	if st.opts.KeysDir != "" {
		return st.opts.KeysDir
	}
	return st.opts.DataDir
}

func loadConfig(opts Options) (config.Config, error) {
	cfg := config.Default(opts.Now())
	if opts.ConfigFile != "" {
		var err error
		if cfg, err = config.Load(opts.ConfigFile, opts.Now()); err != nil {
			return config.Config{}, err
		}
	}
	if opts.ACME.RateLimits != nil {
		if err := opts.ACME.RateLimits.Validate(); err != nil {
			return config.Config{}, fmt.Errorf("invalid Options.ACME.RateLimits: %w", err)
		}
		cfg.RateLimits = *opts.ACME.RateLimits
	}
	if opts.ACME.DNS != nil {
		if err := opts.ACME.DNS.Validate(); err != nil {
			return config.Config{}, fmt.Errorf("invalid Options.ACME.DNS: %w", err)
		}
		cfg.DNS = *opts.ACME.DNS
	}
	return cfg, nil
}
