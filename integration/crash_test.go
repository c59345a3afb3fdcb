package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctstage/ctstage/internal/testsupport/testca"
)

// Parameters of TestCrashRecovery.
const (
	crashSubmitters = 12              // concurrent clients
	crashKills      = 5               // kill -9 under load, each followed by a restart
	crashMinUp      = 1 * time.Second // load between two kills: at least ...
	crashMaxUp      = 3 * time.Second // ... and at most
	crashTail       = 2 * time.Second // load after the last restart
)

// TestCrashRecovery runs `ctstage serve` on the default SQLite storage,
// submits certificates and precertificates from concurrent clients to one
// shard of each operator, and kills the process with SIGKILL at random
// moments under load, restarting it each time on the same --data and
// address. Afterwards every SCT a client received must have an entry whose
// inclusion proof verifies against the final STH and that get-entries
// returns with the SCT's timestamp, and every STH seen before, between and
// after the crashes must be consistent with the final one: no lost SCT, no
// forked or rolled-back tree.
func TestCrashRecovery(t *testing.T) {
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	ca, root := newCA(t)
	data := t.TempDir()
	addr := restartableAddr(t)
	args := append([]string{"--data", data, "--extra-roots", root, "--log-level", "warn"}, isolationArgs...)
	srv := startServerAt(t, addr, args...)

	notAfter := time.Now().AddDate(0, 0, 90)
	ll := fetchLogList(t, "http://"+addr)
	shards := []*loglist3.Log{shardIn(t, ll, 0, notAfter), shardIn(t, ll, 1, notAfter)}

	ld := newCrashLoad(ca, shards, notAfter)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range crashSubmitters {
		wg.Go(func() { ld.submitter(ctx, t, w) })
	}
	wg.Go(func() { ld.poller(ctx, t) })
	t.Cleanup(func() { stop(); wg.Wait() }) // also on t.Fatal

	kills := 0
	for range crashKills {
		before := ld.count()
		time.Sleep(crashMinUp + time.Duration(rng.Int64N(int64(crashMaxUp-crashMinUp))))
		ld.waitForMore(t, before, 10*time.Second) // kill under load, not while idle
		srv.kill9(t)
		kills++
		srv = startServerAt(t, addr, args...)
	}
	before := ld.count()
	time.Sleep(crashTail)
	ld.waitForMore(t, before, 10*time.Second)
	stop()
	wg.Wait()
	load := time.Since(start)

	recs, sths := ld.results()
	t.Logf("%d kills, %d SCTs received (%d add-chain, %d add-pre-chain), %d submissions without an SCT, %d distinct STHs seen; load phase %v",
		kills, len(recs), countPrecerts(recs, false), countPrecerts(recs, true), ld.failed.Load(), countSTHs(sths), load.Round(time.Millisecond))

	lost, inconsistent := 0, 0
	for i, l := range shards {
		c := verifyingClient(t, l)
		mine := filterShard(recs, i)
		proveStart := time.Now()
		final, missing := proveAll(t, c, mine, 20*time.Second)
		lost += len(missing)
		for _, r := range missing[:min(len(missing), 10)] {
			t.Errorf("%s: SCT (timestamp %d, precert %v) has no provable entry: LOST", path(l.URL), r.sct.Timestamp, r.precert)
		}
		inconsistent += checkSTHs(t, c, path(l.URL), sths[i], final)
		checkEntries(t, c, path(l.URL), mine, final)
		t.Logf("%s: final tree size %d, %d SCTs and %d STHs checked in %v", path(l.URL), final.TreeSize, len(mine), len(sths[i]), time.Since(proveStart).Round(time.Millisecond))
	}
	t.Logf("lost SCTs: %d, inconsistent STHs: %d; wall time %v", lost, inconsistent, time.Since(start).Round(time.Millisecond))
	if lost > 0 || inconsistent > 0 {
		t.Errorf("after %d kills: %d lost SCTs, %d inconsistent STHs\nlast server's stderr:\n%s", kills, lost, inconsistent, tail(srv.stderr.String(), 4000))
	}
}

// crashLoad is the submitters' and the poller's record of what the log
// promised.
type crashLoad struct {
	ca       *testca.CA
	shards   []*loglist3.Log
	notAfter time.Time
	http     *http.Client

	failed atomic.Int64 // submissions that ended without an SCT
	errs   []string     // the first few of their errors, under mu

	progress // its mu also guards scts and sths; counts SCTs received
	scts     []received
	sths     [][]*ct.SignedTreeHead // per shard, in the order seen, distinct
}

