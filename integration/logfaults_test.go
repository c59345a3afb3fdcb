package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/testca"
)

// faultStage is a stage of two operators, each with an RFC 6962 shard
// and a tiled shard (tiledConfig), with the management API.
type faultStage struct {
	*serve.Stage
	ca  *testca.CA
	dir string
	cfg string
	ll  map[string]listedLog // by shard name
}

func startFaultStage(t *testing.T, dir string, ca *testca.CA, root string) *faultStage {
	t.Helper()
	return startFaultStageText(t, dir, tiledConfig, ca, root)
}

// startFaultStageText starts a faultStage on a config file holding text.
func startFaultStageText(t *testing.T, dir, text string, ca *testca.CA, root string) *faultStage {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return startFaultStageWith(t, dir, cfg, ca, root)
}

func startFaultStageWith(t *testing.T, dir, cfg string, ca *testca.CA, root string) *faultStage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := serve.Start(ctx, serve.Options{DataDir: dir, ConfigFile: cfg, Storage: "sqlite", Logger: testLogger(),
		// No dashboard: its index would poll the logs under test, faults and all.
		Logs: serve.LogOptions{Addr: "127.0.0.1:0", ExtraRoots: root, NoDashboard: true},
		CA:   serve.CAOptions{MgmtAddr: "127.0.0.1:0", NoFinalSubmission: true}})
	if err != nil {
		t.Fatalf("serve.Start: %v", err)
	}
	fs := &faultStage{Stage: st, ca: ca, dir: dir, cfg: cfg}
	t.Cleanup(func() { fs.stop(t) })
	fs.refreshList(t)
	return fs
}

func (fs *faultStage) stop(t *testing.T) {
	st := &stage{Stage: fs.Stage}
	st.stop(t)
	fs.Stage = nil
}

