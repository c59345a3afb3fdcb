package ca

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/ca/store"
	"github.com/ctstage/ctstage/internal/testsupport/fakelog"
)

// crlEnv is a CA with a settable clock, serving its Handler over HTTP.
type crlEnv struct {
	*testCA
	now atomic.Pointer[time.Time]
	srv *httptest.Server
}

func newCRLEnv(t *testing.T) *crlEnv {
	t.Helper()
	e := &crlEnv{testCA: newTestCA(t, ctpolicy.Options{}, fakelog.New("op-a", fakelog.OK), fakelog.New("op-b", fakelog.OK))}
	now := time.Now()
	e.now.Store(&now)
	e.opts.Now = func() time.Time { return *e.now.Load() }
	e.srv = httptest.NewServer(e.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *crlEnv) advance(d time.Duration) {
	now := e.now.Load().Add(d)
	e.now.Store(&now)
}

func (e *crlEnv) issue(t *testing.T, key string, lifetime time.Duration) *Issuance {
	t.Helper()
	iss, err := e.Issue(context.Background(), Request{PublicKey: testKey(t, key), Names: []string{"crl.example.com"}, Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// fetch gets the CRL at path over HTTP and checks what every CRL of the CA
// must be: DER that parses, signed by iss, issued under its name and key
// identifier, thisUpdate not after now, nextUpdate an hour later, and
// clean under every CRL lint of zlint.
func (e *crlEnv) fetch(t *testing.T, path string, iss *Issuer) *x509.RevocationList {
	t.Helper()
	rsp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	der, err := io.ReadAll(rsp.Body)
	if err != nil || rsp.StatusCode != http.StatusOK || rsp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET %s: %s %q, %v", path, rsp.Status, rsp.Header.Get("Content-Type"), err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := crl.CheckSignatureFrom(iss.Cert); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	if string(crl.RawIssuer) != string(iss.Cert.RawSubject) || string(crl.AuthorityKeyId) != string(iss.Cert.SubjectKeyId) {
		t.Errorf("CRL issuer %s, AKI %x; want the intermediate's %s, %x", crl.Issuer, crl.AuthorityKeyId, iss.Cert.Subject, iss.Cert.SubjectKeyId)
	}
	if now := e.opts.Now(); crl.ThisUpdate.After(now) || crl.NextUpdate.Sub(crl.ThisUpdate) != crlValidity {
		t.Errorf("thisUpdate %v, nextUpdate %v at %v", crl.ThisUpdate, crl.NextUpdate, now)
	}
	lintCRL(t, der)
	return crl
}

// lintCRL runs every zlint lint that applies to CRLs and fails on any
// warning or error.
func lintCRL(t *testing.T, der []byte) {
	t.Helper()
	zc, err := zx509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("zcrypto couldn't parse the CRL: %v", err)
	}
	res := zlint.LintRevocationList(zc)
	ran := 0
	for name, r := range res.Results {
		if r.Status == lint.NA || r.Status == lint.NE {
			continue
		}
		ran++
		if r.Status >= lint.Warn {
			t.Errorf("zlint %s: %s %s", name, r.Status, r.Details)
		}
	}
	if ran < 10 {
		t.Errorf("only %d CRL lints applied; want the RFC 5280 and Baseline Requirements ones", ran)
	}
}

// entries maps the serials (hex) of a CRL to their reason codes, -1 when
// the reasonCode extension is absent.
func entries(t *testing.T, crl *x509.RevocationList) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, e := range crl.RevokedCertificateEntries {
		reason := -1
		for _, ext := range e.Extensions {
			if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 21}) {
				reason = e.ReasonCode
			}
		}
		out[e.SerialNumber.Text(16)] = reason
		if !e.RevocationTime.Equal(e.RevocationTime.Truncate(time.Second)) || e.RevocationTime.After(crl.ThisUpdate) {
			t.Errorf("entry %x: revocation time %v (thisUpdate %v)", e.SerialNumber, e.RevocationTime, crl.ThisUpdate)
		}
	}
	return out
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestCRL follows the CRLs of both intermediates through revocations and
// expirations, checking each one's entries, reasons, signature and number.
func TestCRL(t *testing.T) {
	e := newCRLEnv(t)
	h := e.opts.Hierarchy
	ctx := context.Background()
	long := e.issue(t, "ecdsa-p256", 0)
	short := e.issue(t, "ecdsa-p384", 10*day)
	unspecified := e.issue(t, "ecdsa-p256", 0)
	rsaLeaf := e.issue(t, "rsa-2048", 0)
	kept := e.issue(t, "ecdsa-p256", 0) // never revoked
	hex := func(i *Issuance) string { return i.Serial.Text(16) }

	lastNumber := map[string]*big.Int{"ecdsa": big.NewInt(0), "rsa": big.NewInt(0)}
	for _, step := range []struct {
		name   string
		do     func(t *testing.T)
		ecdsa  map[string]int
		rsa    map[string]int
		cached bool // the CRLs are the ones of the step before
	}{
		{name: "empty", do: func(*testing.T) {}, ecdsa: map[string]int{}, rsa: map[string]int{}},
		{name: "again, from the cache", do: func(*testing.T) {}, ecdsa: map[string]int{}, rsa: map[string]int{}, cached: true},
		{name: "revocations show at once", do: func(t *testing.T) {
			for _, r := range []struct {
				iss    *Issuance
				reason int
			}{{long, 1}, {short, 5}, {unspecified, 0}, {rsaLeaf, 4}} {
				if err := e.Revoke(ctx, r.iss.Serial, r.reason, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
		}, ecdsa: map[string]int{hex(long): 1, hex(short): 5, hex(unspecified): -1}, rsa: map[string]int{hex(rsaLeaf): 4}},
		{name: "past the cache's lifetime", do: func(*testing.T) { e.advance(crlCacheTTL) },
			ecdsa: map[string]int{hex(long): 1, hex(short): 5, hex(unspecified): -1}, rsa: map[string]int{hex(rsaLeaf): 4}},
		{name: "expired certificates drop out", do: func(*testing.T) { e.advance(11 * day) },
			ecdsa: map[string]int{hex(long): 1, hex(unspecified): -1}, rsa: map[string]int{hex(rsaLeaf): 4}},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.do(t)
			signs := e.signs.Load()
			for _, c := range []struct {
				name string
				iss  *Issuer
				want map[string]int
			}{{"ecdsa", h.ECDSAIntermediate, step.ecdsa}, {"rsa", h.RSAIntermediate, step.rsa}} {
				crl := e.fetch(t, "/crl/"+c.name+".crl", c.iss)
				if got := entries(t, crl); !equalMaps(got, c.want) {
					t.Errorf("%s CRL lists %v, want %v", c.name, got, c.want)
				}
				if cmp := crl.Number.Cmp(lastNumber[c.name]); step.cached && cmp != 0 || !step.cached && cmp <= 0 {
					t.Errorf("%s CRL number %v after %v (cached: %v)", c.name, crl.Number, lastNumber[c.name], step.cached)
				}
				lastNumber[c.name] = crl.Number
			}
			if n := e.signs.Load() - signs; step.cached && n != 0 || !step.cached && n != 2 {
				t.Errorf("%d signatures for the two CRLs (cached: %v)", n, step.cached)
			}
		})
	}
	if r, err := e.Revocation(ctx, kept.Serial); err != nil || r != nil {
		t.Errorf("Revocation(never revoked) = %+v, %v", r, err)
	}
	if r, err := e.Revocation(ctx, long.Serial); err != nil || r == nil || r.Reason != 1 {
		t.Errorf("Revocation(revoked) = %+v, %v", r, err)
	}
}

