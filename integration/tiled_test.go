package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/sunlight"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/tls"

	"github.com/ctstage/ctstage/internal/keyfile"
	"github.com/ctstage/ctstage/internal/mysqldb"
	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/testca"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/sctverify"
	storagepkg "github.com/ctstage/ctstage/storage"
)

// tiledConfig gives each operator an RFC 6962 shard and a tiled shard,
// both taking any NotAfter.
const tiledConfig = `logs:
  operators:
  - name: Tiled Operator A
    shards:
    - {name: classic-a}
    - {name: tiled-a, type: tiled}
  - name: Tiled Operator B
    shards:
    - {name: classic-b}
    - {name: tiled-b, type: tiled}
`

func httpGetBytes(url string) ([]byte, error) {
	rsp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer rsp.Body.Close()
	return io.ReadAll(rsp.Body)
}

func startTiledStage(t *testing.T, dir, storage, root string) (*serve.Stage, error) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte(tiledConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return serve.Start(ctx, serve.Options{DataDir: dir, ConfigFile: cfg, Storage: storage, Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0", ExtraRoots: root}, CA: serve.CAOptions{NoFinalSubmission: true}})
}

// storages are the two backends a stage runs on; MySQL skips loudly
// without a server, and fails under CI=true.
var storages = []struct {
	name string
	spec func(t *testing.T) string
}{
	{"sqlite", func(*testing.T) string { return "sqlite" }},
	{"mysql", func(t *testing.T) string { return testenv.MySQL(t) }},
}

// TestTiledShards: tiled shards from the config file appear under the
// operators' tiled_logs in /log.v3.json (read with ct-go's loglist3),
// take add-chain and add-pre-chain over HTTP with SCTs that verify with
// the listed key and whose leaf_index points at their entry in the data
// tile; the checkpoint's signature verifies, the root recomputed from the
// level-0 tiles is the checkpoint's, inclusion proofs from the tiles
// verify (Sunlight's client and ctstage's verifier), duplicates get the
// original SCT and bad input a 400 with a message. A restart keeps the
// origin and the tree, and the checkpoint after it is consistent with the
// one before; a changed key or vanished tiles stop the start. All of it
// on the embedded default (tiles under --data) and on MariaDB (a database
// per shard).
func TestTiledShards(t *testing.T) {
	for _, s := range storages {
		t.Run(s.name, func(t *testing.T) { testTiledShards(t, s.spec(t)) })
	}
}

func testTiledShards(t *testing.T, storage string) {
	ca, root := newCA(t)
	dir := t.TempDir()
	st, err := startTiledStage(t, dir, storage, root)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := http.Get(st.LogURL + "/log.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	var ll loglist3.LogList
	err = json.NewDecoder(rsp.Body).Decode(&ll)
	rsp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var tiledLogs []*loglist3.TiledLog
	for _, op := range ll.Operators {
		if len(op.Logs) != 1 || len(op.TiledLogs) != 1 {
			t.Fatalf("operator %s: %d logs and %d tiled logs, want 1 and 1", op.Name, len(op.Logs), len(op.TiledLogs))
		}
		tiledLogs = append(tiledLogs, op.TiledLogs[0])
	}
	tl := tiledLogs[0]
	if tl.MMD != 60 || tl.State == nil || tl.State.Usable == nil || !strings.HasSuffix(tl.SubmissionURL, "/tiled-a/") || tl.MonitoringURL != tl.SubmissionURL {
		t.Errorf("tiled log entry %+v", tl)
	}

	// ct-go's client verifies each SCT with the listed key.
	c := logClient(t, &loglist3.Log{URL: tl.SubmissionURL, Key: tl.Key})
	notAfter := time.Now().AddDate(0, 0, 90)
	type sub struct {
		chain   [][]byte
		precert bool
		sct     *ct.SignedCertificateTimestamp
		raw     []byte
	}
	var subs []sub
	for i, precert := range []bool{false, true, false} {
		chain, err := ca.Leaf(fmt.Sprintf("tiled-%d.example.com", i), notAfter, precert)
		if err != nil {
			t.Fatal(err)
		}
		add := c.AddChain
		if precert {
			add = c.AddPreChain
		}
		sct, err := add(t.Context(), asn1Chain(chain))
		if err != nil {
			t.Fatalf("add to a tiled shard (precert %v): %v", precert, err)
		}
		raw, err := tls.Marshal(*sct)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub{chain, precert, sct, raw})
	}

	// A duplicate gets the original SCT.
	for i, s := range subs[:2] {
		add := c.AddChain
		if s.precert {
			add = c.AddPreChain
		}
		dup, err := add(t.Context(), asn1Chain(s.chain))
		if err != nil {
			t.Fatal(err)
		}
		if dup.Timestamp != s.sct.Timestamp || !bytes.Equal(dup.Extensions, s.sct.Extensions) {
			t.Errorf("duplicate %d: timestamp %d extensions %x, want the original %d %x", i, dup.Timestamp, dup.Extensions, s.sct.Timestamp, s.sct.Extensions)
		}
	}

	// Bad input: 400 with a message.
	other, _ := testca.New("not accepted")
	foreign, _ := other.Leaf("foreign.example.com", notAfter, false)
	for name, body := range map[string]string{
		"not JSON":     "{",
		"empty chain":  `{"chain":[]}`,
		"unknown root": string(mustJSON(t, map[string][][]byte{"chain": foreign})),
	} {
		rsp, err := http.Post(tl.SubmissionURL+"ct/v1/add-chain", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusBadRequest || len(b) < 20 {
			t.Errorf("%s: %d %q, want 400 with a message", name, rsp.StatusCode, b)
		}
	}

	// Sunlight's client checks the checkpoint's note signature with the
	// listed key.
	sc := sunlightClient(t, tl)
	cp, _, err := sc.Checkpoint(t.Context())
	if err != nil || cp.N != int64(len(subs)) {
		t.Fatalf("checkpoint: %+v, %v; want size %d", cp, err, len(subs))
	}
	origin := strings.TrimSuffix(strings.TrimPrefix(tl.SubmissionURL, "http://"), "/")
	if cp.Origin != origin {
		t.Errorf("checkpoint origin %q, want the submission prefix without scheme %q", cp.Origin, origin)
	}

	// Each SCT's leaf_index points at its entry in the data tile, with
	// the SCT's timestamp.
	entries := map[int64]*sunlight.LogEntry{}
	for i, e := range sc.Entries(t.Context(), cp.Tree, 0) {
		entries[i] = e
	}
	if err := sc.Err(); err != nil || len(entries) != len(subs) {
		t.Fatalf("Sunlight read %d entries: %v", len(entries), err)
	}
	for i, s := range subs {
		idx, err := sctverify.LeafIndex(s.sct.Extensions)
		if err != nil {
			t.Fatal(err)
		}
		e := entries[int64(idx)]
		if e == nil || e.IsPrecert != s.precert || e.Timestamp != int64(s.sct.Timestamp) ||
			!s.precert && !bytes.Equal(e.Certificate, s.chain[0]) || s.precert && !bytes.Equal(e.PreCertificate, s.chain[0]) {
			t.Errorf("SCT %d: the entry at its leaf_index %d is %+v", i, idx, e)
		}
		if _, _, err := sc.CheckInclusion(t.Context(), cp.Tree, s.raw); err != nil {
			t.Errorf("SCT %d: inclusion from tiles: %v", i, err)
		}
	}

	// The root recomputed from the level-0 tile is the checkpoint's.
	tile, err := httpGetBytes(fmt.Sprintf("%stile/0/000.p/%d", tl.MonitoringURL, len(subs)))
	if err != nil {
		t.Fatal(err)
	}
	var leaves [][32]byte
	for i := 0; i+32 <= len(tile); i += 32 {
		leaves = append(leaves, [32]byte(tile[i:i+32]))
	}
	if len(leaves) != len(subs) || merkleRoot(leaves) != [32]byte(cp.Hash) {
		t.Errorf("the root of the %d level-0 hashes is not the checkpoint's", len(leaves))
	}

	// ctstage's verifier checks the TLS-delivered SCT of the certificate:
	// its signature (leaf_index extension included), and its inclusion
	// from the checkpoint and the tiles.
	llBytes, err := httpGetBytes(st.LogURL + "/log.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	logs, err := sctverify.ParseLogList(llBytes)
	if err != nil {
		t.Fatal(err)
	}
	var in sctverify.Input
	for _, der := range subs[0].chain[:2] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		in.Chain = append(in.Chain, c)
	}
	in.TLSSCTs = [][]byte{subs[0].raw}
	v := &sctverify.Verifier{Logs: logs, Inclusion: true}
	rep, err := v.Verify(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.SCTs) != 1 || rep.SCTs[0].Status != sctverify.StatusValid || rep.SCTs[0].Inclusion == nil ||
		rep.SCTs[0].Inclusion.Status != sctverify.InclusionIncluded || rep.SCTs[0].Inclusion.LeafIndex != 0 {
		t.Errorf("ctstage's verifier on the tiled SCT: %+v", rep.SCTs)
	}
	tiledLog := logs.Lookup([32]byte(tl.LogID))
	before, _, err := v.Checkpoint(t.Context(), tiledLog)
	if err != nil {
		t.Fatal(err)
	}

	// /metrics has each tiled shard's.
	metricsText, err := httpGetBytes(st.LogURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf(`ctstage_tiled_checkpoint_size{shard="tiled-a"} %d`, len(subs)), `ctstage_tiled_checkpoint_size{shard="tiled-b"} 0`,
		`ctstage_tiled_submissions_total{endpoint="add-pre-chain",outcome="accepted",shard="tiled-a"} 2`} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A restart on another port keeps the key, the origin (it embeds the
	// first start's host:port) and the tree; a duplicate still gets its
	// original SCT, and the tree grown after the restart is consistent
	// with the one before.
	if err := st.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err = startTiledStage(t, dir, storage, root)
	if err != nil {
		t.Fatal(err)
	}
	url := st.LogURL + "/tiled-a/"
	movedTL := *tl
	movedTL.MonitoringURL = url
	sc = sunlightClient(t, &movedTL)
	again, _, err := sc.Checkpoint(t.Context())
	if err != nil || again.N != cp.N || again.Hash != cp.Hash || again.Origin != origin {
		t.Errorf("after a restart: %+v, %v; want %+v", again, err, cp)
	}
	c = logClient(t, &loglist3.Log{URL: url, Key: tl.Key})
	if dup, err := c.AddPreChain(t.Context(), asn1Chain(subs[1].chain)); err != nil || dup.Timestamp != subs[1].sct.Timestamp || !bytes.Equal(dup.Extensions, subs[1].sct.Extensions) {
		t.Errorf("duplicate after a restart: %+v, %v; want the original SCT", dup, err)
	}
	chain, err := ca.Leaf("tiled-after-restart.example.com", notAfter, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddChain(t.Context(), asn1Chain(chain)); err != nil {
		t.Fatal(err)
	}
	moved := *tiledLog
	moved.URL = url
	after, _, err := v.Checkpoint(t.Context(), &moved)
	if err != nil || after.TreeSize != uint64(len(subs))+1 {
		t.Fatalf("checkpoint after the restart: %+v, %v", after, err)
	}
	if err := v.ProveTiledConsistency(t.Context(), &moved, before, after); err != nil {
		t.Errorf("the checkpoint after the restart is not consistent with the one before: %v", err)
	}
	if err := st.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A new key under old tiles, or old key without its tiles: refused.
	keyPath := filepath.Join(dir, "logs", "tiled-a.key")
	oldKey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := keyfile.Write(keyPath, k); err != nil {
		t.Fatal(err)
	}
	if st, err := startTiledStage(t, dir, storage, root); err == nil || !strings.Contains(err.Error(), "another key") {
		if st != nil {
			st.Shutdown(t.Context())
		}
		t.Errorf("start with the tiled shard's key replaced: %v, want a refusal", err)
	}
	if err := os.WriteFile(keyPath, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	want := "holds no log"
	if storage == "sqlite" {
		want = "vanished"
		if err := os.Remove(filepath.Join(dir, "tiled", "tiled-a", "checkpoint")); err != nil {
			t.Fatal(err)
		}
	} else {
		dropDatabase(t, storage, "tiled-a")
	}
	if st, err := startTiledStage(t, dir, storage, root); err == nil || !strings.Contains(err.Error(), want) {
		if st != nil {
			st.Shutdown(t.Context())
		}
		t.Errorf("start with the tiled shard's tiles gone: %v, want a refusal (%q)", err, want)
	}
}

// merkleRoot is RFC 6962 section 2.1's MTH of leaf hashes.
func merkleRoot(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := merkleRoot(leaves[:k]), merkleRoot(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// dropDatabase drops a tiled shard's database on the MySQL of spec.
func dropDatabase(t *testing.T, spec, shard string) {
	t.Helper()
	dsn, err := storagepkg.MySQLDSN(spec)
	if err != nil {
		t.Fatal(err)
	}
	db, err := mysqldb.Open(dsn, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := storagepkg.TiledDatabase(spec[strings.LastIndex(spec, "/")+1:], shard)
	if _, err := db.Exec("DROP DATABASE `" + name + "`"); err != nil {
		t.Fatal(err)
	}
}
