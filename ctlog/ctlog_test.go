package ctlog_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	tstorage "github.com/google/trillian/storage"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/internal/config"
	"github.com/ctstage/ctstage/internal/logging"
	"github.com/ctstage/ctstage/internal/testsupport/testca"
	"github.com/ctstage/ctstage/storage"
)

func TestMain(m *testing.M) {
	logging.RouteKlog(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// testLog is a ctlog.Server on SQLite in a temporary directory, served by
// httptest, with one shard "test" that accepts the testca root.
type testLog struct {
	srv  *ctlog.Server
	http *httptest.Server
	ca   *testca.CA
	reg  *prometheus.Registry
}

func newTestLog(tb testing.TB, cfg ctlog.Config) *testLog {
	tb.Helper()
	return newTestLogWith(tb, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newTestLogWith is newTestLog with the log storage wrapped by wrap (when
// not nil) and the server's logs sent to logger.
func newTestLogWith(tb testing.TB, cfg ctlog.Config, wrap func(tstorage.LogStorage) tstorage.LogStorage, logger *slog.Logger) *testLog {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	ca, err := testca.New("ctlog test")
	if err != nil {
		tb.Fatal(err)
	}
	root, err := ca.WriteRoot(dir)
	if err != nil {
		tb.Fatal(err)
	}
	store, err := storage.Open(ctx, "sqlite", dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	logStorage := store.Log
	if wrap != nil {
		logStorage = wrap(logStorage)
	}
	hs := httptest.NewUnstartedServer(nil)
	reg := prometheus.NewRegistry()
	srv, err := ctlog.New(ctx, ctlog.Options{
		DataDir:      dir,
		Config:       cfg,
		LogStorage:   logStorage,
		AdminStorage: store.Admin,
		RootFiles:    []string{root},
		BaseURL:      "http://" + hs.Listener.Addr().String(),
		Logger:       logger,
		Registerer:   reg,
	})
	if err != nil {
		tb.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- srv.Run(runCtx) }()
	tb.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
		srv.Close()
		store.Close()
	})
	return &testLog{srv: srv, http: hs, ca: ca, reg: reg}
}

// parseConfig parses a YAML config for a test.
func parseConfig(tb testing.TB, yaml string) ctlog.Config {
	tb.Helper()
	cfg, err := config.Parse([]byte(yaml), time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return cfg.Logs
}

// oneShard is a config with a single shard "test" that takes any NotAfter
// and answers at most 3 entries per get-entries.
const oneShard = `
logs:
  operators:
  - name: Test Operator
    shards:
    - name: test
      max_get_entries: 3
`

func (l *testLog) post(tb testing.TB, path, body string) (int, string) {
	tb.Helper()
	rsp, err := http.Post(l.http.URL+"/test/ct/v1/"+path, "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return rsp.StatusCode, string(b)
}

func (l *testLog) get(tb testing.TB, path string) (int, string) {
	tb.Helper()
	rsp, err := http.Get(l.http.URL + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return rsp.StatusCode, string(b)
}

func chainJSON(chain [][]byte) string {
	var req struct {
		Chain [][]byte `json:"chain"`
	}
	req.Chain = chain
	b, _ := json.Marshal(req)
	return string(b)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestNilRegisterer: a server given no Registerer registers nothing, on
// the global registry least of all, and still serves.
func TestNilRegisterer(t *testing.T) {
	before, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	ca, err := testca.New("nil registerer")
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.WriteRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.Open(ctx, "sqlite", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := ctlog.New(ctx, ctlog.Options{
		DataDir: dir, Config: parseConfig(t, ""), LogStorage: store.Log, AdminStorage: store.Admin,
		RootFiles: []string{root}, BaseURL: "http://127.0.0.1:1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
	after, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		var names []string
		for _, f := range after {
			names = append(names, f.GetName())
		}
		t.Errorf("the global registry went from %d to %d metric families: %v", len(before), len(after), names)
	}
}
