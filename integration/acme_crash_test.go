package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"

	"github.com/ctstage/ctstage/sctverify"
)

// Parameters of TestACMECrash.
const (
	acmeCrashClients     = 6               // concurrent ACME clients, one account each
	acmeCrashKills       = 4               // kill -9 under load, each followed by a restart
	acmeCrashMinUp       = 1 * time.Second // load between two kills: at least ...
	acmeCrashMaxUp       = 3 * time.Second // ... and at most
	acmeCrashTail        = 2 * time.Second // load after the last restart
	acmeCrashRevokeEvery = 3               // each client revokes every third certificate it gets
	// acmeCrashIssueTimeout is acme.issue_timeout: an order a kill left
	// processing reads invalid twice that after its finalize started.
	acmeCrashIssueTimeout = 10 * time.Second
)

// acmeCrashReasons are the reasons revokeCert accepts, used in turn.
var acmeCrashReasons = []int{0, 1, 3, 4, 5}

// TestACMECrash runs `ctstage serve --acme-always-valid` and concurrent
// ACME clients, each with its own account, doing full flows (new order,
// authorization, challenge, finalize, download) and revoking some of the
// certificates they got, and kills the process with SIGKILL at random
// moments under that load, restarting it each time on the same --data and
// addresses. Clients retry through the outage: a request that finds no
// server is expected then, but a 5xx from a running server fails the test.
//
// Everything the server acknowledged must survive: every account still
// answers; every order answered 201 still exists; every authorization
// answered valid is still valid; every order answered valid is still
// valid with the same certificate URL; every certificate downloaded
// downloads again byte for byte (chain included), chains to the staging
// root, carries SCTs that sctverify finds valid and whose precertificate
// entries have verifying inclusion proofs; its final certificate is in
// each of those logs, including when a kill cut its background
// submission short (the next server submits it again); its CRL (the certificate's own distribution point, signed by
// its intermediate) lists it with the reason given if and only if a
// revocation was answered 200; ARI answers for it and says "renew now"
// exactly for the revoked ones. On each storage.
//
// What a kill does lose, of what no client was told, is counted in the
// log: an order whose finalize the kill cut short turns invalid (the
// client has to order again) or, when its certificate was recorded,
// valid, once the issue timeout has passed twice over.
func TestACMECrash(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testACMECrash(t, b.spec(t)) })
	}
}

func testACMECrash(t *testing.T, storage string) {
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, seed>>1))

	data := t.TempDir()
	// Fixed addresses across restarts: the clients keep their URLs, and
	// the CRL URLs in the certificates point at --log-addr.
	logAddr, acmeAddr := restartableAddr(t), restartableAddr(t)
	for acmeAddr == logAddr {
		acmeAddr = restartableAddr(t)
	}
	// A short issue timeout, so that an order a kill left processing
	// turns invalid (after twice that) within the test.
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, "acme:\n  issue_timeout: %s\n", acmeCrashIssueTimeout), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--data", data, "--storage", storage, "--acme-always-valid", "--log-level", "warn",
		"--config", cfgFile}, isolationArgs...)
	args = append(args, "--acme-addr", acmeAddr) // after isolationArgs, which turn ACME off
	srv := startServerAt(t, logAddr, args...)

	ld := newACMECrashLoad(t, "https://"+acmeAddr+"/directory", filepath.Join(data, "ca", "root.pem"))
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range acmeCrashClients {
		wg.Go(func() { ld.client(ctx, t, w) })
	}
	t.Cleanup(func() { stop(); wg.Wait() }) // also on t.Fatal

	var outages []time.Duration
	lastStart := time.Now()
	for range acmeCrashKills {
		before := ld.count()
		time.Sleep(acmeCrashMinUp + time.Duration(rng.Int64N(int64(acmeCrashMaxUp-acmeCrashMinUp))))
		ld.waitForMore(t, before, 30*time.Second) // kill under load, not while idle
		srv.kill9(t)
		down := time.Now()
		ld.gen.Add(1) // after the process is gone: see acmeCrashCert.gen
		srv = startServerAt(t, logAddr, args...)
		lastStart = time.Now()
		outages = append(outages, time.Since(down).Round(time.Millisecond))
	}
	before := ld.count()
	time.Sleep(acmeCrashTail)
	ld.waitForMore(t, before, 30*time.Second)
	stop()
	wg.Wait()

	revoked, lostAnswers := ld.revocations()
	t.Logf("%d kills (outages %v), %d requests found no server; %d accounts, %d orders created, %d authorizations valid, "+
		"%d orders valid, %d flows completed (certificate downloaded), %d revocations answered 200 and %d whose answer was lost, "+
		"%d orders left processing by a kill; load phase %v",
		len(outages), outages, ld.transportErrs.Load(), len(ld.accounts), len(ld.orders), len(ld.authzs),
		len(ld.certs), ld.downloaded(), revoked-lostAnswers, lostAnswers, ld.stuck.Load(), time.Since(start).Round(time.Millisecond))
	if ld.downloaded() == 0 {
		t.Fatal("no flow completed")
	}

	checkStart := time.Now()
	ld.checkAccounts(t)
	ld.checkOrders(t)
	ld.checkStuck(t, lastStart.Add(2*acmeCrashIssueTimeout))
	cs := &clientStage{server: srv, data: data, acmeURL: "https://" + acmeAddr, hc: ld.hc}
	ld.checkCertificates(t, cs, "http://"+logAddr+"/log.v3.json")
	ld.checkFinalEntries(t, "http://"+logAddr)
	t.Logf("checked in %v; wall time %v", time.Since(checkStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("last server's stderr:\n%s", tail(srv.logs(), 4000))
	}
}

