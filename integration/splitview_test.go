package integration

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"filippo.io/sunlight"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// forkAddr is the client address the split view shows its fork to; the
// tests' other clients come from 127.0.0.1.
const forkAddr = "127.0.0.2"

// httpFrom is an HTTP client whose connections come from the address ip.
func httpFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// TestSplitViewRFC6962 shows, with ct-go's client, an RFC 6962 shard's
// split view: the client shown the fork gets a validly signed tree head
// whose tree is consistent with the heads it saw before, whose entries
// and proofs agree with it, and which no proof joins to the main view.
func TestSplitViewRFC6962(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	const shard = "classic-a"
	ctx := context.Background()
	main := fs.client(t, shard)
	for i := range 3 {
		submit(t, main, fs.chain(t, fmt.Sprintf("sv%d.example.com", i)), false)
	}
	before := waitForSTH(t, main, 3, 30*time.Second)
	n := before.TreeSize

	forked, err := client.New(fs.ll[shard].log.URL, httpFrom(forkAddr), jsonclient.Options{PublicKeyDER: fs.ll[shard].log.Key, UserAgent: "ctstage-test"})
	if err != nil {
		t.Fatal(err)
	}
	fs.set(t, shard, "faults", `{"kind":"split_view","clients":["`+forkAddr+`"]}`)

	// The fork: one entry more, signed with the log's key (the client
	// checks), and consistent with the head seen before it.
	fsth, err := forked.GetSTH(ctx)
	if err != nil {
		t.Fatalf("the fork's STH: %v", err)
	}
	if fsth.TreeSize != n+1 {
		t.Fatalf("the fork's tree size %d, want %d", fsth.TreeSize, n+1)
	}
	cons, err := forked.GetSTHConsistency(ctx, n, fsth.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, n, fsth.TreeSize, cons, before.SHA256RootHash[:], fsth.SHA256RootHash[:]); err != nil {
		t.Errorf("the fork is not consistent with the head seen before it: %v", err)
	}
	// Its entries prove to its head: every one by hash, the fabricated
	// one also by get-entry-and-proof.
	entries, err := forked.GetRawEntries(ctx, 0, int64(fsth.TreeSize-1))
	if err != nil || uint64(len(entries.Entries)) != fsth.TreeSize {
		t.Fatalf("the fork's entries: %v (%d of %d)", err, len(entries.Entries), fsth.TreeSize)
	}
	for i, e := range entries.Entries {
		h := rfc6962.DefaultHasher.HashLeaf(e.LeafInput)
		p, err := forked.GetProofByHash(ctx, h, fsth.TreeSize)
		if err != nil {
			t.Fatalf("proof of entry %d: %v", i, err)
		}
		if p.LeafIndex != int64(i) {
			t.Errorf("entry %d proved at index %d", i, p.LeafIndex)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), fsth.TreeSize, h, p.AuditPath, fsth.SHA256RootHash[:]); err != nil {
			t.Errorf("entry %d does not prove to the fork's head: %v", i, err)
		}
	}
	fab := entries.Entries[n]
	ep, err := forked.GetEntryAndProof(ctx, n, fsth.TreeSize)
	if err != nil || !bytes.Equal(ep.LeafInput, fab.LeafInput) {
		t.Fatalf("get-entry-and-proof of the fabricated entry: %v", err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, n, fsth.TreeSize, rfc6962.DefaultHasher.HashLeaf(fab.LeafInput), ep.AuditPath, fsth.SHA256RootHash[:]); err != nil {
		t.Errorf("get-entry-and-proof does not prove to the fork's head: %v", err)
	}
	if last := leafOf(t, entries.Entries[n-1].LeafInput); leafOf(t, fab.LeafInput).TimestampedEntry.Timestamp != last.TimestampedEntry.Timestamp+1 {
		t.Error("the fabricated entry is not the last one a millisecond later")
	}
	if _, err := forked.GetSTHConsistency(ctx, n, fsth.TreeSize+5); statusOf(err) != http.StatusBadRequest {
		t.Errorf("a proof beyond the fork: %v, want a 400", err)
	}
	// Reads within the shared prefix are the log's own.
	if cons, err := forked.GetSTHConsistency(ctx, 1, n); err != nil || proof.VerifyConsistency(rfc6962.DefaultHasher, 1, n, cons, rfc6962.DefaultHasher.HashLeaf(entries.Entries[0].LeafInput), before.SHA256RootHash[:]) != nil {
		t.Errorf("a consistency proof within the shared prefix: %v", err)
	}

	// The main view goes on: a client from another address is not shown
	// the fork, and no proof joins the two signed heads.
	for i := range 2 {
		submit(t, main, fs.chain(t, fmt.Sprintf("sv-after%d.example.com", i)), false)
	}
	msth := waitForSTH(t, main, n+2, 30*time.Second)
	p, err := main.GetSTHConsistency(ctx, fsth.TreeSize, msth.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if proof.VerifyConsistency(rfc6962.DefaultHasher, fsth.TreeSize, msth.TreeSize, p, fsth.SHA256RootHash[:], msth.SHA256RootHash[:]) == nil {
		t.Error("the main view's consistency proof joins the fork")
	}
	// ...while the same proof does join the main view's own head of
	// that size, rebuilt from its entries: the fork alone is the liar.
	mentries, err := main.GetRawEntries(ctx, 0, int64(fsth.TreeSize-1))
	if err != nil || uint64(len(mentries.Entries)) != fsth.TreeSize {
		t.Fatalf("the main view's entries: %v", err)
	}
	if root := rootOf(mentries.Entries); bytes.Equal(root, fsth.SHA256RootHash[:]) {
		t.Error("the main view's tree of the fork's size has the fork's root")
	} else if err := proof.VerifyConsistency(rfc6962.DefaultHasher, fsth.TreeSize, msth.TreeSize, p, root, msth.SHA256RootHash[:]); err != nil {
		t.Errorf("the main view is not consistent with itself: %v", err)
	}
	if again, err := forked.GetSTH(ctx); err != nil || again.TreeSize != fsth.TreeSize || again.SHA256RootHash != fsth.SHA256RootHash {
		t.Errorf("the fork is not sticky: %v", err)
	}
	if metric(t, fs.Stage, `ctstage_log_fault_hits_total{kind="split_view",shard="classic-a"}`) == 0 {
		t.Error("no split_view hits in /metrics")
	}

	// Cleared, the fork's client is back on the main view.
	fs.clear(t, shard)
	if back, err := forked.GetSTH(ctx); err != nil || back.TreeSize < msth.TreeSize {
		t.Errorf("after clearing, the fork's client gets %v, %v", back, err)
	}
}

// rootOf is the RFC 6962 root of a tree of the given entries.
func rootOf(entries []ct.LeafEntry) []byte {
	var hashes [][]byte
	for _, e := range entries {
		hashes = append(hashes, rfc6962.DefaultHasher.HashLeaf(e.LeafInput))
	}
	var mth func([][]byte) []byte
	mth = func(h [][]byte) []byte {
		if len(h) == 1 {
			return h[0]
		}
		k := 1
		for k*2 < len(h) {
			k *= 2
		}
		return rfc6962.DefaultHasher.HashChildren(mth(h[:k]), mth(h[k:]))
	}
	return mth(hashes)
}

// TestSplitViewTiled shows a tiled shard's split view with Sunlight's
// client and x/mod's tlog: the fork's checkpoint is validly signed, its
// tiles prove every entry and its consistency with the checkpoint seen
// before, and the main view's tiles prove it is not the main tree.
func TestSplitViewTiled(t *testing.T) {
	fs, l, c := startTiledFaultStage(t, "tiled-a", "tsv")
	const shard = "tiled-a"
	ctx := context.Background()
	mainSC := sunlightClient(t, l.tiled)
	before, _, err := mainSC.Checkpoint(ctx)
	if err != nil || before.N < 3 {
		t.Fatalf("checkpoint: %v", err)
	}
	fs.set(t, shard, "faults", `{"kind":"split_view","clients":["`+forkAddr+`"]}`)

	pub, err := x509.ParsePKIXPublicKey(l.tiled.Key)
	if err != nil {
		t.Fatal(err)
	}
	forkSC, err := sunlight.NewClient(&sunlight.ClientConfig{MonitoringPrefix: l.tiled.MonitoringURL, PublicKey: pub,
		HTTPClient: httpFrom(forkAddr), UserAgent: "ctstage tests (+https://github.com/ctstage/ctstage)"})
	if err != nil {
		t.Fatal(err)
	}
	fcp, _, err := forkSC.Checkpoint(ctx) // signature checked
	if err != nil {
		t.Fatalf("the fork's checkpoint: %v", err)
	}
	if fcp.N != before.N+1 {
		t.Fatalf("the fork's size %d, want %d", fcp.N, before.N+1)
	}
	// Sunlight's client proves every entry of the fork from its tiles.
	// Entries may stop before a partial data tile; resumed with the same
	// tree, it reads the rest.
	var got []*sunlight.LogEntry
	for round := 0; int64(len(got)) < fcp.N && round < 3; round++ {
		for _, e := range forkSC.Entries(ctx, fcp.Tree, int64(len(got))) {
			got = append(got, e)
		}
		if err := forkSC.Err(); err != nil {
			t.Fatalf("the fork's entries: %v", err)
		}
	}
	if int64(len(got)) != fcp.N {
		t.Fatalf("the fork's entries: %d of %d", len(got), fcp.N)
	}
	fab, last := got[before.N], got[before.N-1]
	if fab.LeafIndex != before.N || fab.Timestamp != last.Timestamp+1 || !bytes.Equal(fab.Certificate, last.Certificate) {
		t.Errorf("the fabricated entry: index %d ts %d, after index %d ts %d", fab.LeafIndex, fab.Timestamp, last.LeafIndex, last.Timestamp)
	}
	forkHashes := tlog.TileHashReader(fcp.Tree, &tileReader{prefix: l.tiled.MonitoringURL, c: httpFrom(forkAddr)})
	p, err := tlog.ProveTree(fcp.N, before.N, forkHashes)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(p, fcp.N, fcp.Hash, before.N, before.Hash); err != nil {
		t.Errorf("the fork is not consistent with the checkpoint seen before it: %v", err)
	}

	// The main view: its tree of the fork's size has another hash, and
	// its tiles prove no consistency with the fork.
	for i := range 2 {
		submit(t, c, fs.chain(t, fmt.Sprintf("tsv-after%d.example.com", i)), false)
	}
	var now tlog.Tree
	for deadline := time.Now().Add(30 * time.Second); now.N <= fcp.N; time.Sleep(100 * time.Millisecond) {
		cp, _, err := mainSC.Checkpoint(ctx)
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("the main view did not grow past the fork: %v", err)
		}
		now = cp.Tree
	}
	mainHashes := tlog.TileHashReader(now, &tileReader{prefix: l.tiled.MonitoringURL, c: http.DefaultClient})
	h, err := tlog.TreeHash(fcp.N, mainHashes)
	if err != nil {
		t.Fatal(err)
	}
	if h == fcp.Hash {
		t.Error("the main view's tree of the fork's size has the fork's hash")
	}
	if p, err := tlog.ProveTree(now.N, fcp.N, mainHashes); err == nil && tlog.CheckTree(p, now.N, now.Hash, fcp.N, fcp.Hash) == nil {
		t.Error("the main view's tiles prove consistency with the fork")
	}
	if again, _, err := forkSC.Checkpoint(ctx); err != nil || again.Tree != fcp.Tree {
		t.Errorf("the fork is not sticky: %v", err)
	}
	// A tile above the fork is not shown to its client.
	if code := getStatus(t, httpFrom(forkAddr), l.tiled.MonitoringURL+"tile/data/000.p/"+fmt.Sprint(now.N)); code != http.StatusNotFound {
		t.Errorf("the main view's data tile shown to the fork's client: %d", code)
	}
	fs.clear(t, shard)
	if back, _, err := forkSC.Checkpoint(ctx); err != nil || back.N < now.N {
		t.Errorf("after clearing, the fork's client gets %v, %v", back.N, err)
	}
}

// tileReader is a tlog.TileReader over a log's monitoring prefix (the
// static-ct-api paths have no height element).
type tileReader struct {
	prefix string
	c      *http.Client
}

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		rsp, err := r.c.Get(strings.TrimSuffix(r.prefix, "/") + "/" + p)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if err != nil || rsp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %d %v", p, rsp.StatusCode, err)
		}
		out[i] = b
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

func getStatus(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	rsp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	return rsp.StatusCode
}
