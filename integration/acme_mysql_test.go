package integration

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"

	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage"
)

// TestACMEMySQL runs a lego flow on --storage mysql://... (MariaDB in CI)
// and restarts: the account, the certificate and its revocation are kept
// in the acme_ tables of the logs' database, and nothing in acme.db.
func TestACMEMySQL(t *testing.T) {
	spec := testenv.MySQL(t)
	dir := t.TempDir()
	s := startACMEStage(t, func(o *serve.Options) { o.DataDir, o.Storage = dir, spec })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, u := s.legoClient(t)
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(s.httpPort))); err != nil {
		t.Fatal(err)
	}
	res := obtain(t, c, certificate.ObtainRequest{Domains: []string{"mysql.example.com"}, Bundle: true})
	s.checkSCTs(t, res.Certificate)
	if err := c.Certificate.Revoke(ctx, res.Certificate); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s.Stage = nil
	if _, err := os.Stat(filepath.Join(dir, serve.ACMEStoreFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--data/%s exists with --storage mysql (%v)", serve.ACMEStoreFile, err)
	}
	db := openStorageDB(t, spec)
	for table, min := range map[string]int{"acme_accounts": 1, "acme_orders": 1, "acme_authzs": 1, "acme_certificates": 1,
		"acme_ratelimit_events": 3, "acme_schema": 1, "Trees": 1} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n < min {
			t.Errorf("%s: %d rows (%v), want at least %d", table, n, err, min)
		}
	}

	c2 := s.restart(t, ctx, dir, spec, u.key)
	acct, err := c2.Registration.ResolveAccountByKey(ctx)
	if err != nil || acct.Status != "valid" {
		t.Fatalf("account after restart: %v, %v", acct, err)
	}
	leaf := parsePEMChain(t, string(res.Certificate))[0]
	ri, err := c2.Certificate.GetRenewalInfo(ctx, toStdCert(t, leaf))
	if err != nil {
		t.Fatalf("GetRenewalInfo after restart: %v", err)
	}
	if !ri.SuggestedWindow.End.Before(time.Now()) {
		t.Errorf("ARI window %v after restart: the revocation was lost", ri.SuggestedWindow)
	}
	if err := c2.Certificate.Revoke(ctx, res.Certificate); err == nil {
		t.Errorf("second Revoke after restart succeeded, want alreadyRevoked")
	}
}

// openStorageDB opens the MySQL database of a --storage mysql:// spec, to
// look at what ctstage wrote there; it is closed when the test ends.
func openStorageDB(t *testing.T, spec string) *sql.DB {
	t.Helper()
	dsn, err := storage.MySQLDSN(spec)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
