package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/acme"
	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/ca/va"
	"github.com/ctstage/ctstage/internal/logging"
	"github.com/ctstage/ctstage/storage"
)

// ACMEStoreFile is the ACME database under the data directory.
const ACMEStoreFile = "acme.db"

// CAAIdentity is the issuer domain name CAA records name to allow ctstage.
const CAAIdentity = "ctstage.invalid"

// acmeStore keeps the ACME state and the rate-limit events.
type acmeStore interface {
	acme.Store
	ratelimit.Store
}

// openACMEStore opens the ACME state where --storage says: tables
// prefixed acme_ in the MySQL database of mysql://..., or acme.db under
// the data directory.
func openACMEStore(ctx context.Context, opts Options) (acmeStore, error) {
	if strings.HasPrefix(opts.Storage, "mysql://") {
		dsn, err := storage.MySQLDSN(opts.Storage)
		if err != nil {
			return nil, err
		}
		s, err := acme.OpenMySQL(ctx, dsn)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}
	s, err := acme.OpenSQLite(ctx, filepath.Join(opts.DataDir, ACMEStoreFile))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// acmeParts are the ACME server, the built-in DNS and their listeners.
type acmeParts struct {
	store   acmeStore
	dns     *va.DNSServer
	servers []*http.Server
	errs    chan error
	// starting is set while ACME is to be served but does not listen yet:
	// /healthz answers 503 until then.
	starting atomic.Bool
}

// serveHealthACME is /healthz: 503 while the ACME server is starting, then
// the logs' and the CA's health.
func (st *Stage) serveHealthACME(w http.ResponseWriter, r *http.Request) {
	if st.acme.starting.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "not ready: ACME starting", http.StatusServiceUnavailable)
		return
	}
	st.serveHealth(w, r)
}

// startServices starts the CA, then the ACME server and the built-in DNS.
func (st *Stage) startServices(ctx context.Context, opts Options, reg prometheus.Registerer) error {
	if err := st.startCA(ctx, opts, reg); err != nil {
		return err
	}
	return st.startACME(ctx, opts, reg)
}

// startACME serves ACME on opts.ACMEAddr (HTTPS, a certificate from the
// staging hierarchy), the built-in DNS on opts.DNSAddr and its management
// API on opts.DNSMgmtAddr. An empty ACMEAddr serves none of them.
func (st *Stage) startACME(ctx context.Context, opts Options, reg prometheus.Registerer) error {
	if opts.ACMEAddr == "" {
		return nil
	}
	if opts.DNSMgmtAddr != "" && !ca.IsLoopbackAddr(opts.DNSMgmtAddr) {
		return fmt.Errorf("--dns-mgmt-addr %s: the DNS management API listens on loopback only", opts.DNSMgmtAddr)
	}
	p := &st.acme
	p.errs = make(chan error, 3)
	zone := st.cfg.DNS.Zone() // acme.dns of the config file
	var err error
	if opts.DNSAddr != "" {
		if p.dns, err = va.ListenDNS(opts.DNSAddr, zone, st.log.With("component", "dns")); err != nil {
			return fmt.Errorf("--dns-addr: %w", err)
		}
		st.DNSAddr = p.dns.Addr()
	}
	if opts.DNSMgmtAddr != "" {
		url, err := p.serve(opts.DNSMgmtAddr, ca.LoopbackOnly(va.MgmtHandler(zone)), nil, st)
		if err != nil {
			return fmt.Errorf("--dns-mgmt-addr: %w", err)
		}
		st.DNSMgmtURL = "http://" + url
	}
	srv, err := st.newACMEServer(ctx, opts, zone, reg)
	if err != nil {
		return err
	}
	cert, err := acme.ServingCertificate(st.Hierarchy, opts.Now())
	if err != nil {
		return err
	}
	addr, err := p.serve(opts.ACMEAddr, srv.Handler(), &tls.Config{Certificates: []tls.Certificate{cert}}, st)
	if err != nil {
		return fmt.Errorf("--acme-addr: %w", err)
	}
	st.ACMEURL = "https://" + addr
	p.starting.Store(false)
	st.log.Info("ACME ready", "directory", st.ACMEURL+"/directory", "always_valid", opts.ACMEAlwaysValid,
		"dns", st.DNSAddr, "dns_mgmt", st.DNSMgmtURL, "va_http_port", opts.VAHTTPPort, "va_tls_port", opts.VATLSPort)
	return nil
}

func (st *Stage) newACMEServer(ctx context.Context, opts Options, zone *va.Zone, reg prometheus.Registerer) (*acme.Server, error) {
	p := &st.acme
	var err error
	if p.store, err = openACMEStore(ctx, opts); err != nil {
		return nil, err
	}
	chains, err := acme.LoadOrCreateChains(filepath.Join(opts.DataDir, "acme"), st.Hierarchy)
	if err != nil {
		return nil, err
	}
	limits := st.cfg.RateLimits
	if d := limits.Differences(); len(d) > 0 {
		st.log.Info("ACME rate limits differ from the staging defaults", "rate_limits", strings.Join(d, " "))
	}
	return acme.New(acme.Options{
		CA: st.CA, Hierarchy: st.Hierarchy, Chains: chains, Store: p.store,
		Validator: va.New(va.Options{Zone: zone, HTTPPort: opts.VAHTTPPort, TLSPort: opts.VATLSPort,
			DNSAddr: st.DNSAddr, CAAIdentities: []string{CAAIdentity}}),
		Limits: limits, LimitStore: p.store, AlwaysValid: opts.ACMEAlwaysValid, IssueTimeout: st.cfg.IssueTimeout,
		CAAIdentities: []string{CAAIdentity}, Website: "https://github.com/ctstage/ctstage",
		Logger: st.log.With("component", "acme"), Now: opts.Now, Registerer: reg,
	})
}

// serve listens on addr and serves h (with TLS when cfg is set); it
// returns the address listened on.
func (p *acmeParts) serve(addr string, h http.Handler, cfg *tls.Config, st *Stage) (string, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	s := &http.Server{Handler: logging.Requests(st.log, h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if cfg != nil {
		lis = tls.NewListener(lis, cfg)
	}
	p.servers = append(p.servers, s)
	go func() {
		if err := s.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			p.errs <- err
		}
	}()
	return lis.Addr().String(), nil
}

// stopACME stops the ACME and DNS servers and closes the ACME store.
func (st *Stage) stopACME(ctx context.Context) error {
	p := &st.acme
	var err error
	for _, s := range p.servers {
		err = errors.Join(err, s.Shutdown(ctx))
	}
	if p.dns != nil {
		err = errors.Join(err, p.dns.Close())
	}
	if p.store != nil {
		err = errors.Join(err, p.store.Close())
	}
	p.store, p.dns, p.servers, p.errs = nil, nil, nil, nil
	return err
}

func (st *Stage) acmeErrs() <-chan error { return st.acme.errs }
