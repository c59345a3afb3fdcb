package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"
	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/sctverify"
)

// statusRecorder is an http.RoundTripper that keeps every server error a
// client was answered with, and whether a 503 said when to retry.
type statusRecorder struct {
	next http.RoundTripper

	answered    atomic.Int64 // responses of any status
	unavailable atomic.Int64 // 503s with Retry-After
	mu          sync.Mutex
	bad         map[string]int // 5xx other than 503, and 503s without Retry-After, by method, path and status
	first       map[string]string
}

func (r *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rsp, err := r.next.RoundTrip(req)
	if err != nil {
		return rsp, err
	}
	r.answered.Add(1)
	switch {
	case rsp.StatusCode == http.StatusServiceUnavailable && validRetryAfter(rsp.Header.Get("Retry-After")):
		r.unavailable.Add(1)
	case rsp.StatusCode >= 500:
		k := fmt.Sprintf("%s %s: %d", req.Method, req.URL.Path, rsp.StatusCode)
		r.mu.Lock()
		if r.bad == nil {
			r.bad, r.first = map[string]int{}, map[string]string{}
		}
		if r.bad[k]++; r.bad[k] == 1 {
			r.first[k] = fmt.Sprintf("first at %s, Retry-After %q", time.Now().UTC().Format("15:04:05.000"), rsp.Header.Get("Retry-After"))
		}
		r.mu.Unlock()
	}
	return rsp, nil
}

