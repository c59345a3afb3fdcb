package serve

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/certificate-transparency-go/x509util"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/storage"
)

// storageParts is the one storage handle every store opens from.
type storageParts struct {
	backend *storage.Backend
}

// logParts are the log server and the roots its shards accept.
type logParts struct {
	roots []string
}

// openDataDir creates the data directory and takes its lock, so that two
// processes never write the same databases and keys.
func (st *Stage) openDataDir(context.Context) error {
	dir := st.opts.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("couldn't create data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data directory %s is in use by another ctstage (%w)", dir, err)
	}
	st.undo.push("data directory lock", func(context.Context) error { return f.Close() })
	return nil
}

// openHierarchy loads the staging CA hierarchy from --keys (default
// --data), or creates it on a first start under the storage's lock, so
// that every process of a deployment reads the same one; and it checks
// --extra-roots.
func (st *Stage) openHierarchy(ctx context.Context) error {
	unlock, err := st.store.backend.Lock(ctx, "hierarchy")
	if err != nil {
		return err
	}
	h, err := ca.LoadOrCreateHierarchy(filepath.Join(st.keysDir(), "ca"), st.opts.Now())
	unlock()
	if err != nil {
		return err
	}
	st.Hierarchy = h
	st.logs.roots = []string{h.RootsPEMPath()}
	if extra := st.opts.Logs.ExtraRoots; extra != "" {
		if err := checkRoots(extra); err != nil {
			return err
		}
		st.logs.roots = append(st.logs.roots, extra)
	}
	return nil
}

// openStorage parses --storage and opens the one handle that the logs,
// the CA's store and the ACME store use.
func (st *Stage) openStorage(ctx context.Context) error {
	st.reg = prometheus.NewRegistry()
	st.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b, err := storage.Open(ctx, st.opts.Storage, st.opts.DataDir, ctlog.NewMetricFactory(st.reg, "ctstage_storage_"))
	if err != nil {
		return err
	}
	st.store.backend = b
	st.undo.push("storage", func(context.Context) error { return b.Close() })
	if b.DB != nil {
		// Every role's /healthz says when the shared database is gone.
		st.ready.add("storage", func(ctx context.Context) error {
			if err := b.DB.PingContext(ctx); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			return nil
		})
	}
	return nil
}

// startLogs builds the shards on Trillian, writes the log list, serves the
// log address and starts the sequencers. The log address is served by
// every role: /healthz, /metrics and the CA's /ca/ files everywhere, the
// shards' APIs and the log list with the log role.
func (st *Stage) startLogs(ctx context.Context) error {
	lis, err := st.listen("--log-addr", st.opts.Logs.Addr)
	if err != nil {
		return err
	}
	st.LogURL = "http://" + lis.Addr().String()
	if u := st.opts.Logs.PublicURL; u != "" {
		st.LogURL = strings.TrimRight(u, "/")
	}
	roles := st.opts.Roles.orAll()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(st.reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", &st.ready)
	// Liveness, not readiness: the process serves. An orchestrator that
	// restarted processes on /healthz would restart every frontend when
	// the database or the sequencers are away, which no restart fixes.
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("/ca/", http.StripPrefix("/ca", http.HandlerFunc(st.serveCA)))
	if !roles.Log && !roles.Sequencer {
		st.serveOn("--log-addr", lis, mux, nil)
		return nil
	}
	if err := st.buildLogs(ctx, roles); err != nil {
		lis.Close()
		return err
	}
	if roles.Log {
		mux.Handle("/", st.Logs.Handler())
		if !st.opts.Logs.NoDashboard {
			st.mountDashboard(mux)
		}
	}
	st.serveOn("--log-addr", lis, mux, nil)
	return nil
}

// buildLogs starts the log server with the process's roles: the
// frontends, and the sequencers (elected with --election).
func (st *Stage) buildLogs(ctx context.Context, roles Roles) error {
	el, err := st.openElection(ctx)
	if err != nil {
		return err
	}
	b := st.store.backend
	var tiledDB func(context.Context, string) (*sql.DB, error)
	if b.Kind == "mysql" {
		tiledDB = b.Database
	}
	opts := ctlog.Options{
		TiledDB:      tiledDB,
		DataDir:      st.opts.DataDir,
		KeysDir:      st.keysDir(),
		Role:         roles.logRole(),
		Lock:         b.Lock,
		Config:       st.cfg.Logs,
		LogStorage:   b.Log,
		AdminStorage: b.Admin,
		RootFiles:    st.logs.roots,
		BaseURL:      st.LogURL,
		Logger:       st.log,
		Registerer:   st.reg,
		Unavailable:  b.Unavailable,
	}
	if el != nil {
		opts.Election = el
	}
	st.Logs, err = ctlog.New(ctx, opts)
	if err != nil {
		return err
	}
	// Popped after the log server's shutdown and the sequencers' stop.
	st.undo.push("logs", func(context.Context) error { st.Logs.Close(); return nil })
	listPath := filepath.Join(st.opts.DataDir, LogListFile)
	if err := st.Logs.WriteLogList(listPath); err != nil {
		return err
	}
	st.Logs.OnChange(func() {
		if err := st.Logs.WriteLogList(listPath); err != nil {
			st.log.Warn("couldn't write the changed log list", "path", listPath, "err", err)
		}
	})
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	st.group.Go(func() error {
		defer close(runDone)
		return st.Logs.Run(runCtx)
	})
	st.undo.push("sequencers", func(context.Context) error { stopRun(); <-runDone; return nil })
	st.ready.add("logs", st.Logs.Ready)
	return nil
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