// acmeCrashLoad is the clients' record of what the server acknowledged.
type acmeCrashLoad struct {
	directory string
	hc        *http.Client
	roots     *x509.CertPool

	// gen is the server's generation: the number of kills so far. It is
	// incremented once the killed process is gone, before the restart.
	gen           atomic.Int64
	transportErrs atomic.Int64 // requests that found no server
	stuck         atomic.Int64 // orders a kill during finalize left processing

	progress    // its mu also guards the slices below; counts acknowledgements
	accounts    []*flowClient
	orders      []acmeCrashRef // answered 201
	authzs      []acmeCrashRef // challenge answered valid
	certs       []*acmeCrashCert
	stuckOrders []acmeCrashRef // left processing by a kill
}

// acmeCrashRef is an object URL and the client that may read it.
type acmeCrashRef struct {
	c   *flowClient
	url string
}

// acmeCrashCert is an order answered valid, and what followed.
type acmeCrashCert struct {
	c     *flowClient
	order string
	url   string // the order's certificate URL
	// gen is the server generation before the order's first finalize: if
	// it is the last one, no kill interrupted the final certificate's
	// background submission to the logs.
	gen     int64
	pem     []byte // the download; nil if none completed
	revoked bool   // answered 200, or alreadyRevoked after an answer was lost
	acked   bool   // the revocation was answered 200
	reason  int
}

