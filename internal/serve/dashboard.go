package serve

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/ctstage/ctstage/dashboard"
)

// dashboardParts is the dashboard's handler, mounted on the log address
// when the logs part serves it and set once the dashboard part is up.
type dashboardParts struct {
	handler atomic.Pointer[http.Handler]
	orders  dashboard.Orders // the ACME store, when this process serves ACME
}

// mountDashboard puts the dashboard's paths on mux; until the dashboard
// part is up they answer 503.
func (st *Stage) mountDashboard(mux *http.ServeMux) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := st.dash.handler.Load(); p != nil {
			(*p).ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Service Unavailable\nthe dashboard is starting", http.StatusServiceUnavailable)
	})
	for _, p := range dashboard.Paths {
		mux.Handle(p, h)
	}
}

// startDashboard builds the dashboard of a process with the log role:
// its index follows the shards of the process's log list (tree heads
// through their public API, RFC 6962 entries in the process).
func (st *Stage) startDashboard(context.Context) error {
	if st.Logs == nil || !st.opts.Roles.orAll().Log || st.opts.Logs.NoDashboard {
		return nil
	}
	d, err := dashboard.New(dashboard.Options{
		Logs:      st.Logs,
		Issuances: st.ca.store,
		Orders:    st.dash.orders,
		Issuers:   readCerts(append([]string{st.Hierarchy.ChainPEMPath()}, st.logs.roots...)),
		Logger:    st.log.With("component", "dashboard"),
		Now:       st.opts.Now,
	})
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	st.undo.push("dashboard", func(context.Context) error { stop(); <-done; return nil })
	h := d.Handler()
	st.dash.handler.Store(&h)
	return nil
}

// readCerts reads every certificate of the PEM files, skipping what does
// not parse: they are candidate issuers, not trust.
func readCerts(paths []string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil && blk.Type == "CERTIFICATE" {
				out = append(out, c)
			}
		}
	}
	return out
}