// refreshList reads /log.v3.json with loglist3 and indexes it by shard.
func (fs *faultStage) refreshList(t *testing.T) *loglist3.LogList {
	t.Helper()
	b, err := httpGetBytes(fs.LogURL + "/log.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	ll, err := loglist3.NewFromJSON(b)
	if err != nil {
		t.Fatalf("log list: %v", err)
	}
	fs.ll = map[string]listedLog{}
	for _, l := range logsByID(ll) {
		fs.ll[path(l.log.URL)] = l
	}
	return ll
}

// mgmt calls the management API; it returns the status and the body.
func (fs *faultStage) mgmt(t *testing.T, method, p string, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, fs.MgmtURL+p, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return rsp.StatusCode, b
}

// set sets a fault (or a state) and fails the test on anything but 200.
func (fs *faultStage) set(t *testing.T, shard, what, body string) {
	t.Helper()
	if code, b := fs.mgmt(t, http.MethodPost, "/logs/"+shard+"/"+what, body); code != http.StatusOK {
		t.Fatalf("POST /logs/%s/%s %s: %d %s", shard, what, body, code, b)
	}
}

func (fs *faultStage) clear(t *testing.T, shard string) {
	t.Helper()
	if code, b := fs.mgmt(t, http.MethodDelete, "/logs/"+shard+"/faults", ""); code != http.StatusOK {
		t.Fatalf("DELETE faults of %s: %d %s", shard, code, b)
	}
}

// client is ct-go's client for a shard, checking SCT and STH signatures
// with the listed key.
func (fs *faultStage) client(t *testing.T, shard string) *client.LogClient {
	t.Helper()
	return logClient(t, fs.ll[shard].log)
}

// rawClient is ct-go's client without the log's key: it checks nothing.
func (fs *faultStage) rawClient(t *testing.T, shard string) *client.LogClient {
	t.Helper()
	c, err := client.New(fs.ll[shard].log.URL, http.DefaultClient, jsonclient.Options{UserAgent: "ctstage-test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (fs *faultStage) chain(t *testing.T, name string) [][]byte {
	t.Helper()
	chain, err := fs.ca.Leaf(name, time.Now().AddDate(0, 0, 90), false)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

func (fs *faultStage) verifier(t *testing.T, shard string) *ct.SignatureVerifier {
	t.Helper()
	pk, err := x509.ParsePKIXPublicKey(fs.ll[shard].log.Key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ct.NewSignatureVerifier(pk)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rspError is the HTTP answer ct-go's client failed on, or nil.
func rspError(err error) *jsonclient.RspError {
	var re jsonclient.RspError
	if errors.As(err, &re) {
		return &re
	}
	var rp *jsonclient.RspError
	if errors.As(err, &rp) {
		return rp
	}
	return nil
}

func bodyOf(err error) string {
	if re := rspError(err); re != nil {
		return string(re.Body)
	}
	return ""
}

func statusOf(err error) int {
	if re := rspError(err); re != nil {
		return re.StatusCode
	}
	return 0
}

// TestLogFaultsRFC6962 sets each fault on an RFC 6962 shard through the
// management API and shows, with ct-go's client over real HTTP, what a
// client sees; clearing the faults gives a healthy log back.
func TestLogFaultsRFC6962(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	const shard = "classic-a"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, raw := fs.client(t, shard), fs.rawClient(t, shard)
	// A tree with a few entries, so that proofs and rollbacks have
	// something to show.
	var subs []submitted
	for i := range 3 {
		subs = append(subs, submit(t, c, fs.chain(t, "seed"+string(rune('a'+i))+".example.com"), false))
	}
	waitForSTH(t, c, 3, 10*time.Second)
	time.Sleep(1500 * time.Millisecond) // watchRoots remembers the head

	t.Run("unavailable", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"unavailable","status":429,"retry_after_s":7,"endpoints":["add-chain"]}`)
		defer fs.clear(t, shard)
		// ct-go's client backs off on 429 and 503 until its deadline.
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := c.AddChain(short, asn1Chain(fs.chain(t, "u.example.com"))); err == nil {
			t.Error("add-chain under unavailable succeeded")
		}
		body := mustJSON(t, ct.AddChainRequest{Chain: fs.chain(t, "u2.example.com")})
		rsp, err := http.Post(fs.ll[shard].log.URL+"ct/v1/add-chain", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusTooManyRequests || rsp.Header.Get("Retry-After") != "7" {
			t.Errorf("add-chain under unavailable: %s, Retry-After %q; want 429 with 7", rsp.Status, rsp.Header.Get("Retry-After"))
		}
		if _, err := c.GetSTH(ctx); err != nil {
			t.Errorf("get-sth, not among the endpoints, failed: %v", err)
		}
	})
	t.Run("drop", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"drop","endpoints":["get-sth"]}`)
		defer fs.clear(t, shard)
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := c.GetSTH(short)
		if err == nil || statusOf(err) != 0 {
			t.Errorf("get-sth under drop: %v, want a transport error", err)
		}
	})
	t.Run("delay", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"delay","min_ms":300,"max_ms":400}`)
		defer fs.clear(t, shard)
		start := time.Now()
		if _, err := c.GetSTH(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("get-sth under a 300-400 ms delay took %v", d)
		}
	})
	t.Run("reject", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"reject","names":["blocked.example"]}`)
		defer fs.clear(t, shard)
		_, err := c.AddChain(ctx, asn1Chain(fs.chain(t, "www.blocked.example")))
		if statusOf(err) != http.StatusBadRequest || !strings.Contains(bodyOf(err), "reject") {
			t.Errorf("a rejected name: %v, want 400 saying reject", err)
		}
		submit(t, c, fs.chain(t, "fine.example.com"), false)
	})
	t.Run("bad_sct_signature", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"bad_sct_signature"}`)
		defer fs.clear(t, shard)
		chain := fs.chain(t, "badsig.example.com")
		if _, err := c.AddChain(ctx, asn1Chain(chain)); err == nil {
			t.Error("ct-go's client took an SCT with a bad signature")
		}
		sct, err := raw.AddChain(ctx, asn1Chain(chain))
		if err != nil {
			t.Fatal(err)
		}
		leaf := ct.CreateX509MerkleTreeLeaf(ct.ASN1Cert{Data: chain[0]}, sct.Timestamp)
		if err := fs.verifier(t, shard).VerifySCTSignature(*sct, ct.LogEntry{Leaf: *leaf}); err == nil {
			t.Error("VerifySCTSignature passed a bad_sct_signature SCT")
		}
	})
	t.Run("sct_timestamp_skew", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"sct_timestamp_skew","offset_ms":-3600000}`)
		defer fs.clear(t, shard)
		s := submit(t, c, fs.chain(t, "skew.example.com"), false) // the client checks the signature
		if d := time.Since(time.UnixMilli(int64(s.sct.Timestamp))); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("SCT timestamp %v ago, want an hour", d)
		}
		// The entry carries the skewed timestamp: the SCT's leaf is in the tree.
		h := [32]byte(leafHash(t, s.chain, false, s.sct))
		proveIncluded(t, fs.ll[shard], h, s.sct)
	})
	t.Run("bad_sth_signature", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"bad_sth_signature"}`)
		defer fs.clear(t, shard)
		if _, err := c.GetSTH(ctx); err == nil {
			t.Error("ct-go's client took an STH with a bad signature")
		}
	})
	t.Run("sth_rollback", func(t *testing.T) {
		before, err := c.GetSTH(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fs.set(t, shard, "faults", `{"kind":"sth_rollback"}`)
		defer fs.clear(t, shard)
		old, err := c.GetSTH(ctx) // signature checked
		if err != nil {
			t.Fatalf("rolled-back STH: %v", err)
		}
		if old.TreeSize >= before.TreeSize || old.Timestamp >= before.Timestamp {
			t.Errorf("rolled-back STH size %d at %d, want older than size %d at %d", old.TreeSize, old.Timestamp, before.TreeSize, before.Timestamp)
		}
	})
	t.Run("no_integrate", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"no_integrate"}`)
		s := submit(t, c, fs.chain(t, "held.example.com"), false) // a valid SCT
		h := leafHash(t, s.chain, false, s.sct)
		time.Sleep(2 * time.Second)
		sth, err := c.GetSTH(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetProofByHash(ctx, h, sth.TreeSize); err == nil {
			t.Error("a held entry is in the tree")
		}
		// /healthz stays up: the stall is asked for.
		if b, err := httpGetBytes(fs.LogURL + "/healthz"); err != nil || !strings.HasPrefix(string(b), "ok") {
			t.Errorf("healthz under no_integrate: %q %v", b, err)
		}
		fs.clear(t, shard)
		proveIncluded(t, fs.ll[shard], [32]byte(h), s.sct)
	})
	t.Run("bad_proof", func(t *testing.T) {
		sth := waitForSTH(t, c, 3, 10*time.Second)
		h := leafHash(t, subs[0].chain, false, subs[0].sct)
		fs.set(t, shard, "faults", `{"kind":"bad_proof"}`)
		defer fs.clear(t, shard)
		rsp, err := c.GetProofByHash(ctx, h, sth.TreeSize)
		if err != nil {
			t.Fatal(err)
		}
		if proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rsp.LeafIndex), sth.TreeSize, h, rsp.AuditPath, sth.SHA256RootHash[:]) == nil {
			t.Error("a bad_proof inclusion proof verifies")
		}
		cons, err := c.GetSTHConsistency(ctx, 1, sth.TreeSize)
		if err != nil {
			t.Fatal(err)
		}
		r1 := rfc6962.DefaultHasher.HashLeaf(mustLeafInput(t, raw, 0))
		if proof.VerifyConsistency(rfc6962.DefaultHasher, 1, sth.TreeSize, cons, r1, sth.SHA256RootHash[:]) == nil {
			t.Error("a bad_proof consistency proof verifies")
		}
	})
	t.Run("bad_entry", func(t *testing.T) {
		sth := waitForSTH(t, c, 3, 10*time.Second)
		good := mustLeafInput(t, raw, 0)
		fs.set(t, shard, "faults", `{"kind":"bad_entry"}`)
		defer fs.clear(t, shard)
		bad := mustLeafInput(t, raw, 0)
		if bytes.Equal(good, bad) {
			t.Fatal("get-entries under bad_entry returned the true entry")
		}
		h := rfc6962.DefaultHasher.HashLeaf(bad)
		if _, err := c.GetProofByHash(ctx, h, sth.TreeSize); err == nil {
			t.Error("the altered entry's hash is in the tree")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		b, err := httpGetBytes(fs.LogURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"unavailable", "drop", "delay", "reject", "bad_sct_signature", "sct_timestamp_skew",
			"bad_sth_signature", "sth_rollback", "no_integrate", "bad_proof", "bad_entry"} {
			if !strings.Contains(string(b), `ctstage_log_fault_hits_total{kind="`+k+`",shard="classic-a"}`) {
				t.Errorf("/metrics counts no %s hit", k)
			}
		}
	})
	t.Run("healthy again", func(t *testing.T) {
		s := submit(t, c, fs.chain(t, "after.example.com"), false)
		proveIncluded(t, fs.ll[shard], [32]byte(leafHash(t, s.chain, false, s.sct)), s.sct)
	})
}

