package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
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
	args := []string{"--role", role, "--storage", d.storage, "--keys", d.keys, "--data", t.TempDir(),
		"--extra-roots", d.root, "--log-level", "warn"}
	if strings.Contains(role, "sequencer") || role == "all" {
		args = append(args, "--election", d.election)
	}
	return startServer(t, append(args, extra...)...)
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
	all := make([]*received, len(recs))
	for i := range recs {
		recs[i].index = -1
		all[i] = &recs[i]
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
		len(recs), len(filterShard(append([]received(nil), recs...), 0)), ld.failed.Load(), countSTHs(sths), final.TreeSize,
		takeover.Round(time.Millisecond), bad, time.Since(start).Round(time.Millisecond))
}
