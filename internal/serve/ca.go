package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ctpolicy"
	castore "github.com/ctstage/ctstage/ca/store"
	"github.com/ctstage/ctstage/internal/logging"
	"github.com/ctstage/ctstage/storage"
)

// startCA builds the CA once the logs serve: the log list (the running
// logs' own, or opts.LogList), the issuance store, the CA, and the
// management endpoint. /healthz answers 200 only after it returns nil.
func (st *Stage) startCA(ctx context.Context, opts Options, reg prometheus.Registerer) error {
	hc := ctpolicy.NewHTTPClient()
	var ll *loglist3.LogList
	var err error
	if opts.LogList == "" {
		ll = st.Logs.LogList()
	} else if ll, err = ctpolicy.LoadList(ctx, opts.LogList, hc); err != nil {
		return fmt.Errorf("--log-list: %w", err)
	}
	logs, err := ctpolicy.LogsFromList(ll, hc)
	if err != nil {
		return fmt.Errorf("couldn't use the log list: %w", err)
	}
	sub, err := ctpolicy.NewSubmitter(ctpolicy.Options{Logs: logs, Registerer: reg, Logger: st.log.With("component", "ctpolicy")})
	if err != nil {
		return err
	}
	if st.caStore, err = st.openCAStore(ctx, opts); err != nil {
		return err
	}
	st.CA, err = ca.New(ca.Options{
		Hierarchy:   st.Hierarchy,
		Submitter:   sub,
		Store:       st.caStore,
		BaseURL:     st.LogURL + "/ca",
		SubmitFinal: !opts.NoFinalSubmission,
		Registerer:  reg,
		Logger:      st.log.With("component", "ca"),
		Now:         opts.Now,
	})
	if err != nil {
		return err
	}
	st.caHandler = st.CA.Handler()
	if err := st.startMgmt(opts.MgmtAddr); err != nil {
		return err
	}
	st.caReady.Store(true)
	st.log.Info("CA ready", "logs", len(logs), "log_list", logListName(opts.LogList), "mgmt", st.MgmtURL)
	return nil
}

// openCAStore opens the CA's records where --storage says: tables
// prefixed ca_ in the MySQL database of mysql://..., or ca.db under the
// data directory. With MySQL, a ca.db left by a version that kept the
// records there in every case is imported first, then renamed.
func (st *Stage) openCAStore(ctx context.Context, opts Options) (castore.Store, error) {
	path := filepath.Join(opts.DataDir, CAStoreFile)
	if !strings.HasPrefix(opts.Storage, "mysql://") {
		s, err := castore.OpenSQLite(ctx, path)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}
	dsn, err := storage.MySQLDSN(opts.Storage)
	if err != nil {
		return nil, err
	}
	s, err := castore.OpenMySQL(ctx, dsn)
	if err != nil {
		return nil, err
	}
	n, err := castore.ImportSQLite(ctx, path, s)
	if err != nil {
		s.Close()
		return nil, err
	}
	if n > 0 {
		st.log.Info("imported the CA's records into MySQL", "records", n, "from", path, "renamed_to", path+castore.ImportedSuffix)
	}
	return s, nil
}

func logListName(s string) string {
	if s == "" {
		return "built-in"
	}
	return s
}

// startMgmt serves the management endpoint on a loopback listener.
func (st *Stage) startMgmt(addr string) error {
	if addr == "" {
		return nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("couldn't listen on --mgmt-addr: %w", err)
	}
	st.MgmtURL = "http://" + lis.Addr().String()
	st.mgmt = &http.Server{
		Handler:           logging.Requests(st.log, st.CA.MgmtHandler()),
		ReadHeaderTimeout: 10 * time.Second,
	}
	st.mgmtErr = make(chan error, 1)
	go func() {
		if err := st.mgmt.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			st.mgmtErr <- err
		}
		close(st.mgmtErr)
	}()
	return nil
}

func (st *Stage) mgmtErrs() <-chan error { return st.mgmtErr }

// serveHealth answers 200 once the CA is ready and every shard answers.
func (st *Stage) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !st.caReady.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "not ready: CA starting", http.StatusServiceUnavailable)
		return
	}
	st.Logs.Handler().ServeHTTP(w, r)
}

// serveCA serves the CA's issuer certificates and CRLs once it exists.
func (st *Stage) serveCA(w http.ResponseWriter, r *http.Request) {
	if !st.caReady.Load() {
		http.Error(w, "CA starting", http.StatusServiceUnavailable)
		return
	}
	st.caHandler.ServeHTTP(w, r)
}