// TestRevokeRefuses checks Revoke's errors; none of them reaches the CRL.
func TestRevokeRefuses(t *testing.T) {
	e := newCRLEnv(t)
	ctx := context.Background()
	leaf := e.issue(t, "ecdsa-p256", 0)
	if err := e.Revoke(ctx, leaf.Serial, 1, e.opts.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		serial *big.Int
		reason int
		at     time.Time
		want   error
	}{
		{"cACompromise", leaf.Serial, 2, time.Time{}, ErrBadRequest},
		{"certificateHold", leaf.Serial, 6, time.Time{}, ErrBadRequest},
		{"unassigned 7", leaf.Serial, 7, time.Time{}, ErrBadRequest},
		{"removeFromCRL", leaf.Serial, 8, time.Time{}, ErrBadRequest},
		{"aACompromise", leaf.Serial, 10, time.Time{}, ErrBadRequest},
		{"negative reason", leaf.Serial, -1, time.Time{}, ErrBadRequest},
		{"future time", leaf.Serial, 1, e.opts.Now().Add(time.Hour), ErrBadRequest},
		{"nil serial", nil, 1, time.Time{}, ErrBadRequest},
		{"zero serial", big.NewInt(0), 1, time.Time{}, ErrBadRequest},
		{"unknown serial", big.NewInt(12345), 1, time.Time{}, store.ErrNotFound},
		{"twice", leaf.Serial, 4, time.Time{}, store.ErrAlreadyRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.Revoke(ctx, tc.serial, tc.reason, tc.at); !errors.Is(err, tc.want) {
				t.Errorf("Revoke = %v, want %v", err, tc.want)
			}
		})
	}
	got := entries(t, e.fetch(t, "/crl/ecdsa.crl", e.opts.Hierarchy.ECDSAIntermediate))
	if want := map[string]int{leaf.Serial.Text(16): 1}; !equalMaps(got, want) {
		t.Errorf("CRL lists %v, want %v (the first revocation)", got, want)
	}
	for _, path := range []string{"/crl/nope.crl", "/crl/ecdsa", "/crl/ecdsa.der", "/crl/.crl"} {
		rsp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, rsp.Status)
		}
	}
}

// TestCRLConcurrentRevocations revokes from several goroutines while
// others fetch the CRL: each revoker then finds its serial in the CRL it
// fetches, whatever the cache held.
func TestCRLConcurrentRevocations(t *testing.T) {
	e := newCRLEnv(t)
	ctx := context.Background()
	const n = 8
	leaves := make([]*Issuance, n)
	for i := range leaves {
		leaves[i] = e.issue(t, "ecdsa-p256", 0)
	}
	iss := e.opts.Hierarchy.ECDSAIntermediate
	stop := make(chan struct{})
	var readers, revokers sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.crl(ctx, iss); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	errs := make(chan error, n)
	for i, leaf := range leaves {
		revokers.Go(func() {
			if err := e.Revoke(ctx, leaf.Serial, 1+i%2*3, time.Time{}); err != nil {
				errs <- err
				return
			}
			der, err := e.crl(ctx, iss)
			if err != nil {
				errs <- err
				return
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				errs <- err
				return
			}
			if !slices.ContainsFunc(crl.RevokedCertificateEntries, func(r x509.RevocationListEntry) bool {
				return r.SerialNumber.Cmp(leaf.Serial) == 0
			}) {
				errs <- fmt.Errorf("the CRL fetched after revoking %x does not list it", leaf.Serial)
			}
		})
	}
	revokers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := entries(t, e.fetch(t, "/crl/ecdsa.crl", iss)); len(got) != n {
		t.Errorf("final CRL lists %d serials, want %d", len(got), n)
	}
}