// progress counts what a load under crashes had acknowledged, so that a
// kill can wait until the server is taking requests. Embed it in a struct
// that is not copied, and call init.
type progress struct {
	mu     sync.Mutex
	cond   *sync.Cond
	counts int
}

func (p *progress) init() { p.cond = sync.NewCond(&p.mu) }

// ack counts one acknowledged result; the caller holds mu.
func (p *progress) ack() {
	p.counts++
	p.cond.Broadcast()
}

// received is an SCT a client got for a chain.
type received struct {
	shard   int
	chain   [][]byte
	precert bool
	sct     *ct.SignedCertificateTimestamp
	hash    []byte // RFC 6962 leaf hash, computed at verification
	index   int64  // from get-proof-by-hash
}

func newCrashLoad(ca *testca.CA, shards []*loglist3.Log, notAfter time.Time) *crashLoad {
	ld := &crashLoad{
		ca:       ca,
		shards:   shards,
		notAfter: notAfter,
		sths:     make([][]*ct.SignedTreeHead, len(shards)),
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 2 * crashSubmitters, DisableCompression: true},
		},
	}
	ld.init()
	return ld
}

// submitter sends unique submissions until ctx ends, alternating between
// add-chain and add-pre-chain and between the shards. Each has its own
// clients, so that ct-go's back-off after a refused connection is per
// submitter; a submission that errs (the server was killed, or it stayed
// down past the deadline) is counted as "no SCT" and the next one follows.
func (ld *crashLoad) submitter(ctx context.Context, t testing.TB, w int) {
	clients := make([]*client.LogClient, len(ld.shards))
	for i, l := range ld.shards {
		c, err := client.New(l.URL, ld.http, jsonclient.Options{PublicKeyDER: l.Key, UserAgent: "ctstage-crash-test", Logger: quietLogger{}})
		if err != nil {
			t.Error(err)
			return
		}
		clients[i] = c
	}
	for i := 0; ctx.Err() == nil; i++ {
		shard, precert := (w+i)%len(ld.shards), (i/2)%2 == 1
		chain, err := ld.ca.Leaf(fmt.Sprintf("crash-%d-%d.example.com", w, i), ld.notAfter, precert)
		if err != nil {
			t.Error(err)
			return
		}
		c := clients[shard]
		add := c.AddChain
		if precert {
			add = c.AddPreChain
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sct, err := add(rctx, asn1Chain(chain)) // the client checks the SCT's signature
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return // the load ended mid-request: not the server's failure
			}
			ld.failed.Add(1)
			ld.mu.Lock()
			if len(ld.errs) < 5 {
				ld.errs = append(ld.errs, fmt.Sprintf("%s: %v", time.Now().UTC().Format("15:04:05.000"), err))
			}
			ld.mu.Unlock()
			continue
		}
		ld.mu.Lock()
		ld.scts = append(ld.scts, received{shard: shard, chain: chain, precert: precert, sct: sct})
		ld.ack()
		ld.mu.Unlock()
	}
}