// validRetryAfter reports whether v is a Retry-After of delay-seconds or
// an HTTP date (RFC 9110, section 10.2.3).
func validRetryAfter(v string) bool {
	if n, err := strconv.Atoi(v); err == nil {
		return n >= 0
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// TestScaleOutMariaDBOutage kills the MariaDB under a scale-out
// deployment (one sequencer, two log frontends, one ca process, on a
// private mariadbd so that the shared one is not touched) in the middle
// of a load of RFC 6962 and tiled submissions and ACME orders, and
// starts it again 8 s later. While it is down, every write must be
// answered 503 with Retry-After, never 500; every process must recover
// by itself, without a restart; and every SCT and certificate that was
// acknowledged, before, during or after the outage, must be there after
// it: each SCT proven in its log, each certificate served again at its
// URL, byte for byte.
func TestScaleOutMariaDBOutage(t *testing.T) {
	ca, root := newCA(t)
	maria := testenv.StartMariaDB(t)
	etcd := testenv.StartEtcd(t)
	d := &scaleOut{storage: testenv.Database(t, maria.Server), election: "etcd://" + strings.TrimPrefix(etcd.Endpoint, "http://"),
		keys: t.TempDir(), root: root}
	seq := d.start(t, "sequencer")
	fronts := []*server{d.start(t, "log"), d.start(t, "log")}
	acmeAddr := freeAddr(t)
	caProc := d.start(t, "ca", "--acme-addr", acmeAddr, "--acme-always-valid", "--log-list", "http://"+fronts[0].addr+"/log.v3.json")
	procs := map[string]*server{"sequencer": seq, "frontend 0": fronts[0], "frontend 1": fronts[1], "ca": caProc}

	notAfter := time.Now().AddDate(0, 0, 90)
	var shards []*loglist3.Log
	for _, f := range fronts {
		shards = append(shards, shardIn(t, fetchLogList(t, "http://"+f.addr), 0, notAfter))
	}
	raw, err := httpGetBytes("http://" + fronts[1].addr + "/log.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	tiled := tiledShardIn(t, raw, 0, notAfter)
	shards = append(shards, &loglist3.Log{URL: tiled.SubmissionURL, Key: tiled.Key}) // through frontend 1

	rec := &statusRecorder{}
	ld := newCrashLoad(ca, shards, notAfter)
	rec.next = ld.http.Transport
	ld.http.Transport = rec

	// ACME: lego orders in a loop, each certificate kept with its URL.
	acmeRec := &statusRecorder{next: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // loopback, test only
	lc := outageLego(t, "https://"+acmeAddr+"/directory", acmeRec)
	type issued struct {
		url string
		pem []byte
	}
	var (
		certMu sync.Mutex
		certs  []issued
		orderN atomic.Int64 // orders that ended without a certificate
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { ld.submitter(ctx, t, w) })
	}
	wg.Go(func() { ld.poller(ctx, t) })
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			octx, cancel := context.WithTimeout(ctx, 20*time.Second)
			res, err := lc.Certificate.Obtain(octx, certificate.ObtainRequest{
				Domains: []string{fmt.Sprintf("outage-%d.example.com", i)}, KeyType: certcrypto.EC256, Bundle: true})
			cancel()
			if err != nil {
				if orderN.Add(1) <= 3 {
					t.Logf("order %d: %v", i, err)
				}
				time.Sleep(200 * time.Millisecond)
				continue
			}
			certMu.Lock()
			certs = append(certs, issued{res.CertURL, res.Certificate})
			certMu.Unlock()
		}
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	certCount := func() int { certMu.Lock(); defer certMu.Unlock(); return len(certs) }

	time.Sleep(3 * time.Second)
	ld.waitForMore(t, 0, 10*time.Second)
	for deadline := time.Now().Add(30 * time.Second); certCount() == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no certificate issued before the outage\n--- ca:\n%s", tail(caProc.logs(), 3000))
		}
	}
	beforeSCTs, beforeCerts := ld.count(), certCount()
	maria.Stop()
	stopped := time.Now()
	time.Sleep(8 * time.Second)
	// Health says so while the database is down.
	for name, p := range procs {
		if code := healthStatus(p); code != http.StatusServiceUnavailable {
			t.Errorf("%s: /healthz answered %d with MariaDB down, want 503", name, code)
		}
	}
	duringSCTs, duringCerts := ld.count(), certCount()
	maria.Restart()
	restarted := time.Now()
	t.Logf("MariaDB down %v; acknowledged before: %d SCTs, %d certificates; during: %d SCTs, %d certificates",
		restarted.Sub(stopped).Round(time.Millisecond), beforeSCTs, beforeCerts, duringSCTs-beforeSCTs, duringCerts-beforeCerts)

	// Every process recovers by itself: healthy, and the load goes on.
	for name, p := range procs {
		for deadline := time.Now().Add(30 * time.Second); healthStatus(p) != http.StatusOK; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not healthy 30 s after MariaDB came back\n%s", name, tail(p.logs(), 3000))
			}
		}
	}
	healthy := time.Since(restarted)
	ld.waitForMore(t, ld.count()+20, 30*time.Second)
	for deadline := time.Now().Add(40 * time.Second); certCount() <= duringCerts+1; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no new certificate 40 s after MariaDB came back\n--- ca:\n%s", tail(caProc.logs(), 3000))
		}
	}
	recovered := time.Since(restarted)
	stop()
	wg.Wait()
	for name, p := range procs {
		select {
		case err := <-p.done:
			t.Fatalf("%s exited: %v\n%s", name, err, tail(p.logs(), 3000))
		default:
		}
	}

	// No 500, and 503 with Retry-After only.
	for _, r := range []*statusRecorder{rec, acmeRec} {
		r.mu.Lock()
		for k, n := range r.bad {
			t.Errorf("%d server errors other than 503 with Retry-After: %s (%s)", n, k, r.first[k])
		}
		r.mu.Unlock()
	}
	if rec.unavailable.Load() == 0 || acmeRec.unavailable.Load() == 0 {
		t.Errorf("503s with Retry-After: %d from the logs, %d from ACME; the outage was not seen", rec.unavailable.Load(), acmeRec.unavailable.Load())
	}

	// Nothing acknowledged is lost.
	recs, sths := ld.results()
	var rfc, tiledRecs []*received
	for i := range recs {
		recs[i].index = -1
		if recs[i].shard == 2 {
			tiledRecs = append(tiledRecs, &recs[i])
		} else {
			rfc = append(rfc, &recs[i])
		}
	}
	c := verifyingClient(t, shards[0])
	final, missing := proveAll(t, c, rfc, 60*time.Second)
	for _, r := range missing[:min(len(missing), 10)] {
		t.Errorf("SCT (timestamp %d, through frontend %d) has no provable entry: LOST", r.sct.Timestamp, r.shard)
	}
	bad := checkSTHs(t, c, "frontend 0", sths[0], final) + checkSTHs(t, verifyingClient(t, shards[1]), "frontend 1", sths[1], final)
	logs, err := sctverify.ParseLogList(raw)
	if err != nil {
		t.Fatal(err)
	}
	tl := logs.Lookup([32]byte(tiled.LogID))
	v := &sctverify.Verifier{}
	var lostTiled int
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		cp, _, err := v.Checkpoint(context.Background(), tl)
		if err != nil {
			t.Fatal(err)
		}
		lostTiled = 0
		for _, r := range tiledRecs {
			idx, err := sctverify.LeafIndex(r.sct.Extensions)
			if err != nil {
				t.Fatal(err)
			}
			if v.ProveTiledInclusion(context.Background(), tl, cp, idx, [32]byte(leafHash(t, r.chain, r.precert, r.sct))) != nil {
				lostTiled++
			}
		}
		if lostTiled == 0 || time.Now().After(deadline) {
			break
		}
	}
	if lostTiled > 0 {
		t.Errorf("%d of %d tiled SCTs have no provable entry: LOST", lostTiled, len(tiledRecs))
	}
	certMu.Lock()
	defer certMu.Unlock()
	for _, ic := range certs {
		res, err := lc.Certificate.Get(context.Background(), ic.url, true)
		if err != nil {
			t.Errorf("certificate %s: %v: LOST", ic.url, err)
			continue
		}
		if string(res.Certificate) != string(ic.pem) {
			t.Errorf("certificate %s changed after the outage", ic.url)
		}
	}
	t.Logf("healthy %v and taking load %v after MariaDB came back; %d RFC 6962 and %d tiled SCTs, %d certificates, all there; "+
		"%d submissions and %d orders without a result; 503s with Retry-After: %d (logs) and %d (ACME) of %d and %d answers; %d inconsistent STHs",
		healthy.Round(time.Millisecond), recovered.Round(time.Millisecond), len(rfc), len(tiledRecs), len(certs),
		ld.failed.Load(), orderN.Load(), rec.unavailable.Load(), acmeRec.unavailable.Load(), rec.answered.Load(), acmeRec.answered.Load(), bad)
}

