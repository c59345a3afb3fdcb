package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/sctverify"
)

// TestTiledCrash kills `ctstage serve` with SIGKILL three times while eight
// clients submit to a tiled shard, restarting it on the same --data each
// time. Afterwards every SCT a client received is proven in the log at
// its leaf_index from the tiles, and every checkpoint seen is consistent
// with the last. On the embedded default and on MariaDB.
func TestTiledCrash(t *testing.T) {
	for _, s := range storages {
		t.Run(s.name, func(t *testing.T) { testTiledCrash(t, s.spec(t)) })
	}
}

func testTiledCrash(t *testing.T, storage string) {
	// On MySQL a checkpoint comes once a second: more time up per kill.
	up := 1500 * time.Millisecond
	if storage != "sqlite" {
		up = 4 * time.Second
	}
	ca, root := newCA(t)
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte(tiledConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	type got struct {
		chain [][]byte
		sct   *ct.SignedCertificateTimestamp
	}
	var (
		mu     sync.Mutex
		scts   []got
		sths   []*sctverify.STH
		serial atomic.Int64
	)
	notAfter := time.Now().AddDate(0, 0, 90)
	var tiledLog *sctverify.Log
	v := &sctverify.Verifier{}
	for kill := range 4 {
		srv := startServer(t, "--data", dir, "--config", cfg, "--extra-roots", root, "--storage", storage)
		ll, err := httpGetBytes("http://" + srv.addr + "/log.v3.json")
		if err != nil {
			t.Fatal(err)
		}
		logs, err := sctverify.ParseLogList(ll)
		if err != nil {
			t.Fatal(err)
		}
		var parsed loglist3.LogList
		if err := json.Unmarshal(ll, &parsed); err != nil {
			t.Fatal(err)
		}
		entry := parsed.Operators[0].TiledLogs[0]
		tiledLog = logs.Lookup([32]byte(entry.LogID))
		if kill == 3 {
			break // the last start is for checking
		}
		c := logClient(t, &loglist3.Log{URL: entry.SubmissionURL, Key: entry.Key})
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for ctx.Err() == nil {
					chain, err := ca.Leaf(fmt.Sprintf("crash-%d.example.com", serial.Add(1)), notAfter, false)
					if err != nil {
						t.Error(err)
						return
					}
					sct, err := c.AddChain(ctx, asn1Chain(chain))
					if err != nil {
						continue // killed mid-request, or not up yet: no SCT, nothing owed
					}
					mu.Lock()
					scts = append(scts, got{chain, sct})
					mu.Unlock()
				}
			})
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				if sth, _, err := v.Checkpoint(ctx, tiledLog); err == nil {
					mu.Lock()
					sths = append(sths, sth)
					mu.Unlock()
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
		time.Sleep(up)
		srv.kill9(t)
		stop()
		wg.Wait()
	}
	final, _, err := v.Checkpoint(t.Context(), tiledLog)
	if err != nil {
		t.Fatal(err)
	}
	if len(scts) < 20 {
		t.Fatalf("only %d SCTs received under load", len(scts))
	}
	lost := 0
	for _, g := range scts {
		idx, err := sctverify.LeafIndex(g.sct.Extensions)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.ProveTiledInclusion(t.Context(), tiledLog, final, idx, [32]byte(leafHash(t, g.chain, false, g.sct))); err != nil {
			lost++
			if lost < 5 {
				t.Errorf("SCT at leaf_index %d: %v", idx, err)
			}
		}
	}
	inconsistent := 0
	for _, sth := range sths {
		if err := v.ProveTiledConsistency(t.Context(), tiledLog, sth, final); err != nil {
			inconsistent++
			if inconsistent < 5 {
				t.Errorf("checkpoint of %d: %v", sth.TreeSize, err)
			}
		}
	}
	t.Logf("3 kills: %d SCTs, all at their leaf_index in the final tree of %d unless counted lost (%d); %d checkpoints seen, %d inconsistent",
		len(scts), final.TreeSize, lost, len(sths), inconsistent)
}