// mustLeafInput reads entry i's leaf_input with get-entries.
func mustLeafInput(t *testing.T, c *client.LogClient, i int64) []byte {
	t.Helper()
	rsp, err := c.GetRawEntries(context.Background(), i, i)
	if err != nil || len(rsp.Entries) != 1 {
		t.Fatalf("get-entries %d: %v", i, err)
	}
	return rsp.Entries[0].LeafInput
}

// startTiledFaultStage starts a faultStage and submits 3 certificates
// (named with prefix) to the tiled shard; it returns the stage, the
// shard's listing and ct-go's client for it.
func startTiledFaultStage(t *testing.T, shard, prefix string) (*faultStage, listedLog, *client.LogClient) {
	t.Helper()
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	c := fs.client(t, shard)
	for i := range 3 {
		submit(t, c, fs.chain(t, fmt.Sprintf("%s%d.example.com", prefix, i)), false)
	}
	return fs, fs.ll[shard], c
}

// TestLogFaultsTiled shows the faults of a tiled shard with Sunlight's
// client: a checkpoint with a bad signature is refused, a held checkpoint
// stops advancing while SCTs still come, a rollback serves a smaller
// tree, and corrupted hash or data tiles fail its inclusion checks.
func TestLogFaultsTiled(t *testing.T) {
	fs, l, c := startTiledFaultStage(t, "tiled-a", "t")
	const shard = "tiled-a"
	ctx := context.Background()
	sc := sunlightClient(t, l.tiled)
	cp0, _, err := sc.Checkpoint(ctx)
	if err != nil || cp0.N < 3 {
		t.Fatalf("checkpoint: %v (size %d)", err, cp0.N)
	}

	t.Run("unavailable", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"unavailable","endpoints":["checkpoint"]}`)
		defer fs.clear(t, shard)
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, _, err := sc.Checkpoint(short); err == nil {
			t.Error("Sunlight's client read a checkpoint under unavailable")
		}
		rsp, err := http.Get(l.tiled.MonitoringURL + "checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusServiceUnavailable || rsp.Header.Get("Retry-After") != "5" {
			t.Errorf("checkpoint under unavailable: %s, Retry-After %q; want 503 with 5", rsp.Status, rsp.Header.Get("Retry-After"))
		}
		submit(t, c, fs.chain(t, "tunavail.example.com"), false) // add-chain is not among the endpoints
	})
	t.Run("drop", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"drop","endpoints":["add-chain"]}`)
		defer fs.clear(t, shard)
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := c.AddChain(short, asn1Chain(fs.chain(t, "tdrop.example.com"))); err == nil || statusOf(err) != 0 {
			t.Errorf("add-chain under drop: %v, want a transport error", err)
		}
	})
	t.Run("delay", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"delay","min_ms":300,"endpoints":["data-tile"]}`)
		defer fs.clear(t, shard)
		cp, _, err := sc.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, _, err := sunlightClient(t, l.tiled).Entry(ctx, cp.Tree, 0); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("an entry read under a 300 ms data-tile delay took %v", d)
		}
	})
	t.Run("reject", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"reject","issuers":["ctstage integration Intermediate"]}`)
		defer fs.clear(t, shard)
		_, err := c.AddChain(ctx, asn1Chain(fs.chain(t, "trejected.example.com")))
		if statusOf(err) != http.StatusBadRequest || !strings.Contains(bodyOf(err), "issued by") {
			t.Errorf("a rejected issuer: %v, want 400 saying so", err)
		}
	})
	t.Run("sct_timestamp_skew", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"sct_timestamp_skew","offset_ms":-3600000}`)
		defer fs.clear(t, shard)
		s := submit(t, c, fs.chain(t, "tskew.example.com"), false) // the client checks the signature
		if d := time.Since(time.UnixMilli(int64(s.sct.Timestamp))); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("SCT timestamp %v ago, want an hour", d)
		}
		// The entry at its leaf_index carries the skewed timestamp.
		proveIncluded(t, l, [32]byte(leafHash(t, s.chain, false, s.sct)), s.sct)
	})
	t.Run("bad_sth_signature", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"bad_sth_signature"}`)
		defer fs.clear(t, shard)
		if _, _, err := sc.Checkpoint(ctx); err == nil {
			t.Error("Sunlight's client took a checkpoint with a bad signature")
		}
	})
	t.Run("bad_sct_signature", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"bad_sct_signature"}`)
		defer fs.clear(t, shard)
		if _, err := c.AddChain(ctx, asn1Chain(fs.chain(t, "tbad.example.com"))); err == nil {
			t.Error("ct-go's client took a tiled SCT with a bad signature")
		}
	})
	t.Run("no_publish", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"no_publish"}`)
		before, _, err := sc.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s := submit(t, c, fs.chain(t, "theld.example.com"), false) // a valid SCT with its leaf_index
		time.Sleep(time.Second)
		after, _, err := sc.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.N != before.N {
			t.Errorf("the checkpoint advanced from %d to %d under no_publish", before.N, after.N)
		}
		fs.clear(t, shard)
		proveIncluded(t, l, [32]byte(leafHash(t, s.chain, false, s.sct)), s.sct)
	})
	t.Run("sth_rollback", func(t *testing.T) {
		cur, _, err := sc.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fs.set(t, shard, "faults", `{"kind":"sth_rollback"}`)
		defer fs.clear(t, shard)
		old, _, err := sc.Checkpoint(ctx) // signature checked
		if err != nil {
			t.Fatalf("rolled-back checkpoint: %v", err)
		}
		if old.N >= cur.N {
			t.Errorf("rolled-back checkpoint of size %d, want below %d", old.N, cur.N)
		}
	})
	t.Run("bad_proof", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"bad_proof"}`)
		defer fs.clear(t, shard)
		cp, _, err := sc.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := sc.Entry(ctx, cp.Tree, 0); err == nil {
			t.Error("Sunlight's client proved an entry from corrupted hash tiles")
		}
	})
	t.Run("bad_entry", func(t *testing.T) {
		fs.set(t, shard, "faults", `{"kind":"bad_entry"}`)
		defer fs.clear(t, shard)
		cp, _, err := sc.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := sc.Entry(ctx, cp.Tree, 0); err == nil {
			t.Error("Sunlight's client took an altered entry from the data tile")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		for _, k := range []string{"unavailable", "drop", "delay", "reject", "bad_sct_signature", "sct_timestamp_skew",
			"bad_sth_signature", "sth_rollback", "no_publish", "bad_proof", "bad_entry"} {
			if metric(t, fs.Stage, `ctstage_log_fault_hits_total{kind="`+k+`",shard="tiled-a"}`) == 0 {
				t.Errorf("/metrics counts no %s hit", k)
			}
		}
	})
	t.Run("healthy again", func(t *testing.T) {
		s := submit(t, c, fs.chain(t, "tafter.example.com"), false)
		proveIncluded(t, l, [32]byte(leafHash(t, s.chain, false, s.sct)), s.sct)
	})
}

// TestLogMgmtAPI: the management API refuses bad JSON, unknown kinds,
// fields and shards, and out-of-range values with 400 (404 for a shard)
// naming what is wrong, and keeps the protections of loopback.Guard.
func TestLogMgmtAPI(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"BadJSON", "POST", "/logs/classic-a/faults", `{"kind":`, 400, "not a fault"},
		{"UnknownKind", "POST", "/logs/classic-a/faults", `{"kind":"explode"}`, 400, "kind"},
		{"UnknownField", "POST", "/logs/classic-a/faults", `{"kind":"drop","force":true}`, 400, "force"},
		{"FractionRange", "POST", "/logs/classic-a/faults", `{"kind":"drop","fraction":1.5}`, 400, "fraction"},
		{"NegativeFraction", "POST", "/logs/classic-a/faults", `{"kind":"drop","fraction":-0.1}`, 400, "fraction"},
		{"StatusRange", "POST", "/logs/classic-a/faults", `{"kind":"unavailable","status":418}`, 400, "status"},
		{"WrongEndpoint", "POST", "/logs/classic-a/faults", `{"kind":"bad_sct_signature","endpoints":["get-sth"]}`, 400, "endpoints"},
		{"TiledKindOnRFC6962", "POST", "/logs/classic-a/faults", `{"kind":"no_publish"}`, 400, "no_integrate"},
		{"ParamOfAnotherKind", "POST", "/logs/classic-a/faults", `{"kind":"drop","offset_ms":5}`, 400, "offset_ms"},
		{"UnknownShard", "POST", "/logs/nope/faults", `{"kind":"drop"}`, 404, "nope"},
		{"UnknownState", "POST", "/logs/classic-a/state", `{"state":"frozen"}`, 400, "state"},
		{"BadTime", "POST", "/logs/classic-a/state", `{"state":"retired","at":"tomorrow"}`, 400, "at"},
		{"TwoValues", "POST", "/logs/classic-a/state", `{"state":"usable"}{}`, 400, "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := fs.mgmt(t, tc.method, tc.path, tc.body)
			var e struct {
				Error string `json:"error"`
			}
			json.Unmarshal(b, &e)
			if code != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Errorf("%d %s, want %d naming %q", code, b, tc.status, tc.want)
			}
		})
	}
	t.Run("Guard", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			mod    func(*http.Request)
			status int
		}{
			{"TextPlain", func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 415},
			{"ForeignOrigin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, 403},
			{"ForeignHost", func(r *http.Request) { r.Host = "evil.example" }, 403},
		} {
			req, _ := http.NewRequest("POST", fs.MgmtURL+"/logs/classic-a/faults", strings.NewReader(`{"kind":"drop"}`))
			req.Header.Set("Content-Type", "application/json")
			tc.mod(req)
			rsp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			rsp.Body.Close()
			if rsp.StatusCode != tc.status {
				t.Errorf("%s: %d, want %d", tc.name, rsp.StatusCode, tc.status)
			}
		}
		if code, b := fs.mgmt(t, "GET", "/logs", ""); code != 200 || strings.Contains(string(b), `"drop"`) {
			t.Errorf("a refused request set a fault: %d %s", code, b)
		}
	})
}

// TestLogStates: states set through the API take effect at once (a
// readonly shard refuses add-chain with 403, serves reads and lists its
// final tree head; a rejected one refuses everything), survive a
// restart, appear in /log.v3.json; a state the config file sets, with a
// future time, applies from that time; the CA never submits to a
// readonly shard and uses a retiring one until it retires.
func TestLogStates(t *testing.T) {
	ca, root := newCA(t)
	dir := t.TempDir()
	fs := startFaultStage(t, dir, ca, root)
	ctx := context.Background()
	c := fs.client(t, "classic-b")
	submit(t, c, fs.chain(t, "s1.example.com"), false)
	submit(t, c, fs.chain(t, "s2.example.com"), false)
	waitForSTH(t, c, 2, 10*time.Second)

	fs.set(t, "classic-b", "state", `{"state":"readonly"}`)
	fs.set(t, "tiled-b", "state", `{"state":"rejected"}`)
	refused := `ctstage_log_submissions_total{endpoint="add-chain",outcome="rejected",shard="classic-b"}`
	before := metric(t, fs.Stage, refused)
	if _, err := c.AddChain(ctx, asn1Chain(fs.chain(t, "s3.example.com"))); statusOf(err) != http.StatusForbidden {
		t.Errorf("add-chain to a readonly shard: %v, want 403", err)
	}
	if n := metric(t, fs.Stage, refused) - before; n != 1 {
		t.Errorf("the refused add-chain counted %v times in %s", n, refused)
	}
	sth, err := c.GetSTH(ctx)
	if err != nil || sth.TreeSize != 2 {
		t.Fatalf("get-sth of a readonly shard: %v (size %v)", err, sth)
	}
	rsp, err := http.Get(fs.ll["tiled-b"].tiled.MonitoringURL + "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusForbidden {
		t.Errorf("checkpoint of a rejected shard: %s, want 403", rsp.Status)
	}
	// The final tree head is recorded once the tree stood still.
	var ro *loglist3.ReadOnlyLogState
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		fs.refreshList(t)
		ro = fs.ll["classic-b"].log.State.ReadOnly
		if ro != nil && ro.FinalTreeHead.TreeSize == 2 {
			break
		}
	}
	if ro == nil || ro.FinalTreeHead.TreeSize != 2 || !bytes.Equal(ro.FinalTreeHead.SHA256RootHash, sth.SHA256RootHash[:]) {
		t.Fatalf("log list readonly state %+v, want final tree head of size 2 and the STH's root", ro)
	}
	if fs.ll["tiled-b"].log.State.Rejected == nil {
		t.Errorf("tiled-b is listed %+v, want rejected", fs.ll["tiled-b"].log.State)
	}
	// The CA: operator B has nothing usable left, so a 90-day
	// certificate cannot meet the policy: a clean failure naming it.
	if _, err := fs.CA.Issue(ctx, caRequest(t, "nope.example.com")); err == nil || !strings.Contains(err.Error(), "too few usable logs") {
		t.Errorf("issuance with one operator left: %v, want a policy failure", err)
	}
	fs.set(t, "tiled-b", "state", `{"state":"usable"}`)
	for i := range 4 {
		iss, err := fs.CA.Issue(ctx, caRequest(t, "ok"+string(rune('a'+i))+".example.com"))
		if err != nil {
			t.Fatalf("issuance: %v", err)
		}
		for _, s := range iss.SCTs {
			if strings.Contains(s.Log.URL, "/classic-b/") {
				t.Errorf("the CA submitted to readonly classic-b")
			}
		}
	}

	// Restart: the states stay, the log list shows them.
	fs.stop(t)
	fs = startFaultStageWith(t, dir, fs.cfg, ca, root)
	if st := fs.ll["classic-b"].log.State; st.ReadOnly == nil || st.ReadOnly.FinalTreeHead.TreeSize != 2 {
		t.Errorf("after a restart classic-b is %+v, want readonly with its final tree head", st)
	}
	if _, err := fs.client(t, "classic-b").AddChain(ctx, asn1Chain(fs.chain(t, "s4.example.com"))); statusOf(err) != http.StatusForbidden {
		t.Errorf("add-chain to a readonly shard after a restart: %v, want 403", err)
	}

	// Retires in the future: used until then, refused after.
	at := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	fs.set(t, "classic-a", "state", `{"state":"retired","at":"`+at.Format(time.RFC3339)+`"}`)
	fs.refreshList(t)
	if r := fs.ll["classic-a"].log.State.Retired; r == nil || !r.Timestamp.Equal(at) {
		t.Errorf("classic-a listed %+v, want retired at %v", fs.ll["classic-a"].log.State, at)
	}
	ca2 := fs.client(t, "classic-a")
	submit(t, ca2, fs.chain(t, "before.example.com"), false)
	iss, err := fs.CA.Issue(ctx, caRequest(t, "retiring.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	used := false
	for _, s := range iss.SCTs {
		used = used || strings.Contains(s.Log.URL, "/classic-a/")
	}
	if !used {
		t.Errorf("the CA did not use classic-a before it retires (SCTs from %v)", iss.SCTs)
	}
	time.Sleep(time.Until(at) + 200*time.Millisecond)
	if _, err := ca2.AddChain(ctx, asn1Chain(fs.chain(t, "after.example.com"))); statusOf(err) != http.StatusForbidden {
		t.Errorf("add-chain after the retirement: %v, want 403", err)
	}
	// No RFC 6962 log is left to take a submission (classic-a retired,
	// classic-b readonly): the CA's policy cannot be met.
	if _, err := fs.CA.Issue(ctx, caRequest(t, "retired.example.com")); err == nil || !strings.Contains(err.Error(), "too few usable logs") {
		t.Errorf("issuance with no RFC 6962 log usable: %v, want a policy failure", err)
	}
}

func caRequest(t *testing.T, name string) ca.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Request{PublicKey: key.Public(), Names: []string{name}}
}