// healthStatus is p's /healthz status, or 0 when it does not answer.
func healthStatus(p *server) int {
	c := &http.Client{Timeout: 5 * time.Second}
	rsp, err := c.Get("http://" + p.addr + "/healthz")
	if err != nil {
		return 0
	}
	rsp.Body.Close()
	return rsp.StatusCode
}

// tiledShardIn is operator op's tiled shard that takes notAfter, from a
// v3 log list.
func tiledShardIn(t testing.TB, raw []byte, op int, notAfter time.Time) *loglist3.TiledLog {
	t.Helper()
	var ll loglist3.LogList
	if err := json.Unmarshal(raw, &ll); err != nil {
		t.Fatal(err)
	}
	for _, tl := range ll.Operators[op].TiledLogs {
		if ti := tl.TemporalInterval; ti != nil && !notAfter.Before(ti.StartInclusive) && notAfter.Before(ti.EndExclusive) {
			return tl
		}
	}
	t.Fatalf("no tiled shard of operator %d takes NotAfter %v", op, notAfter)
	return nil
}

// outageLego registers a lego account at dir, over rt, solving http-01
// on a free port (the server is --acme-always-valid).
func outageLego(t testing.TB, dir string, rt http.RoundTripper) *lego.Client {
	t.Helper()
	u := &legoUser{key: newKey(t)}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = dir
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: rt}
	c, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(freePort(t)))); err != nil {
		t.Fatal(err)
	}
	reg, err := c.Registration.Register(context.Background(), registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	u.reg = reg
	return c
}
