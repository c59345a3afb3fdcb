package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/sctverify"
)

// scaleOut is a deployment of separate `ctstage serve` processes on one
// MariaDB database and one etcd, sharing a --keys directory.
type scaleOut struct {
	storage, election, keys, root string
}

func newScaleOut(t *testing.T, root string) *scaleOut {
	t.Helper()
	storage := testenv.MySQL(t)
	etcd := testenv.StartEtcd(t)
	return &scaleOut{storage: storage, election: "etcd://" + strings.TrimPrefix(etcd.Endpoint, "http://"), keys: t.TempDir(), root: root}
}

// start runs one process with role, on its own --data.
func (d *scaleOut) start(t *testing.T, role string, extra ...string) *server {
	t.Helper()
	return startServer(t, append(d.args(t, role), extra...)...)
}

// startAt is start on addr.
func (d *scaleOut) startAt(t *testing.T, addr, role string, extra ...string) *server {
	t.Helper()
	return startServerAt(t, addr, append(append(d.args(t, role), isolationArgs...), extra...)...)
}

func (d *scaleOut) args(t *testing.T, role string) []string {
	args := []string{"--role", role, "--storage", d.storage, "--keys", d.keys, "--data", t.TempDir(),
		"--extra-roots", d.root, "--log-level", "warn"}
	if strings.Contains(role, "sequencer") || role == "all" {
		args = append(args, "--election", d.election)
	}
	return args
}

// metricSamples reads the samples of one metric from base/metrics, keyed
// by their label set as Prometheus prints it.
func metricSamples(t testing.TB, base, name string) map[string]float64 {
	t.Helper()
	rsp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer rsp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(rsp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[strings.TrimPrefix(line[:i], name)] = v
	}
	return out
}

// treeID is the Trillian tree of shard, from ctstage_log_info.
func treeID(t testing.TB, base, shard string) string {
	t.Helper()
	for labels := range metricSamples(t, base, "ctstage_log_info") {
		if strings.Contains(labels, `shard="`+shard+`"`) {
			_, rest, _ := strings.Cut(labels, `tree_id="`)
			id, _, _ := strings.Cut(rest, `"`)
			return id
		}
	}
	t.Fatalf("no ctstage_log_info for shard %s at %s", shard, base)
	return ""
}

