package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/ctstage/ctstage/ctlog/tiled"
)

// TestRunAgainstTiledLog loads a real tiled log (package ctlog/tiled, in
// this process, over HTTP): every SCT is checked for its leaf_index
// against the signed checkpoint and proven from the tiles, and the CPU of
// this process (the server's) is measured.
func TestRunAgainstTiledLog(t *testing.T) {
	tca := newTestCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	l, err := tiled.New(t.Context(), tiled.Options{
		Origin: srv.Listener.Addr().String() + "/tiled", Dir: t.TempDir(), Key: key, Roots: [][]byte{tca.root.Raw},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/tiled/", http.StripPrefix("/tiled", l.Handler()))
	srv.Config.Handler = mux
	srv.Start()
	defer srv.Close()

	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	cfg := *tca.config(time.Now().AddDate(0, 0, 90))
	cfg.LogURL, cfg.MonitoringURL, cfg.LogPublicKey = srv.URL+"/tiled/", srv.URL+"/tiled/", pub
	cfg.Clients, cfg.Total, cfg.ServerPID, cfg.ServerIdle = 16, 300, os.Getpid(), 200*time.Millisecond
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", res)
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"accepted", res.Accepted, 300},
		{"integrated", res.Integrated, 300},
		{"proven from tiles", res.InclusionProven, 300},
		{"SCTs verified", res.SCTsVerified, 300},
		{"failed", res.Failed, 0},
		{"end tree size", int(res.EndSize), 300},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if !res.Tiled || res.ServerCPU <= 0 || res.ServerCPUPerAccepted <= 0 || !res.OK() {
		t.Errorf("tiled %v, server CPU %v (%v per accepted), OK %v", res.Tiled, res.ServerCPU, res.ServerCPUPerAccepted, res.OK())
	}
}
