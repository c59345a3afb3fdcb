package integration

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"

	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// TestACMERevocationInCRL obtains a certificate with lego, revokes it for
// keyCompromise, and finds its serial with that reason in the CRL at the
// certificate's own CRL distribution point, signed by its intermediate;
// then again after a restart, under a higher CRL number. On each storage:
// with MySQL, the CA's record is in the ca_ tables and no ca.db exists.
func TestACMERevocationInCRL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		storage func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "sqlite" }},
		{"mysql", func(t *testing.T) string { return testenv.MySQL(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, dir := tc.storage(t), t.TempDir()
			// A fixed log address, so that the CRL URL in the certificate
			// still points at ctstage after the restart.
			logAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			s := startACMEStage(t, func(o *serve.Options) { o.DataDir, o.Storage, o.Logs.Addr = dir, spec, logAddr })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c, _ := s.legoClient(t)
			if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(s.httpPort))); err != nil {
				t.Fatal(err)
			}
			res := obtain(t, c, certificate.ObtainRequest{Domains: []string{"crl.example.com"}, Bundle: true})
			chain := parsePEMChain(t, string(res.Certificate))
			leaf, issuer := toStdCert(t, chain[0]), toStdCert(t, chain[1])
			if len(leaf.CRLDistributionPoints) != 1 {
				t.Fatalf("certificate has CRL distribution points %q, want one", leaf.CRLDistributionPoints)
			}
			before := fetchCRLEntry(t, leaf, issuer, -1)
			reason := acme.CRLReasonKeyCompromise
			if err := c.Certificate.RevokeWithReason(ctx, res.Certificate, &reason); err != nil {
				t.Fatalf("RevokeWithReason: %v", err)
			}
			after := fetchCRLEntry(t, leaf, issuer, 1)
			if after.Cmp(before) <= 0 {
				t.Errorf("CRL number %v after the revocation, %v before", after, before)
			}
			if spec != "sqlite" {
				checkCARecordInMySQL(t, ctx, spec, dir, leaf.SerialNumber)
			}

			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			s.Stage = nil
			st, err := serve.Start(ctx, serve.Options{DataDir: dir, Storage: spec, Logger: testLogger(),
				Logs: serve.LogOptions{Addr: logAddr}, CA: serve.CAOptions{NoFinalSubmission: true}, ACME: serve.ACMEOptions{Addr: "127.0.0.1:0"}})
			if err != nil {
				t.Fatal(err)
			}
			s.Stage = st // the cleanup shuts it down
			if restarted := fetchCRLEntry(t, leaf, issuer, 1); restarted.Cmp(after) <= 0 {
				t.Errorf("CRL number %v after the restart, %v before", restarted, after)
			}
			if spec != "sqlite" {
				checkCARecordInMySQL(t, ctx, spec, dir, leaf.SerialNumber)
			}
		})
	}
}

// fetchCRLEntry fetches the CRL at leaf's CRL distribution point, checks
// that issuer signed it, and that it lists leaf with reasonCode
// wantReason (-1: not listed). It returns the CRL number.
func fetchCRLEntry(t *testing.T, leaf, issuer *x509.Certificate, wantReason int) *big.Int {
	t.Helper()
	url := leaf.CRLDistributionPoints[0]
	rsp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	der, err := io.ReadAll(rsp.Body)
	if err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, rsp.Status, err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL at %s: %v", url, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Errorf("CRL at %s: %v", url, err)
	}
	got := -1
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			got = e.ReasonCode
		}
	}
	if got != wantReason {
		t.Errorf("CRL at %s lists serial %x with reason %d, want %d (-1: absent)", url, leaf.SerialNumber, got, wantReason)
	}
	return crl.Number
}

// checkCARecordInMySQL finds the CA's record of serial, revoked for
// keyCompromise, in the ca_issuances table of spec's database, and no
// ca.db under dir.
func checkCARecordInMySQL(t *testing.T, ctx context.Context, spec, dir string, serial *big.Int) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, serve.CAStoreFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--data/%s exists with --storage mysql (%v)", serve.CAStoreFile, err)
	}
	db := openStorageDB(t, spec)
	var reason sql.NullInt64
	var cert []byte
	err := db.QueryRowContext(ctx, "SELECT certificate, revocation_reason FROM ca_issuances WHERE serial = ?", serial.Text(16)).Scan(&cert, &reason)
	if err != nil || len(cert) == 0 || reason.Int64 != 1 {
		t.Errorf("ca_issuances row of %x: certificate of %d bytes, reason %v, %v", serial, len(cert), reason, err)
	}
}
