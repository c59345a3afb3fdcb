package serve

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ctpolicy"
	castore "github.com/ctstage/ctstage/ca/store"
)

// caParts are the CA's store and the handler of its files under /ca/.
type caParts struct {
	store   castore.Store
	handler atomic.Pointer[http.Handler]
}

// startCA builds the CA once the logs serve: the log list (the running
// logs' own, or Options.CA.LogList), the issuance store, the CA, and the
// management endpoint.
func (st *Stage) startCA(ctx context.Context) error {
	opts := st.opts.CA
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
	sub, err := ctpolicy.NewSubmitter(ctpolicy.Options{Logs: logs, Registerer: st.reg, Logger: st.log.With("component", "ctpolicy")})
	if err != nil {
		return err
	}
	if st.ca.store, err = st.openCAStore(ctx); err != nil {
		return err
	}
	st.undo.push("CA store", func(context.Context) error { return st.ca.store.Close() })
	st.CA, err = ca.New(ca.Options{
		Hierarchy:   st.Hierarchy,
		Submitter:   sub,
		Store:       st.ca.store,
		BaseURL:     st.LogURL + "/ca",
		SubmitFinal: !opts.NoFinalSubmission,
		Registerer:  st.reg,
		Logger:      st.log.With("component", "ca"),
		Now:         st.opts.Now,
	})
	if err != nil {
		return err
	}
	// The CA's close waits for its final-certificate submissions, so it
	// is popped before the log server stops.
	st.undo.push("CA", st.CA.Close)
	h := st.CA.Handler()
	st.ca.handler.Store(&h)
	if opts.LogList == "" {
		// The CA follows its own logs' states and faults at once: a log
		// that turns readonly is not submitted to from the next issuance.
		st.Logs.OnChange(func() {
			logs, err := ctpolicy.LogsFromList(st.Logs.LogList(), hc)
			if err != nil {
				st.log.Error("couldn't use the changed log list", "err", err)
				return
			}
			sub.SetLogs(logs)
		})
	} else if every := cmp.Or(opts.LogListRefresh, time.Minute); every > 0 {
		bg, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			st.followLogList(bg, opts.LogList, every, ll, hc, sub)
		}()
		st.undo.push("log list refresh", func(context.Context) error { cancel(); <-done; return nil })
	}
	if opts.MgmtAddr != "" {
		// One management address: the log-state and fault API under
		// /logs, the CA's /issue beside it, both behind loopback.Guard.
		mux := http.NewServeMux()
		if st.Logs != nil {
			mux.Handle("/logs", st.Logs.MgmtHandler())
			mux.Handle("/logs/", st.Logs.MgmtHandler())
		}
		mux.Handle("/", st.CA.MgmtHandler())
		addr, err := st.listenAndServe("--mgmt-addr", opts.MgmtAddr, mux, nil)
		if err != nil {
			return err
		}
		st.MgmtURL = "http://" + addr
	}
	st.log.Info("CA ready", "logs", len(logs), "log_list", logListName(opts.LogList), "mgmt", st.MgmtURL)
	return nil
}

// openCAStore opens the CA's records on the storage handle: tables
// prefixed ca_ on its MySQL pool, or ca.db under the data directory. With MySQL, a ca.db left by a version that kept the
// records there in every case is imported first, then renamed.
func (st *Stage) openCAStore(ctx context.Context) (castore.Store, error) {
	b := st.store.backend
	path := b.Path(CAStoreFile)
	if b.Kind != "mysql" {
		s, err := castore.OpenSQLite(ctx, path)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}
	s, err := castore.NewMySQL(ctx, b.DB)
	if err != nil {
		return nil, err
	}
	n, err := castore.ImportSQLite(ctx, path, s)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		st.log.Info("imported the CA's records into MySQL", "records", n, "from", path, "renamed_to", path+castore.ImportedSuffix)
	}
	return s, nil
}

// followLogList reads the CA's log list again every period until ctx
// ends, and gives the submitter the logs of a list that changed. A list
// that cannot be read or used is logged and the logs kept.
func (st *Stage) followLogList(ctx context.Context, src string, every time.Duration, cur *loglist3.LogList, hc *http.Client, sub *ctpolicy.Submitter) {
	last, _ := json.Marshal(cur)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ll, err := ctpolicy.LoadList(rctx, src, hc)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				st.log.Warn("couldn't read the CA's log list again; keeping the logs it has", "log_list", src, "err", err)
			}
			continue
		}
		b, _ := json.Marshal(ll)
		if bytes.Equal(b, last) {
			continue
		}
		logs, err := ctpolicy.LogsFromList(ll, hc)
		if err != nil {
			st.log.Warn("couldn't use the changed log list; keeping the logs it has", "log_list", src, "err", err)
			continue
		}
		sub.SetLogs(logs)
		last = b
		st.log.Info("the CA's log list changed", "log_list", src, "logs", len(logs))
	}
}

func logListName(s string) string {
	if s == "" {
		return "built-in"
	}
	return s
}

// serveCA serves the CA's issuer certificates and CRLs once it exists.
func (st *Stage) serveCA(w http.ResponseWriter, r *http.Request) {
	h := st.ca.handler.Load()
	if h == nil {
		http.Error(w, "CA starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}