func newACMECrashLoad(t testing.TB, directory, rootFile string) *acmeCrashLoad {
	t.Helper()
	roots := x509.NewCertPool()
	b, err := os.ReadFile(rootFile)
	if err != nil || !roots.AppendCertsFromPEM(b) {
		t.Fatalf("%s: %v", rootFile, err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 2 * acmeCrashClients}
	t.Cleanup(tr.CloseIdleConnections)
	ld := &acmeCrashLoad{directory: directory, roots: roots, hc: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
	ld.init()
	return ld
}

// record runs f under the lock and counts one acknowledgement.
func (ld *acmeCrashLoad) record(f func()) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	f()
	ld.ack()
}

// try runs op until it gets an answer, retrying while no server answers
// (killed under the request, or not restarted yet) until ctx ends. An
// answer with a problem type in allowed is returned without complaint;
// any other unexpected answer fails the test, a 5xx most of all, since
// only a running server answers.
func (ld *acmeCrashLoad) try(ctx context.Context, t testing.TB, what string, op func() error, allowed ...string) error {
	for {
		err := op()
		var se *flowStatusError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &se):
			if se.status >= 500 {
				t.Errorf("%s: a running server answered %v", what, err)
			} else if !slices.Contains(allowed, (rawRsp{body: se.body}).problemType()) {
				t.Errorf("%s: %v", what, err)
			}
			return err
		case !noServer(err):
			t.Errorf("%s: %v", what, err)
			return err
		case timedOut(err):
			t.Errorf("%s: a running server did not answer: %v", what, err)
			return err
		}
		ld.transportErrs.Add(1)
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// timedOut reports whether err is the client's timeout: a server runs but
// does not answer (a killed one refuses or resets at once).
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// noServer reports whether err says that no server answered: refused,
// reset, or cut off in the middle of an answer.
func noServer(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// client registers an account, then runs flows until ctx ends, revoking
// every acmeCrashRevokeEvery-th certificate.
func (ld *acmeCrashLoad) client(ctx context.Context, t testing.TB, w int) {
	var c *flowClient
	err := ld.try(ctx, t, "newAccount", func() (err error) {
		c, err = newFlowClient(ld.hc, ld.directory)
		return err
	})
	if err != nil {
		return
	}
	ld.record(func() { ld.accounts = append(ld.accounts, c) })
	for i := 0; ctx.Err() == nil; i++ {
		cert := ld.flow(ctx, t, c, fmt.Sprintf("c%d-%d.crash.example.com", w, i))
		if cert != nil && cert.pem != nil && i%acmeCrashRevokeEvery == acmeCrashRevokeEvery-1 {
			ld.revoke(ctx, t, c, cert, acmeCrashReasons[(i/acmeCrashRevokeEvery)%len(acmeCrashReasons)])
		}
	}
}

// flow obtains a certificate for name; nil when the flow could not finish.
func (ld *acmeCrashLoad) flow(ctx context.Context, t testing.TB, c *flowClient, name string) *acmeCrashCert {
	var r flowRsp
	err := ld.try(ctx, t, "newOrder", func() (err error) {
		r, err = c.post(c.dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": name}}}, http.StatusCreated)
		return err
	})
	if err != nil {
		return nil
	}
	var o flowObject
	if err := json.Unmarshal(r.body, &o); err != nil || len(o.Authorizations) != 1 {
		t.Errorf("newOrder: %v, %s", err, r.body)
		return nil
	}
	orderURL := r.header.Get("Location")
	ld.record(func() { ld.orders = append(ld.orders, acmeCrashRef{c, orderURL}) })
	if !ld.authorize(ctx, t, c, o.Authorizations[0]) {
		return nil
	}
	cert := &acmeCrashCert{c: c, order: orderURL, gen: ld.gen.Load()}
	if cert.url = ld.finalize(ctx, t, c, orderURL, o.Finalize, name); cert.url == "" {
		return nil
	}
	ld.record(func() { ld.certs = append(ld.certs, cert) })
	err = ld.try(ctx, t, "download", func() (err error) {
		r, err = c.post(cert.url, nil, http.StatusOK)
		return err
	})
	if err != nil {
		return nil
	}
	ld.record(func() { cert.pem = r.body })
	return cert
}

// authorize answers the authorization's http-01 challenge, which
// --acme-always-valid makes valid at once.
func (ld *acmeCrashLoad) authorize(ctx context.Context, t testing.TB, c *flowClient, authzURL string) bool {
	var az *flowObject
	if ld.try(ctx, t, "authz", func() (err error) { az, err = c.get(authzURL); return err }) != nil {
		return false
	}
	i := slices.IndexFunc(az.Challenges, func(ch struct{ Type, URL, Status string }) bool { return ch.Type == "http-01" })
	if i < 0 {
		t.Errorf("%s: no http-01 challenge", authzURL)
		return false
	}
	var r flowRsp
	err := ld.try(ctx, t, "challenge", func() (err error) {
		r, err = c.post(az.Challenges[i].URL, map[string]any{}, http.StatusOK)
		return err
	})
	if err != nil {
		return false
	}
	var ch struct{ Status string }
	if json.Unmarshal(r.body, &ch); ch.Status != "valid" {
		t.Errorf("challenge with --acme-always-valid: %s", r.body)
		return false
	}
	ld.record(func() { ld.authzs = append(ld.authzs, acmeCrashRef{c, authzURL}) })
	return true
}

// finalize sends a CSR for name and returns the order's certificate URL
// once the order is valid, or "" when it will not be: a kill during
// issuance leaves the order processing (the answer was lost; no client
// was told anything), and it stays so.
func (ld *acmeCrashLoad) finalize(ctx context.Context, t testing.TB, c *flowClient, orderURL, finalizeURL, name string) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Error(err)
		return ""
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		t.Error(err)
		return ""
	}
	gen := ld.gen.Load()
	var r flowRsp
	err = ld.try(ctx, t, "finalize", func() (err error) {
		r, err = c.post(finalizeURL, map[string]string{"csr": b64u(csr)}, http.StatusOK)
		return err
	}, "orderNotReady") // an earlier attempt reached a server killed while issuing
	o := &flowObject{}
	if err == nil {
		if err := json.Unmarshal(r.body, o); err != nil {
			t.Errorf("finalize: %v: %s", err, r.body)
			return ""
		}
	} else if !errors.As(err, new(*flowStatusError)) {
		return ""
	}
	for o.Status != "valid" {
		switch o.Status {
		case "", "processing":
		default:
			t.Errorf("order %s is %s", orderURL, o.Status)
			return ""
		}
		if o.Status == "processing" {
			if ld.gen.Load() != gen {
				ld.stuck.Add(1)
				ld.record(func() { ld.stuckOrders = append(ld.stuckOrders, acmeCrashRef{c, orderURL}) })
				return ""
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := ld.try(ctx, t, "order", func() (err error) { o, err = c.get(orderURL); return err }); err != nil {
			return ""
		}
	}
	if o.Certificate == "" {
		t.Errorf("order %s is valid without a certificate URL", orderURL)
	}
	return o.Certificate
}

// revoke downloads cert again (it must not have changed), then revokes it
// for reason.
func (ld *acmeCrashLoad) revoke(ctx context.Context, t testing.TB, c *flowClient, cert *acmeCrashCert, reason int) {
	var r flowRsp
	if ld.try(ctx, t, "download again", func() (err error) { r, err = c.post(cert.url, nil, http.StatusOK); return err }) != nil {
		return
	}
	if !bytes.Equal(r.body, cert.pem) {
		t.Errorf("%s: the second download differs from the first:\n%s\n%s", cert.url, cert.pem, r.body)
	}
	blk, _ := pem.Decode(cert.pem)
	if blk == nil {
		t.Errorf("%s: no PEM", cert.url)
		return
	}
	attempts := 0
	err := ld.try(ctx, t, "revokeCert", func() (err error) {
		attempts++
		_, err = c.post(c.dir.RevokeCert, map[string]any{"certificate": b64u(blk.Bytes), "reason": reason}, http.StatusOK)
		return err
	}, "alreadyRevoked")
	switch {
	case err == nil:
		ld.record(func() { cert.revoked, cert.acked, cert.reason = true, true, reason })
	case attempts > 1 && errors.As(err, new(*flowStatusError)):
		// alreadyRevoked: an attempt whose answer was lost revoked it,
		// with the same reason. Checked too, though nobody was told.
		ld.record(func() { cert.revoked, cert.reason = true, reason })
	case errors.As(err, new(*flowStatusError)):
		t.Errorf("first revocation of %s: %v", cert.url, err)
	}
}

func (ld *acmeCrashLoad) downloaded() int {
	n := 0
	for _, c := range ld.certs {
		if c.pem != nil {
			n++
		}
	}
	return n
}

// revocations counts the certificates revoked, and among them those whose
// 200 was lost to a kill.
func (ld *acmeCrashLoad) revocations() (revoked, lost int) {
	for _, c := range ld.certs {
		if c.revoked {
			revoked++
			if !c.acked {
				lost++
			}
		}
	}
	return revoked, lost
}

// checkAccounts: every account answers POST-as-GET, valid.
func (ld *acmeCrashLoad) checkAccounts(t *testing.T) {
	t.Helper()
	for _, c := range ld.accounts {
		if a, err := c.get(c.kid); err != nil || a.Status != "valid" {
			t.Errorf("account %s: %+v, %v: LOST", c.kid, a, err)
		}
	}
}

// checkOrders: every order answered 201 exists; every authorization
// answered valid is valid; every order answered valid is valid with the
// same certificate URL.
func (ld *acmeCrashLoad) checkOrders(t *testing.T) {
	t.Helper()
	for _, o := range ld.orders {
		if _, err := o.c.get(o.url); err != nil {
			t.Errorf("order %s: %v: LOST", o.url, err)
		}
	}
	for _, az := range ld.authzs {
		if a, err := az.c.get(az.url); err != nil || a.Status != "valid" {
			t.Errorf("authorization %s answered valid, now %+v, %v", az.url, a, err)
		}
	}
	for _, cert := range ld.certs {
		if o, err := cert.c.get(cert.order); err != nil || o.Status != "valid" || o.Certificate != cert.url {
			t.Errorf("order %s answered valid with certificate %s, now %+v, %v", cert.order, cert.url, o, err)
		}
	}
}

// checkStuck: every order a kill left processing reads valid (its
// certificate was recorded) or invalid with a serverInternal error once
// twice the issue timeout has passed since the last start (after, a kill
// cannot interrupt an issuance), at the latest.
func (ld *acmeCrashLoad) checkStuck(t *testing.T, after time.Time) {
	t.Helper()
	time.Sleep(time.Until(after))
	valid := 0
	for _, o := range ld.stuckOrders {
		got, err := o.c.get(o.url)
		switch {
		case err != nil:
			t.Errorf("order %s left processing by a kill: %v", o.url, err)
		case got.Status == "valid" && got.Certificate != "":
			valid++
		case got.Status == "invalid" && got.Error != nil && got.Error.Type == "urn:ietf:params:acme:error:serverInternal":
		default:
			t.Errorf("order %s left processing by a kill is now %+v", o.url, got)
		}
	}
	t.Logf("%d orders left processing by a kill: %d now valid (certificate recorded), the others invalid",
		len(ld.stuckOrders), valid)
}

// checkCertificates downloads every certificate again and checks it as
// TestACMECrash says: same bytes, chain, SCTs and precertificate
// inclusion (sctverify), CRL, ARI.
func (ld *acmeCrashLoad) checkCertificates(t *testing.T, cs *clientStage, logList string) {
	t.Helper()
	ll, err := sctverify.LoadLogList(context.Background(), logList, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &sctverify.Verifier{Logs: ll, Inclusion: true}
	for _, cert := range ld.certs {
		if cert.pem == nil {
			continue
		}
		r, err := cert.c.post(cert.url, nil, http.StatusOK)
		if err != nil || !bytes.Equal(r.body, cert.pem) {
			t.Errorf("%s: downloaded again: %v, the same bytes: %v", cert.url, err, bytes.Equal(r.body, cert.pem))
			continue
		}
		chain := parseDERs(t, pemBlocks(cert.pem))
		if len(chain) != 2 {
			t.Errorf("%s: chain of %d certificates", cert.url, len(chain))
			continue
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: ld.roots, Intermediates: certPool(chain[1:])}); err != nil {
			t.Errorf("%s: chain does not verify to the staging root: %v", cert.url, err)
		}
		rep := verifyIncluded(t, v, sctverify.Input{Chain: chain})
		if !rep.OK || len(rep.SCTs) < 2 || slices.ContainsFunc(rep.SCTs, func(s sctverify.SCTResult) bool {
			return s.Status != sctverify.StatusValid || s.Inclusion == nil || s.Inclusion.Status != sctverify.InclusionIncluded
		}) {
			t.Errorf("%s: SCTs and precertificate entries:\n%s", cert.url, reportText(rep))
		}
		want := -1
		if cert.revoked {
			want = cert.reason
		}
		fetchCRLEntry(t, chain[0], chain[1], want)
		if got := cs.ariRevoked(t, cert.pem); got != cert.revoked {
			t.Errorf("%s: ARI says renew now: %v, revoked: %v", cert.url, got, cert.revoked)
		}
	}
}

// checkFinalEntries waits (40 s at most) for every downloaded certificate's
// final certificate in each log that gave it an SCT. The CA submits it in
// the background after issuance; one whose submission a kill cut short
// stays owed in the CA's store and the next server submits it again at
// start, so all must arrive, whichever server issued them.
func (ld *acmeCrashLoad) checkFinalEntries(t *testing.T, logBase string) {
	t.Helper()
	byID := logsByID(fetchLogList(t, logBase))
	type want struct {
		cert *acmeCrashCert
		id   [sha256.Size]byte // entryIdentity of the X.509 entry
		log  [32]byte
	}
	var wants []want
	for _, cert := range ld.certs {
		if cert.pem == nil {
			continue
		}
		leaf := parsePEMChain(t, string(cert.pem))[0]
		for _, raw := range leaf.SCTList.SCTList {
			var sct ct.SignedCertificateTimestamp
			if _, err := cttls.Unmarshal(raw.Val, &sct); err != nil {
				t.Fatal(err)
			}
			wants = append(wants, want{cert, sha256.Sum256(leaf.Raw), sct.LogID.KeyID})
		}
	}
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(time.Second) {
		entries := map[[32]byte]map[[sha256.Size]byte]bool{}
		var missing []want
		for _, w := range wants {
			if entries[w.log] == nil {
				entries[w.log] = logIdentities(t, byID, w.log)
			}
			if !entries[w.log][w.id] {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			t.Logf("final certificates: %d of %d expected entries in the logs", len(wants)-len(missing), len(wants))
			for _, w := range missing {
				t.Errorf("%s: final certificate (issued by server generation %d of %d) not in %s",
					w.cert.url, w.cert.gen, ld.gen.Load(), byID[w.log].log.Description)
			}
			return
		}
	}
}

// logIdentities reads every entry of log id and returns their
// entryIdentity.
func logIdentities(t *testing.T, byID map[[32]byte]listedLog, id [32]byte) map[[sha256.Size]byte]bool {
	t.Helper()
	l, ok := byID[id]
	if !ok {
		t.Fatalf("SCT from a log not in the log list: %x", id)
	}
	out := map[[sha256.Size]byte]bool{}
	for _, b := range logLeaves(t, l) {
		if k, ok := entryIdentity(b); ok {
			out[k] = true
		}
	}
	return out
}

// pemBlocks is the DER of every PEM block of b.
func pemBlocks(b []byte) [][]byte {
	var out [][]byte
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		out = append(out, blk.Bytes)
	}
}

func certPool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
