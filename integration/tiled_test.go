package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/sunlight"
	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/tls"

	"github.com/ctstage/ctstage/internal/keyfile"
	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/sctverify"
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

func startTiledStage(t *testing.T, dir, root string) (*serve.Stage, error) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte(tiledConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return serve.Start(ctx, serve.Options{DataDir: dir, ConfigFile: cfg, Storage: "sqlite", Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0", ExtraRoots: root}, CA: serve.CAOptions{NoFinalSubmission: true}})
}

// TestTiledShards: tiled shards from the config file appear under the
// operators' tiled_logs in /log.v3.json (read with ct-go's loglist3),
// take add-chain and add-pre-chain over HTTP with SCTs that verify with
// the listed key, serve tiles that Sunlight's client follows and proves
// the SCTs' inclusion from, and keep their origin and tree across a
// restart; a changed key or vanished tiles stop the start.
func TestTiledShards(t *testing.T) {
	ca, root := newCA(t)
	dir := t.TempDir()
	st, err := startTiledStage(t, dir, root)
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
	var scts [][]byte
	var certChain [][]byte
	for i, precert := range []bool{false, true} {
		chain, err := ca.Leaf([]string{"tiled-one.example.com", "tiled-two.example.com"}[i], notAfter, precert)
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
		scts = append(scts, raw)
		if !precert {
			certChain = chain
		}
	}
	pub, err := x509.ParsePKIXPublicKey(tl.Key)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sunlight.NewClient(&sunlight.ClientConfig{MonitoringPrefix: tl.MonitoringURL, PublicKey: pub,
		UserAgent: "ctstage tests (+https://github.com/ctstage/ctstage)"})
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := sc.Checkpoint(t.Context())
	if err != nil || cp.N != 2 {
		t.Fatalf("checkpoint: %+v, %v; want size 2", cp, err)
	}
	origin := strings.TrimSuffix(strings.TrimPrefix(tl.SubmissionURL, "http://"), "/")
	if cp.Origin != origin {
		t.Errorf("checkpoint origin %q, want the submission prefix without scheme %q", cp.Origin, origin)
	}
	for i, raw := range scts {
		if _, _, err := sc.CheckInclusion(t.Context(), cp.Tree, raw); err != nil {
			t.Errorf("SCT %d: inclusion from tiles: %v", i, err)
		}
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
	for _, der := range certChain[:2] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		in.Chain = append(in.Chain, c)
	}
	in.TLSSCTs = [][]byte{scts[0]}
	rep, err := (&sctverify.Verifier{Logs: logs, Inclusion: true}).Verify(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.SCTs) != 1 || rep.SCTs[0].Status != sctverify.StatusValid || rep.SCTs[0].Inclusion == nil ||
		rep.SCTs[0].Inclusion.Status != sctverify.InclusionIncluded || rep.SCTs[0].Inclusion.LeafIndex != 0 {
		t.Errorf("ctstage's verifier on the tiled SCT: %+v", rep.SCTs)
	}

	// /metrics has each tiled shard's.
	metricsText, err := httpGetBytes(st.LogURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`ctstage_tiled_checkpoint_size{shard="tiled-a"} 2`, `ctstage_tiled_checkpoint_size{shard="tiled-b"} 0`,
		`ctstage_tiled_submissions_total{endpoint="add-pre-chain",outcome="accepted",shard="tiled-a"} 1`} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A restart on another port keeps the origin (it embeds the first
	// start's host:port) and the tree.
	if err := st.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err = startTiledStage(t, dir, root)
	if err != nil {
		t.Fatal(err)
	}
	url := st.LogURL + "/tiled-a/"
	sc, err = sunlight.NewClient(&sunlight.ClientConfig{MonitoringPrefix: url, PublicKey: pub,
		UserAgent: "ctstage tests (+https://github.com/ctstage/ctstage)"})
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := sc.Checkpoint(t.Context())
	if err != nil || again.N != cp.N || again.Hash != cp.Hash || again.Origin != origin {
		t.Errorf("after a restart: %+v, %v; want %+v", again, err, cp)
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
	if st, err := startTiledStage(t, dir, root); err == nil || !strings.Contains(err.Error(), "another key") {
		if st != nil {
			st.Shutdown(t.Context())
		}
		t.Errorf("start with the tiled shard's key replaced: %v, want a refusal", err)
	}
	if err := os.WriteFile(keyPath, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "tiled", "tiled-a", "checkpoint")); err != nil {
		t.Fatal(err)
	}
	if st, err := startTiledStage(t, dir, root); err == nil || !strings.Contains(err.Error(), "vanished") {
		if st != nil {
			st.Shutdown(t.Context())
		}
		t.Errorf("start with the tiled shard's tiles gone: %v, want a refusal", err)
	}
}