// masterOf waits until exactly one of the sequencers says it is the
// master of tree, and returns its index.
func masterOf(t testing.TB, seqs []*server, tree string, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var masters []int
		for i, s := range seqs {
			if metricSamples(t, "http://"+s.addr, "trillian_is_master")[`{logid="`+tree+`"}`] == 1 {
				masters = append(masters, i)
			}
		}
		if len(masters) == 1 {
			return masters[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree %s: masters %v after %v, want exactly one", tree, masters, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shardURLName is a shard's name, from its URL's path.
func shardURLName(l *loglist3.Log) string {
	return strings.Trim(path(l.URL), "/")
}

// TestScaleOutSequencerFailover runs two log frontends and two
// sequencers as separate processes on one MariaDB and one etcd,
// submits through both frontends, and kills the sequencer that leads
// the shard's tree with SIGKILL in the middle of the load. The other
// must take over within 10 s; every SCT either frontend returned must
// be integrated within the MMD, with the entry at its proven index; and
// every STH seen through either frontend must be consistent with every
// other (the same root for the same size, a consistency proof to the
// final one): one signer per tree at any time.
func TestScaleOutSequencerFailover(t *testing.T) {
	start := time.Now()
	ca, root := newCA(t)
	d := newScaleOut(t, root)
	seqs := []*server{d.start(t, "sequencer"), d.start(t, "sequencer")}
	fronts := []*server{d.start(t, "log"), d.start(t, "log")}
	t.Logf("2 sequencers and 2 frontends healthy after %v", time.Since(start).Round(time.Millisecond))

	notAfter := time.Now().AddDate(0, 0, 90)
	via := make([]*loglist3.Log, len(fronts))
	for i, f := range fronts {
		via[i] = shardIn(t, fetchLogList(t, "http://"+f.addr), 0, notAfter)
		if string(via[i].Key) != string(via[0].Key) || shardURLName(via[i]) != shardURLName(via[0]) {
			t.Fatalf("frontend %d serves %s with another key than frontend 0's %s", i, via[i].URL, via[0].URL)
		}
	}
	shard := shardURLName(via[0])
	tree := treeID(t, "http://"+fronts[0].addr, shard)
	leader := masterOf(t, seqs, tree, 30*time.Second)
	t.Logf("shard %s is tree %s; sequencer %d (%s) leads", shard, tree, leader, seqs[leader].addr)

	// Two "shards" of the load: the same log through each frontend.
	ld := newCrashLoad(ca, via, notAfter)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range crashSubmitters {
		wg.Go(func() { ld.submitter(ctx, t, w) })
	}
	wg.Go(func() { ld.poller(ctx, t) })
	t.Cleanup(func() { stop(); wg.Wait() })

	c := verifyingClient(t, via[1])
	time.Sleep(3 * time.Second)
	ld.waitForMore(t, 0, 10*time.Second)
	sth, err := c.GetSTH(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seqs[leader].kill9(t)
	killed := time.Now()
	before := sth.TreeSize
	// The survivor has taken over when the tree grows past what the
	// killed leader had integrated: entries keep being queued meanwhile.
	var takeover time.Duration
	for {
		sth, err := c.GetSTH(context.Background())
		if err == nil && sth.TreeSize > before && time.Unix(0, int64(sth.Timestamp)*int64(time.Millisecond)).After(killed) {
			takeover = time.Since(killed)
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("no sequencer integrated anything within 10 s of killing the leader (tree size stays %d)\nsurvivor's stderr:\n%s",
				before, tail(seqs[1-leader].stderr.String(), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	masterOf(t, seqs[1-leader:2-leader], tree, 5*time.Second) // and it says so
	t.Logf("killed the leader at tree size %d; the survivor integrated past it %v later", before, takeover.Round(time.Millisecond))
	more := ld.count()
	time.Sleep(3 * time.Second)
	ld.waitForMore(t, more, 10*time.Second)
	stop()
	wg.Wait()

	recs, sths := ld.results()
	if len(ld.errs) > 0 {
		t.Logf("the first submissions without an SCT (killed at %s): %q", killed.UTC().Format("15:04:05.000"), ld.errs)
	}
	// Both "shards" of the load are the one log: check every SCT against it.
	all := make([]*received, len(recs))
	via0 := 0
	for i := range recs {
		recs[i].index = -1
		all[i] = &recs[i]
		if recs[i].shard == 0 {
			via0++
		}
	}
	final, missing := proveAll(t, c, all, 30*time.Second)
	proven := time.Now()
	for _, r := range missing[:min(len(missing), 10)] {
		t.Errorf("SCT (timestamp %d, precert %v, through frontend %d) has no provable entry: LOST", r.sct.Timestamp, r.precert, r.shard)
	}
	const mmd = 60 * time.Second
	late := 0
	for _, r := range all {
		if d := proven.Sub(time.UnixMilli(int64(r.sct.Timestamp))); d > mmd {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d SCTs were not proven within the MMD of %v", late, mmd)
	}
	bad := 0
	for i := range fronts {
		bad += checkSTHs(t, verifyingClient(t, via[i]), fmt.Sprintf("frontend %d", i), sths[i], final)
	}
	// Across frontends: one root per size.
	roots := map[uint64][32]byte{}
	for i := range sths {
		for _, s := range sths[i] {
			if r, ok := roots[s.TreeSize]; ok && r != s.SHA256RootHash {
				bad++
				t.Errorf("two roots for tree size %d seen through the two frontends", s.TreeSize)
			}
			roots[s.TreeSize] = s.SHA256RootHash
		}
	}
	checkEntries(t, c, shard, all, final)
	t.Logf("%d SCTs (%d through frontend 0), %d without one, %d distinct STHs; final size %d; takeover %v; %d inconsistent; wall %v",
		len(recs), via0, ld.failed.Load(), countSTHs(sths), final.TreeSize,
		takeover.Round(time.Millisecond), bad, time.Since(start).Round(time.Millisecond))
}

// TestScaleOutTiledFrontends runs two log frontends on one MariaDB, both
// saying the first's URL (--log-url, as behind a load balancer), and
// submits to a tiled shard through both. Tessera's MySQL backend
// sequences under a row lock on its tree state, so every frontend
// writes: every SCT's leaf_index must hold its entry in the one tree, a
// duplicate sent through the other frontend must get the original SCT,
// and the checkpoints read through either frontend must be consistent.
func TestScaleOutTiledFrontends(t *testing.T) {
	ca, root := newCA(t)
	d := newScaleOut(t, root)
	addrs := []string{freeAddr(t), freeAddr(t)}
	public := "http://" + addrs[0]
	fronts := []*server{d.startAt(t, addrs[0], "log", "--log-url", public), d.startAt(t, addrs[1], "log", "--log-url", public)}

	notAfter := time.Now().AddDate(0, 0, 90)
	raw, err := httpGetBytes("http://" + fronts[1].addr + "/log.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	var ll loglist3.LogList
	if err := json.Unmarshal(raw, &ll); err != nil {
		t.Fatal(err)
	}
	var entry *loglist3.TiledLog
	for _, tl := range ll.Operators[0].TiledLogs {
		if ti := tl.TemporalInterval; ti != nil && !notAfter.Before(ti.StartInclusive) && notAfter.Before(ti.EndExclusive) {
			entry = tl
		}
	}
	if entry == nil {
		t.Fatal("no tiled shard of operator 0 takes the NotAfter")
	}
	if !strings.HasPrefix(entry.SubmissionURL, public+"/") {
		t.Fatalf("frontend 1's log list says %s, want the --log-url %s", entry.SubmissionURL, public)
	}
	logs, err := sctverify.ParseLogList(raw)
	if err != nil {
		t.Fatal(err)
	}
	tiledLog := logs.Lookup([32]byte(entry.LogID))
	urls := []string{entry.SubmissionURL, strings.Replace(entry.SubmissionURL, addrs[0], addrs[1], 1)}
	clients := make([]*client.LogClient, 2)
	for i, u := range urls {
		clients[i] = logClient(t, &loglist3.Log{URL: u, Key: entry.Key})
	}

	type got struct {
		chain [][]byte
		sct   *ct.SignedCertificateTimestamp
		via   int
	}
	var (
		mu   sync.Mutex
		scts []got
	)
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 6 {
				chain, err := ca.Leaf(fmt.Sprintf("tiled-%d-%d.example.com", w, i), notAfter, false)
				if err != nil {
					t.Error(err)
					return
				}
				via := (w + i) % 2
				sct, err := clients[via].AddChain(ctx, asn1Chain(chain))
				if err != nil {
					t.Errorf("add-chain through frontend %d: %v", via, err)
					return
				}
				mu.Lock()
				scts = append(scts, got{chain, sct, via})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// A duplicate through the other frontend gets the original SCT.
	first := scts[0]
	dup, err := clients[1-first.via].AddChain(ctx, asn1Chain(first.chain))
	if err != nil {
		t.Fatalf("the duplicate through frontend %d: %v", 1-first.via, err)
	}
	if dup.Timestamp != first.sct.Timestamp || string(dup.Extensions) != string(first.sct.Extensions) {
		t.Errorf("a duplicate through the other frontend got timestamp %d, extensions %x; the original had %d, %x",
			dup.Timestamp, dup.Extensions, first.sct.Timestamp, first.sct.Extensions)
	}

	v := &sctverify.Verifier{}
	final, _, err := v.Checkpoint(ctx, tiledLog)
	if err != nil {
		t.Fatal(err)
	}
	indexes := map[uint64]bool{}
	for _, g := range scts {
		idx, err := sctverify.LeafIndex(g.sct.Extensions)
		if err != nil {
			t.Fatal(err)
		}
		if indexes[idx] {
			t.Errorf("two SCTs with leaf_index %d", idx)
		}
		indexes[idx] = true
		if err := v.ProveTiledInclusion(ctx, tiledLog, final, idx, [32]byte(leafHash(t, g.chain, false, g.sct))); err != nil {
			t.Errorf("SCT from frontend %d at leaf_index %d: %v", g.via, idx, err)
		}
	}
	// Frontend 1's checkpoint, read through it, is of the same tree.
	other := *tiledLog
	other.URL = strings.Replace(tiledLog.URL, addrs[0], addrs[1], 1)
	cp, _, err := v.Checkpoint(ctx, &other)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cp, final
	if a.TreeSize > b.TreeSize {
		a, b = b, a
	}
	if err := v.ProveTiledConsistency(ctx, tiledLog, a, b); err != nil {
		t.Errorf("the checkpoints through the two frontends (sizes %d and %d): %v", cp.TreeSize, final.TreeSize, err)
	}
	t.Logf("%d SCTs through two frontends, all at their leaf_index in the tree of %d; the duplicate got the original SCT", len(scts), final.TreeSize)
}

// roundRobin is an HTTPS reverse proxy that sends each request to the
// next of its backends, keeping the client's Host (the ACME server's URLs
// name the proxy), and counts what each backend answered.
type roundRobin struct {
	backends []*url.URL
	// transport is shared by every request, so that connections to the
	// backends are reused as a balancer's are.
	transport *http.Transport
	next      atomic.Uint64
	mu        sync.Mutex
	posts     []int    // POSTs answered, per backend
	nonceBad  []string // badNonce answers seen
}

func (p *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(p.next.Add(1)-1) % len(p.backends)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.backends[i])
			pr.Out.Host = pr.In.Host
		},
		Transport: p.transport,
		ModifyResponse: func(rsp *http.Response) error {
			body, err := io.ReadAll(rsp.Body)
			rsp.Body.Close()
			if err != nil {
				return err
			}
			rsp.Body = io.NopCloser(bytes.NewReader(body))
			p.mu.Lock()
			defer p.mu.Unlock()
			if r.Method == http.MethodPost {
				p.posts[i]++
			}
			if bytes.Contains(body, []byte("badNonce")) {
				p.nonceBad = append(p.nonceBad, fmt.Sprintf("backend %d %s: %s", i, r.URL.Path, body))
			}
			return nil
		},
	}
	rp.ServeHTTP(w, r)
}

// TestScaleOutTwoCAs runs two ca processes behind one ACME directory (a
// round-robin proxy, so that each client request goes to the other
// process than the one before), on one MariaDB, with the logs in a third
// process. lego's orders must succeed with no badNonce (a nonce one
// process issued is redeemed at the other), its account and orders must
// be found by both, and the orders-per-account limit of 2 must hold
// across the two processes: the third order is refused.
func TestScaleOutTwoCAs(t *testing.T) {
	lego := lookClient(t, "lego")
	_, root := newCA(t)
	d := newScaleOut(t, root)
	logs := d.start(t, "log,sequencer")
	cfg := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte("acme:\n  rate_limits:\n    orders_per_account: {count: 2, window: 1h}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &roundRobin{posts: make([]int, 2),
		transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // loopback, test only
	t.Cleanup(p.transport.CloseIdleConnections)
	var cas []*server
	for range 2 {
		acmeAddr := freeAddr(t)
		cas = append(cas, d.start(t, "ca", "--acme-addr", acmeAddr, "--acme-always-valid", "--config", cfg,
			"--log-list", "http://"+logs.addr+"/log.v3.json"))
		p.backends = append(p.backends, &url.URL{Scheme: "https", Host: acmeAddr})
	}

	// The proxy's own certificate, trusted by lego beside the staging root.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: p, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
	go hs.ServeTLS(lis, "", "")
	t.Cleanup(func() { hs.Close() })
	stagingRoot, err := os.ReadFile(filepath.Join(d.keys, "ca", "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "trust.pem")
	if err := os.WriteFile(bundle, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), stagingRoot...), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	env := []string{"LEGO_CA_CERTIFICATES=" + bundle}
	order := func(name string) (string, error) {
		return runClient(env, lego, "--server", "https://"+lis.Addr().String()+"/directory", "--accept-tos",
			"--email", "ops@example.com", "--path", dir, "--domains", name,
			"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "run")
	}
	for _, name := range []string{"one.example.com", "two.example.com"} {
		if out, err := order(name); err != nil {
			t.Fatalf("lego run for %s through the two ca processes: %v\n%s\n--- ca 0:\n%s\n--- ca 1:\n%s", name, err, out,
				tail(cas[0].logs(), 3000), tail(cas[1].logs(), 3000))
		}
		if _, err := os.Stat(filepath.Join(dir, "certificates", name+".crt")); err != nil {
			t.Fatalf("lego stored no certificate for %s: %v", name, err)
		}
	}
	out, err := order("three.example.com")
	if err == nil || !strings.Contains(out, "rateLimited") {
		t.Errorf("a third order of the account, against a limit of 2 in the two processes together: err %v, want rateLimited\n%s", err, tail(out, 2000))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.nonceBad) > 0 {
		t.Errorf("%d badNonce answers, e.g. %s", len(p.nonceBad), p.nonceBad[0])
	}
	if p.posts[0] == 0 || p.posts[1] == 0 {
		t.Fatalf("POSTs per ca process %v: the proxy did not alternate", p.posts)
	}
	t.Logf("two orders and one refused, POSTs answered per ca process %v, no badNonce", p.posts)
}

// TestScaleOutEtcdOutage stops etcd under load with two sequencers on
// one tree. Within about the lease's TTL the master stops signing
// rather than sign on while another might win; no other sequencer
// starts signing while etcd is down; every STH seen stays consistent
// with every other; and sequencing resumes once etcd is back.
func TestScaleOutEtcdOutage(t *testing.T) {
	ca, root := newCA(t)
	storage := testenv.MySQL(t)
	etcd := testenv.StartEtcd(t)
	d := &scaleOut{storage: storage, election: "etcd://" + strings.TrimPrefix(etcd.Endpoint, "http://"), keys: t.TempDir(), root: root}
	seqs := []*server{d.start(t, "sequencer"), d.start(t, "sequencer")}
	front := d.start(t, "log")
	notAfter := time.Now().AddDate(0, 0, 90)
	l := shardIn(t, fetchLogList(t, "http://"+front.addr), 0, notAfter)
	tree := treeID(t, "http://"+front.addr, shardURLName(l))
	masterOf(t, seqs, tree, 30*time.Second)

	ld := newCrashLoad(ca, []*loglist3.Log{l}, notAfter)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { ld.submitter(ctx, t, w) })
	}
	wg.Go(func() { ld.poller(ctx, t) })
	t.Cleanup(func() { stop(); wg.Wait() })
	c := verifyingClient(t, l)
	size := func() uint64 {
		sth, err := c.GetSTH(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return sth.TreeSize
	}
	time.Sleep(2 * time.Second)
	ld.waitForMore(t, 0, 10*time.Second)

	etcd.Stop()
	stopped := time.Now()
	// The master's session ends within the TTL (3 s) of its last
	// keep-alive; then integration stops, while submissions go on.
	time.Sleep(8 * time.Second)
	frozen := size()
	time.Sleep(5 * time.Second)
	if now := size(); now != frozen {
		t.Errorf("the tree grew from %d to %d between 8 and 13 s into the etcd outage: someone signs without an election", frozen, now)
	}
	for i, s := range seqs {
		if m := metricSamples(t, "http://"+s.addr, "trillian_is_master")[`{logid="`+tree+`"}`]; m != 0 {
			t.Errorf("sequencer %d says it is the master %v into the etcd outage", i, time.Since(stopped).Round(time.Second))
		}
	}
	// The frontend has held unintegrated SCTs for over 10 s: it still
	// takes submissions, so it stays ready (and alive), or a balancer
	// would drop every frontend while the sequencers wait for etcd.
	if code := healthStatus(front); code != http.StatusOK {
		t.Errorf("the frontend's /healthz answered %d %v into the etcd outage, want 200", code, time.Since(stopped).Round(time.Second))
	}
	if rsp, err := http.Get("http://" + front.addr + "/livez"); err != nil || rsp.StatusCode != http.StatusOK {
		t.Errorf("the frontend's /livez during the etcd outage: %v %v", rsp, err)
	} else {
		rsp.Body.Close()
	}
	etcd.Restart()
	restarted := time.Now()
	for size() <= frozen {
		if time.Since(restarted) > 30*time.Second {
			t.Fatalf("no sequencing 30 s after etcd came back (tree size %d)\nsequencer 0:\n%s\nsequencer 1:\n%s", frozen,
				tail(seqs[0].logs(), 2000), tail(seqs[1].logs(), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	resumed := time.Since(restarted)
	stop()
	wg.Wait()

	recs, sths := ld.results()
	all := filterShard(recs, 0)
	final, missing := proveAll(t, c, all, 60*time.Second)
	for _, r := range missing[:min(len(missing), 10)] {
		t.Errorf("SCT (timestamp %d) has no provable entry: LOST", r.sct.Timestamp)
	}
	bad := checkSTHs(t, c, "the shard", sths[0], final)
	t.Logf("tree frozen at %d during the outage; sequencing resumed %v after etcd returned; %d SCTs, all proven in the tree of %d unless listed; %d STHs, %d inconsistent",
		frozen, resumed.Round(time.Millisecond), len(all), final.TreeSize, len(sths[0]), bad)
}