// poller records every distinct signature-checked STH of each shard.
func (ld *crashLoad) poller(ctx context.Context, t testing.TB) {
	clients := make([]*client.LogClient, len(ld.shards))
	for i, l := range ld.shards {
		c, err := client.New(l.URL, ld.http, jsonclient.Options{PublicKeyDER: l.Key, Logger: quietLogger{}})
		if err != nil {
			t.Error(err)
			return
		}
		clients[i] = c
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for i, c := range clients {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			sth, err := c.GetSTH(rctx) // checks the signature
			cancel()
			if err != nil {
				continue
			}
			ld.mu.Lock()
			if n := len(ld.sths[i]); n == 0 || !sameSTH(ld.sths[i][n-1], sth) {
				ld.sths[i] = append(ld.sths[i], sth)
			}
			ld.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func sameSTH(a, b *ct.SignedTreeHead) bool {
	return a.TreeSize == b.TreeSize && a.Timestamp == b.Timestamp && a.SHA256RootHash == b.SHA256RootHash
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// waitForMore waits until more than n results have been acknowledged, so
// that a kill lands while the server is taking requests.
func (p *progress) waitForMore(t testing.TB, n int, within time.Duration) {
	t.Helper()
	timer := time.AfterFunc(within, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(within)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.counts <= n {
		if time.Now().After(deadline) {
			t.Fatalf("nothing acknowledged within %v (still %d)", within, n)
		}
		p.cond.Wait()
	}
}

func (ld *crashLoad) results() ([]received, [][]*ct.SignedTreeHead) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return append([]received(nil), ld.scts...), ld.sths
}

// proveAll computes each SCT's leaf hash and checks its inclusion proof
// (get-proof-by-hash) against a fresh signature-checked STH, waiting up to
// within for entries still being integrated. It returns the last STH used
// and the SCTs that could not be proven.
func proveAll(t testing.TB, c *client.LogClient, recs []*received, within time.Duration) (*ct.SignedTreeHead, []*received) {
	t.Helper()
	for _, r := range recs {
		r.hash = leafHash(t, r.chain, r.precert, r.sct)
	}
	pending := recs
	deadline := time.Now().Add(within)
	for {
		sth, err := c.GetSTH(context.Background())
		if err != nil {
			t.Fatalf("GetSTH: %v", err)
		}
		pending = unproven(c, sth, pending)
		if len(pending) == 0 || time.Now().After(deadline) {
			return sth, pending
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// unproven returns the records whose inclusion in sth does not verify,
// checking them with a few requests in flight.
func unproven(c *client.LogClient, sth *ct.SignedTreeHead, recs []*received) []*received {
	ok := make([]bool, len(recs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(recs); i = int(next.Add(1) - 1) {
				r := recs[i]
				if sth.TreeSize == 0 {
					continue
				}
				rsp, err := c.GetProofByHash(context.Background(), r.hash, sth.TreeSize)
				if err != nil {
					continue
				}
				if proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rsp.LeafIndex), sth.TreeSize, r.hash, rsp.AuditPath, sth.SHA256RootHash[:]) == nil {
					r.index, ok[i] = rsp.LeafIndex, true
				}
			}
		})
	}
	wg.Wait()
	var out []*received
	for i, r := range recs {
		if !ok[i] {
			out = append(out, r)
		}
	}
	return out
}

// checkSTHs verifies every STH seen against final: a consistency proof for
// smaller trees, the same root for the same size, no tree larger than the
// final one, no tree that shrank between two observations, and no two roots
// for one size. It returns
// the number of inconsistent STHs.
func checkSTHs(t testing.TB, c *client.LogClient, name string, seen []*ct.SignedTreeHead, final *ct.SignedTreeHead) int {
	t.Helper()
	bad := 0
	roots := make(map[uint64]ct.SHA256Hash)
	for i, sth := range seen {
		if i > 0 && sth.TreeSize < seen[i-1].TreeSize {
			bad++
			t.Errorf("%s: tree size went back from %d to %d", name, seen[i-1].TreeSize, sth.TreeSize)
		}
		if r, ok := roots[sth.TreeSize]; ok && r != sth.SHA256RootHash {
			bad++
			t.Errorf("%s: two STHs of size %d with different roots", name, sth.TreeSize)
		}
		roots[sth.TreeSize] = sth.SHA256RootHash
		if err := consistentWith(c, sth, final); err != nil {
			bad++
			t.Errorf("%s: STH of size %d (timestamp %d) and the final STH of size %d: %v", name, sth.TreeSize, sth.Timestamp, final.TreeSize, err)
		}
	}
	return bad
}

func consistentWith(c *client.LogClient, sth, final *ct.SignedTreeHead) error {
	switch {
	case sth.TreeSize == 0:
		return nil
	case sth.TreeSize > final.TreeSize:
		return errors.New("larger than the final tree")
	case sth.TreeSize == final.TreeSize:
		if sth.SHA256RootHash != final.SHA256RootHash {
			return errors.New("same size, different root")
		}
		return nil
	}
	cons, err := c.GetSTHConsistency(context.Background(), sth.TreeSize, final.TreeSize)
	if err != nil {
		return fmt.Errorf("get-sth-consistency: %w", err)
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, sth.TreeSize, final.TreeSize, cons, sth.SHA256RootHash[:], final.SHA256RootHash[:])
}

// checkEntries reads the whole tree with get-entries and checks that the
// entry at each SCT's proven index hashes to the SCT's leaf hash (so it
// carries the SCT's timestamp and extensions), and reports entries logged
// more than once.
func checkEntries(t testing.TB, c *client.LogClient, name string, recs []*received, final *ct.SignedTreeHead) {
	t.Helper()
	hashes := make([][]byte, 0, final.TreeSize)
	seen := make(map[[sha256.Size]byte]int)
	dups := 0
	for start := int64(0); start < int64(final.TreeSize); {
		rsp, err := c.GetRawEntries(context.Background(), start, int64(final.TreeSize)-1)
		if err != nil {
			t.Fatalf("%s: get-entries from %d: %v", name, start, err)
		}
		if len(rsp.Entries) == 0 {
			t.Fatalf("%s: get-entries from %d returned nothing", name, start)
		}
		for _, e := range rsp.Entries {
			hashes = append(hashes, rfc6962.DefaultHasher.HashLeaf(e.LeafInput))
			if k, ok := entryIdentity(e.LeafInput); ok {
				seen[k]++
				if seen[k] == 2 {
					dups++
				}
			}
		}
		start += int64(len(rsp.Entries))
	}
	for _, r := range recs {
		if r.index < 0 {
			continue // not proven, already reported as lost
		}
		if r.index >= int64(len(hashes)) || !bytes.Equal(hashes[r.index], r.hash) {
			t.Errorf("%s: get-entries at %d does not hold the entry of the SCT with timestamp %d", name, r.index, r.sct.Timestamp)
		}
	}
	if dups > 0 {
		t.Logf("%s: %d certificates were logged more than once", name, dups)
	}
}

// entryIdentity is the hash of a leaf's certificate or precertificate TBS,
// which identifies a submission independently of its timestamp.
func entryIdentity(leafInput []byte) ([sha256.Size]byte, bool) {
	var leaf ct.MerkleTreeLeaf
	if _, err := tls.Unmarshal(leafInput, &leaf); err != nil {
		return [sha256.Size]byte{}, false
	}
	e := leaf.TimestampedEntry
	if e.EntryType == ct.PrecertLogEntryType && e.PrecertEntry != nil {
		return sha256.Sum256(append(e.PrecertEntry.IssuerKeyHash[:], e.PrecertEntry.TBSCertificate...)), true
	}
	if e.X509Entry != nil {
		return sha256.Sum256(e.X509Entry.Data), true
	}
	return [sha256.Size]byte{}, false
}

func filterShard(recs []received, shard int) []*received {
	var out []*received
	for i := range recs {
		if recs[i].shard == shard {
			recs[i].index = -1
			out = append(out, &recs[i])
		}
	}
	return out
}

func countPrecerts(recs []received, precert bool) int {
	n := 0
	for _, r := range recs {
		if r.precert == precert {
			n++
		}
	}
	return n
}

func countSTHs(sths [][]*ct.SignedTreeHead) int {
	n := 0
	for _, s := range sths {
		n += len(s)
	}
	return n
}

// verifyingClient is ct-go's client for l with l's key and no retries' noise.
func verifyingClient(t testing.TB, l *loglist3.Log) *client.LogClient {
	t.Helper()
	c, err := client.New(l.URL, http.DefaultClient, jsonclient.Options{PublicKeyDER: l.Key, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// quietLogger drops jsonclient's back-off messages.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// startServerAt starts `ctstage serve` listening on addr, which may be the
// address of a killed predecessor, and waits until it is healthy. The
// process is killed at the end of the test if it still runs.
func startServerAt(t testing.TB, addr string, args ...string) *server {
	t.Helper()
	s := launchServer(t, addr, args...)
	s.waitHealthy(t)
	return s
}

// launchServer starts `ctstage serve` on addr without waiting for it.
func launchServer(t testing.TB, addr string, args ...string) *server {
	t.Helper()
	s := &server{addr: addr, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(ctstageBinary(t), append([]string{"serve", "--log-addr", addr}, args...)...)
	s.cmd.Stderr = &syncWriter{w: s.stderr}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		err := <-s.done
		s.done <- err
	})
	return s
}

// restartableAddr returns a free loopback address outside Linux's default
// ephemeral port range (32768-60999), so that while the server restarts on
// it no outgoing connection takes the port as its local one.
func restartableAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	return freeAddr(t)
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (s *server) kill9(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	err := <-s.done
	s.done <- err
}

// fetchLogList gets and parses base/log.v3.json.
func fetchLogList(t testing.TB, base string) *loglist3.LogList {
	t.Helper()
	rsp, err := http.Get(base + "/log.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rsp.Body); err != nil {
		t.Fatal(err)
	}
	ll, err := loglist3.NewFromJSON(buf.Bytes())
	if err != nil {
		t.Fatalf("log list: %v", err)
	}
	return ll
}

// shardIn returns the shard of operator op whose temporal interval holds notAfter.
func shardIn(t testing.TB, ll *loglist3.LogList, op int, notAfter time.Time) *loglist3.Log {
	t.Helper()
	for _, l := range ll.Operators[op].Logs {
		ti := l.TemporalInterval
		if ti != nil && !notAfter.Before(ti.StartInclusive) && notAfter.Before(ti.EndExclusive) {
			return l
		}
	}
	t.Fatalf("no shard of operator %d takes NotAfter %v", op, notAfter)
	return nil
}

var ()

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
