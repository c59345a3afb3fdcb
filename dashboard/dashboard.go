// Package dashboard serves ctstage's HTML pages at / on the log address:
// the shards with their states, sizes, growth, merge delays and faults; a
// shard's entries, paged; a search by name, serial or SHA-256 across all
// shards; a certificate with its chain, SCTs, inclusion proofs, the three
// browsers' verdicts and its timeline; the CA's issuances; and the faults,
// with controls to set and clear them from loopback.
//
// The pages are html/template, rendered on the server, with a small
// stylesheet of their own and no JavaScript: every page works in any browser and on a
// narrow screen. Charts are SVG drawn on the server from samples the
// index keeps for the last hour. The index is built asynchronously from
// what the logs integrated (tree heads through the public APIs with the
// monitor's readers, which check their signatures; RFC 6962 entries in
// the process when Logs can read them, tiled entries from the tiles), so
// that no submission waits for it.
package dashboard

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	acmestore "github.com/ctstage/ctstage/ca/acme/store"
	"github.com/ctstage/ctstage/ca/store"
	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/sctverify"
)

// Logs is what the dashboard needs of the log server (ctlog.Server).
type Logs interface {
	// LogList is the v3 log list the server publishes.
	LogList() *loglist3.LogList
	// Shards describes every shard: type, operator, state and faults.
	Shards() []ctlog.LogInfo
	// AddFault, ClearFaults and SetState are the fault and state API
	// (docs/faults.md).
	AddFault(shard string, body []byte) (ctlog.LogInfo, error)
	ClearFaults(shard string) (ctlog.LogInfo, error)
	SetState(shard string, req ctlog.StateRequest) (ctlog.LogInfo, error)
	// Submissions counts the add-chain and add-pre-chain requests this
	// process received for a shard.
	Submissions(shard string) uint64
}

// Orders is what the CA page reads of the ACME server's store.
type Orders interface {
	RecentOrderIDs(ctx context.Context, limit int) ([]string, error)
	Order(ctx context.Context, id string) (*acmestore.Order, error)
}

// Options configure a Dashboard.
type Options struct {
	// Logs is the log server; required.
	Logs Logs
	// Issuances is the CA's store, for the CA page and the final
	// certificates of precertificates; nil when this process has no CA.
	Issuances store.Store
	// Orders is the ACME server's store, for its recent orders; nil when
	// this process serves no ACME.
	Orders Orders
	// Issuers are certificates among which a logged certificate's issuer
	// is looked for (the staging intermediates and roots, the extra
	// roots), to verify its SCTs.
	Issuers []*x509.Certificate
	// HTTPClient reads the logs through their public API (loopback).
	// Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Poll is how often the index reads the logs. Default 1 s.
	Poll time.Duration
	// Logger receives the dashboard's messages. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Dashboard serves the pages.
type Dashboard struct {
	opts  Options
	index *index
	tmpl  *template.Template
	csrf  []byte
}

//go:embed templates/*.html
var templateFS embed.FS

var errNotIndexed = errors.New("not indexed yet")

// New sets up the dashboard; call Run to build its index.
func New(opts Options) (*Dashboard, error) {
	if opts.Logs == nil {
		return nil, errors.New("dashboard: no logs")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{opts: opts, index: newIndex(opts.Logger, opts.HTTPClient), tmpl: t, csrf: newCSRFKey()}
	d.index.submissions = opts.Logs.Submissions
	if r, ok := opts.Logs.(interface {
		ReadEntries(ctx context.Context, shard string, start, end uint64, fn func(index uint64, leafInput, extraData []byte) error) error
	}); ok {
		d.index.direct = r.ReadEntries
	}
	d.syncLogs()
	return d, nil
}

// syncLogs makes the index follow every log of the current log list.
func (d *Dashboard) syncLogs() {
	raw, err := jsonLogList(d.opts.Logs.LogList())
	if err != nil {
		d.opts.Logger.Warn("dashboard: log list", "err", err)
		return
	}
	ll, err := sctverify.ParseLogList(raw)
	if err != nil {
		d.opts.Logger.Warn("dashboard: log list", "err", err)
		return
	}
	logs := map[string]*sctverify.Log{}
	var order []string
	for _, info := range d.opts.Logs.Shards() {
		id, err := logID(info.LogID)
		if err != nil {
			continue
		}
		if l := ll.Lookup(id); l != nil {
			logs[info.Shard] = l
			order = append(order, info.Shard)
		}
	}
	d.index.setLogs(logs, order)
}

// Run builds the index until ctx ends.
func (d *Dashboard) Run(ctx context.Context) {
	t := time.NewTicker(d.opts.Poll)
	defer t.Stop()
	for {
		d.index.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Handler serves the pages: GET / (overview), /search?q=, /shard/{name},
// /cert/{sha256}, /issuances, and /faults (GET, and POST from loopback).
// Mount it on those paths of the log address.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.serveOverview)
	mux.HandleFunc("GET /search", d.serveSearch)
	mux.HandleFunc("GET /shard/{name}", d.serveShard)
	mux.HandleFunc("GET /cert/{sha}", d.serveCert)
	mux.HandleFunc("GET /issuances", d.serveIssuances)
	mux.HandleFunc("GET /faults", d.serveFaults)
	mux.HandleFunc("POST /faults", d.postFaults)
	mux.HandleFunc("GET /style.css", serveStyle)
	return securityHeaders(mux)
}

// Paths are the patterns Handler serves, for the caller's mux.
var Paths = []string{"GET /{$}", "GET /search", "GET /shard/", "GET /cert/", "GET /issuances", "/faults", "GET /style.css"}

// securityHeaders: no framing, no sniffing, nothing but the page's own
// stylesheet and images.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}
