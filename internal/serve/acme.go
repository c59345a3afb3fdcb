package serve

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/ctstage/ctstage/dashboard"
	"path/filepath"
	"strings"

	"github.com/ctstage/ctstage/ca"
	acmestore "github.com/ctstage/ctstage/ca/acme/store"

	"github.com/ctstage/ctstage/ca/acme"
	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/ca/va"
	"github.com/ctstage/ctstage/internal/loopback"
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

// openACMEStore opens the ACME state on the storage handle: tables
// prefixed acme_ on its MySQL pool, or acme.db under the data directory.
func (st *Stage) openACMEStore(ctx context.Context) (acmeStore, error) {
	b := st.store.backend
	if b.Kind == "mysql" {
		s, err := acmestore.NewMySQL(ctx, b.DB)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}
	s, err := acmestore.OpenSQLite(ctx, b.Path(ACMEStoreFile))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// startACME serves ACME on Options.ACME.Addr (HTTPS, a certificate from
// the staging hierarchy), the built-in DNS on DNSAddr and its management
// API on DNSMgmtAddr. An empty Addr serves none of them.
func (st *Stage) startACME(ctx context.Context) error {
	opts := st.opts.ACME
	if opts.Addr == "" {
		return nil
	}
	zone := st.cfg.DNS.Zone() // acme.dns of the config file
	if opts.DNSAddr != "" {
		dns, err := va.ListenDNS(opts.DNSAddr, zone, st.log.With("component", "dns"))
		if err != nil {
			return fmt.Errorf("--dns-addr: %w", err)
		}
		st.undo.push("--dns-addr", func(context.Context) error { return dns.Close() })
		st.DNSAddr = dns.Addr()
	}
	if opts.DNSMgmtAddr != "" {
		addr, err := st.listenAndServe("--dns-mgmt-addr", opts.DNSMgmtAddr, loopback.Guard(va.MgmtHandler(zone)), nil)
		if err != nil {
			return err
		}
		st.DNSMgmtURL = "http://" + addr
	}
	srv, err := st.newACMEServer(ctx, zone)
	if err != nil {
		return err
	}
	cert, err := ca.ServingCertificate(st.Hierarchy, st.opts.Now())
	if err != nil {
		return err
	}
	addr, err := st.listenAndServe("--acme-addr", opts.Addr, srv.Handler(), &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	st.ACMEURL = "https://" + addr
	st.log.Info("ACME ready", "directory", st.ACMEURL+"/directory", "always_valid", opts.AlwaysValid,
		"dns", st.DNSAddr, "dns_mgmt", st.DNSMgmtURL, "eab_keys", len(st.cfg.EAB.Keys), "eab_required", st.cfg.EAB.Required, "va_http_port", opts.VAHTTPPort, "va_tls_port", opts.VATLSPort)
	return nil
}

func (st *Stage) newACMEServer(ctx context.Context, zone *va.Zone) (*acme.Server, error) {
	opts := st.opts.ACME
	store, err := st.openACMEStore(ctx)
	if err != nil {
		return nil, err
	}
	st.undo.push("ACME store", func(context.Context) error { return store.Close() })
	if o, ok := store.(dashboard.Orders); ok {
		st.dash.orders = o
	}
	// The alternate chains are the deployment's, like the hierarchy:
	// every ca process offers the same ones.
	unlock, err := st.store.backend.Lock(ctx, "acme chains")
	if err != nil {
		return nil, err
	}
	chains, err := acme.LoadOrCreateChains(filepath.Join(st.keysDir(), "acme"), st.Hierarchy)
	unlock()
	if err != nil {
		return nil, err
	}
	// On MySQL the nonces are the deployment's: any ca process redeems,
	// once, a nonce that another issued.
	var nonces acme.NonceStore
	if ns, ok := store.(acme.NonceStore); ok && st.store.backend.Kind == "mysql" {
		nonces = ns
	}
	limits := st.cfg.RateLimits
	if d := limits.Differences(); len(d) > 0 {
		st.log.Info("ACME rate limits differ from the staging defaults", "rate_limits", strings.Join(d, " "))
	}
	return acme.New(acme.Options{
		CA: st.CA, Hierarchy: st.Hierarchy, Chains: chains, Store: store,
		Validator: va.New(va.Options{Zone: zone, HTTPPort: opts.VAHTTPPort, TLSPort: opts.VATLSPort,
			DNSAddr: st.DNSAddr, CAAIdentities: []string{CAAIdentity}}),
		Limits: limits, LimitStore: store, AlwaysValid: opts.AlwaysValid, IssueTimeout: st.cfg.IssueTimeout,
		EABKeys: st.cfg.EAB.Keys, ExternalAccountRequired: st.cfg.EAB.Required,
		CAAIdentities: []string{CAAIdentity}, Website: "https://github.com/ctstage/ctstage",
		Logger: st.log.With("component", "acme"), Now: st.opts.Now, Registerer: st.reg,
		NonceStore: nonces, Unavailable: st.store.backend.Unavailable,
	})
}
