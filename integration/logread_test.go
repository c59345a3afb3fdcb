package integration

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"filippo.io/sunlight"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctstage/ctstage/sctverify"
)

// listedLog is a log of the log list, of either kind, with its operator.
// For a tiled log, log holds its description, key, log ID and MMD, with
// the submission prefix as URL, which is what ct-go's client and ctutil
// need to submit and to verify SCTs; tiled is its entry.
type listedLog struct {
	log      *loglist3.Log
	operator string
	tiled    *loglist3.TiledLog
}

// logsByID indexes every log of ll, RFC 6962 and tiled, by log ID.
func logsByID(ll *loglist3.LogList) map[[32]byte]listedLog {
	out := map[[32]byte]listedLog{}
	for _, op := range ll.Operators {
		for _, l := range op.Logs {
			out[[32]byte(l.LogID)] = listedLog{log: l, operator: op.Name}
		}
		for _, l := range op.TiledLogs {
			out[[32]byte(l.LogID)] = listedLog{operator: op.Name, tiled: l, log: &loglist3.Log{
				Description: l.Description, Key: l.Key, LogID: l.LogID, MMD: l.MMD, URL: l.SubmissionURL,
				State: l.State, TemporalInterval: l.TemporalInterval}}
		}
	}
	return out
}

// sunlightClient is Sunlight's client for a tiled log, which checks the
// checkpoint's signature with the log's key.
func sunlightClient(t testing.TB, l *loglist3.TiledLog) *sunlight.Client {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(l.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sunlight.NewClient(&sunlight.ClientConfig{MonitoringPrefix: l.MonitoringURL, PublicKey: pub,
		UserAgent: "ctstage tests (+https://github.com/ctstage/ctstage)"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logLeaves returns the MerkleTreeLeaf of every entry in l's newest tree:
// from get-entries on an RFC 6962 log, from the data tiles (Sunlight's
// client, which checks them against the signed checkpoint) on a tiled one.
func logLeaves(t testing.TB, l listedLog) [][]byte {
	t.Helper()
	ctx := context.Background()
	var out [][]byte
	if l.tiled != nil {
		c := sunlightClient(t, l.tiled)
		cp, _, err := c.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("%s: checkpoint: %v", l.log.Description, err)
		}
		// Entries may stop before a partial data tile; resumed with the
		// same tree, it reads the rest.
		for round := 0; int64(len(out)) < cp.N && round < 3; round++ {
			for _, e := range c.Entries(ctx, cp.Tree, int64(len(out))) {
				out = append(out, e.MerkleTreeLeaf())
			}
			if err := c.Err(); err != nil {
				t.Fatalf("%s: reading the data tiles: %v", l.log.Description, err)
			}
		}
		if int64(len(out)) != cp.N {
			t.Fatalf("%s: read %d entries of the checkpoint's %d", l.log.Description, len(out), cp.N)
		}
		return out
	}
	c := verifyingClient(t, l.log)
	sth, err := c.GetSTH(ctx)
	if err != nil {
		t.Fatalf("%s: get-sth: %v", l.log.Description, err)
	}
	for start := int64(0); start < int64(sth.TreeSize); {
		rsp, err := c.GetRawEntries(ctx, start, int64(sth.TreeSize)-1)
		if err != nil || len(rsp.Entries) == 0 {
			t.Fatalf("%s: get-entries from %d: %v", l.log.Description, start, err)
		}
		for _, e := range rsp.Entries {
			out = append(out, e.LeafInput)
		}
		start += int64(len(rsp.Entries))
	}
	return out
}

// proveIncluded waits (30 s at most) until leaf hash h is included in l's
// newest tree, and verifies the inclusion proof: get-proof-by-hash on an
// RFC 6962 log; on a tiled log, a proof built from the tiles for the
// SCT's leaf_index.
func proveIncluded(t testing.TB, l listedLog, h [32]byte, sct *ct.SignedCertificateTimestamp) {
	t.Helper()
	prove := proveByHash
	if l.tiled != nil {
		prove = proveFromTiles
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// prove reports a failed proof itself; its error means "not yet".
		err := prove(t, l, h, sct)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not included after 30 s: %v", l.log.Description, err)
		}
	}
}

// proveFromTiles checks the entry at the SCT's leaf_index with Sunlight's
// client, which proves its inclusion in the checkpoint's tree from the
// tiles; it returns an error while the checkpoint is not that large.
func proveFromTiles(t testing.TB, l listedLog, h [32]byte, sct *ct.SignedCertificateTimestamp) error {
	t.Helper()
	idx, err := sctverify.LeafIndex(sct.Extensions)
	if err != nil {
		t.Fatalf("%s: %v", l.log.Description, err)
	}
	c := sunlightClient(t, l.tiled)
	cp, _, err := c.Checkpoint(context.Background())
	if err != nil {
		return err
	}
	if int64(idx) >= cp.N {
		return fmt.Errorf("leaf_index %d is beyond the checkpoint of %d", idx, cp.N)
	}
	e, _, err := c.Entry(context.Background(), cp.Tree, int64(idx))
	switch {
	case err != nil:
		t.Errorf("%s: entry %d from the tiles: %v", l.log.Description, idx, err)
	case [32]byte(rfc6962.DefaultHasher.HashLeaf(e.MerkleTreeLeaf())) != h:
		t.Errorf("%s: the entry at leaf_index %d is not the SCT's", l.log.Description, idx)
	}
	return nil
}

// proveByHash verifies get-proof-by-hash against a signed STH; it returns
// the log's error while the entry is not in the tree.
func proveByHash(t testing.TB, l listedLog, h [32]byte, _ *ct.SignedCertificateTimestamp) error {
	t.Helper()
	c := logClient(t, l.log)
	sth := waitForSTH(t, c, 1, 10*time.Second)
	rsp, err := c.GetProofByHash(context.Background(), h[:], sth.TreeSize)
	if err != nil {
		return err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rsp.LeafIndex), sth.TreeSize, h[:], rsp.AuditPath, sth.SHA256RootHash[:]); err != nil {
		t.Errorf("%s: inclusion proof: %v", l.log.Description, err)
	}
	return nil
}

// leafOf parses a MerkleTreeLeaf.
func leafOf(t testing.TB, b []byte) *ct.MerkleTreeLeaf {
	t.Helper()
	var leaf ct.MerkleTreeLeaf
	if _, err := tls.Unmarshal(b, &leaf); err != nil {
		t.Fatalf("a log entry that is not a MerkleTreeLeaf: %v", err)
	}
	return &leaf
}
