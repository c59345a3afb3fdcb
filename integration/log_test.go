// Package integration holds end-to-end tests across ctstage's components,
// over real HTTP with real clients.
package integration

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func parseChain(chain [][]byte) ([]*ctx509.Certificate, error) {
	out := make([]*ctx509.Certificate, len(chain))
	for i, der := range chain {
		c, err := ctx509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// TestLogs runs the log suite on every storage backend.
func TestLogs(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ca, root := newCA(t)
			st := startStage(t, t.TempDir(), b.spec(t), ca, root)
			t.Run("EndToEnd", func(t *testing.T) { testEndToEnd(t, st) })
			t.Run("Resubmit", func(t *testing.T) { testResubmit(t, st) })
			t.Run("Refusals", func(t *testing.T) { testRefusals(t, st) })
			t.Run("LogList", func(t *testing.T) { testLogList(t, st) })
			t.Run("ReadRanges", func(t *testing.T) { testReadRanges(t, st) })
		})
	}
}

// submitted is one accepted submission.
type submitted struct {
	chain   [][]byte
	precert bool
	sct     *ct.SignedCertificateTimestamp
}

func submit(t testing.TB, c *client.LogClient, chain [][]byte, precert bool) submitted {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	add := c.AddChain
	if precert {
		add = c.AddPreChain
	}
	sct, err := add(ctx, asn1Chain(chain))
	if err != nil {
		t.Fatalf("add (precert=%v): %v", precert, err)
	}
	return submitted{chain, precert, sct}
}

func testEndToEnd(t *testing.T, st *stage) {
	notAfter := time.Now().AddDate(0, 0, 90)
	l := st.shardFor(t, 0, notAfter)
	c := logClient(t, l)
	ctx := context.Background()

	sth0, err := c.GetSTH(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var subs []submitted
	for i, precert := range []bool{false, true} {
		chain, err := st.ca.Leaf(fmt.Sprintf("e2e-%d.example.com", i), notAfter, precert)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		subs = append(subs, submit(t, c, chain, precert))
		// Integrated within 2 s of the SCT.
		waitForSTH(t, c, sth0.TreeSize+uint64(i)+1, 2*time.Second-time.Since(start))
	}
	sth1 := waitForSTH(t, c, sth0.TreeSize+2, time.Second)

	for _, s := range subs {
		h := leafHash(t, s.chain, s.precert, s.sct)
		rsp, err := c.GetProofByHash(ctx, h, sth1.TreeSize)
		if err != nil {
			t.Fatalf("GetProofByHash: %v", err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rsp.LeafIndex), sth1.TreeSize, h, rsp.AuditPath, sth1.SHA256RootHash[:]); err != nil {
			t.Errorf("inclusion proof of leaf %d does not verify: %v", rsp.LeafIndex, err)
		}
		entries, err := c.GetRawEntries(ctx, rsp.LeafIndex, rsp.LeafIndex)
		if err != nil || len(entries.Entries) != 1 {
			t.Fatalf("GetRawEntries(%d): %v, %d entries", rsp.LeafIndex, err, len(entries.Entries))
		}
		if got := rfc6962.DefaultHasher.HashLeaf(entries.Entries[0].LeafInput); !bytes.Equal(got, h) {
			t.Errorf("get-entries leaf %d hashes to %x, want %x", rsp.LeafIndex, got, h)
		}
		checkEntry(t, entries.Entries[0], s)
	}

	cons, err := c.GetSTHConsistency(ctx, sth0.TreeSize, sth1.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, sth0.TreeSize, sth1.TreeSize, cons, sth0.SHA256RootHash[:], sth1.SHA256RootHash[:]); err != nil {
		t.Errorf("consistency %d -> %d: %v", sth0.TreeSize, sth1.TreeSize, err)
	}
}

// checkEntry compares a get-entries entry with what was submitted.
func checkEntry(t *testing.T, e ct.LeafEntry, s submitted) {
	t.Helper()
	var leaf ct.MerkleTreeLeaf
	if _, err := tls.Unmarshal(e.LeafInput, &leaf); err != nil {
		t.Fatalf("leaf_input: %v", err)
	}
	if got := leaf.TimestampedEntry.Timestamp; got != s.sct.Timestamp {
		t.Errorf("entry timestamp %d, SCT timestamp %d", got, s.sct.Timestamp)
	}
	if s.precert {
		if leaf.TimestampedEntry.EntryType != ct.PrecertLogEntryType {
			t.Errorf("entry type %v, want precert", leaf.TimestampedEntry.EntryType)
		}
	} else if !bytes.Equal(leaf.TimestampedEntry.X509Entry.Data, s.chain[0]) {
		t.Errorf("entry certificate differs from the submitted one")
	}
}

func testResubmit(t *testing.T, st *stage) {
	notAfter := time.Now().AddDate(0, 0, 90)
	c := logClient(t, st.shardFor(t, 1, notAfter))
	for _, precert := range []bool{false, true} {
		chain, err := st.ca.Leaf(fmt.Sprintf("dup-%v.example.com", precert), notAfter, precert)
		if err != nil {
			t.Fatal(err)
		}
		first := submit(t, c, chain, precert)
		sth := waitForProof(t, c, leafHash(t, chain, precert, first.sct))
		time.Sleep(5 * time.Millisecond) // a fresh SCT would carry a later timestamp
		again := submit(t, c, chain, precert)
		if again.sct.Timestamp != first.sct.Timestamp {
			t.Errorf("resubmission got SCT timestamp %d, first %d", again.sct.Timestamp, first.sct.Timestamp)
		}
		// Another integration pass: the tree must not grow.
		time.Sleep(500 * time.Millisecond)
		after, err := c.GetSTH(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if after.TreeSize != sth.TreeSize {
			t.Errorf("tree grew from %d to %d on a resubmission", sth.TreeSize, after.TreeSize)
		}
	}
}

// waitForProof waits until the leaf is in the tree and returns the STH that
// includes it.
func waitForProof(t testing.TB, c *client.LogClient, h []byte) *ct.SignedTreeHead {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		sth, err := c.GetSTH(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if sth.TreeSize > 0 {
			if _, err := c.GetProofByHash(context.Background(), h, sth.TreeSize); err == nil {
				return sth
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaf %x not in the tree after 3 s", h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testRefusals(t *testing.T, st *stage) {
	notAfter := time.Now().AddDate(0, 0, 90)
	l := st.shardFor(t, 0, notAfter)
	good, err := st.ca.Leaf("refusal.example.com", notAfter, false)
	if err != nil {
		t.Fatal(err)
	}
	outside, err := st.ca.Leaf("outside.example.com", l.TemporalInterval.EndExclusive.AddDate(0, 1, 0), false)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newCA(t)
	unknownRoot, err := other.Leaf("unknown-root.example.com", notAfter, false)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(chain [][]byte) []string {
		var out []string
		for _, c := range chain {
			out = append(out, base64.StdEncoding.EncodeToString(c))
		}
		return out
	}
	chainBody := func(chain [][]byte) string { return string(mustJSON(t, map[string][]string{"chain": b64(chain)})) }
	for _, tc := range []struct {
		name, path, body string
		want             string // in the answer's body
	}{
		{"NotAfterOutsideWindow", "add-chain", chainBody(outside), "notafter"},
		{"UnknownRoot", "add-chain", chainBody(unknownRoot), "root"},
		{"MalformedJSON", "add-chain", `{"chain": [`, "parse"},
		{"NotJSON", "add-pre-chain", "hello", "parse"},
		{"BadBase64", "add-chain", `{"chain": ["!!!not base64"]}`, "parse"},
		{"GarbageDER", "add-chain", chainBody([][]byte{[]byte("garbage"), good[1]}), "certificate"},
		{"EmptyChain", "add-chain", `{"chain": []}`, "empty"},
		{"NoChain", "add-pre-chain", `{}`, "empty"},
		{"CertToPreChain", "add-pre-chain", chainBody(good), "precert"},
		{"Oversized", "add-chain", `{"chain": ["` + strings.Repeat("A", 3<<20) + `"]}`, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rsp, err := http.Post(l.URL+"ct/v1/"+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer rsp.Body.Close()
			b, _ := io.ReadAll(rsp.Body)
			if rsp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400; body %q", rsp.StatusCode, b)
			}
			if !strings.Contains(strings.ToLower(string(b)), tc.want) {
				t.Errorf("body %q does not say %q", b, tc.want)
			}
		})
	}
	t.Run("WrongMethod", func(t *testing.T) {
		rsp, err := http.Get(l.URL + "ct/v1/add-chain")
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET add-chain: status %d, want 405", rsp.StatusCode)
		}
	})
	for _, q := range []string{"get-entries?start=5&end=1", "get-entries?start=x&end=1", "get-proof-by-hash?hash=zz&tree_size=1", "get-sth-consistency?first=9&second=1", "get-entry-and-proof?leaf_index=-1&tree_size=1"} {
		rsp, err := http.Get(l.URL + "ct/v1/" + q)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode < 400 || rsp.StatusCode >= 500 {
			t.Errorf("GET %s: status %d, want 4xx", q, rsp.StatusCode)
		}
	}
}

func testLogList(t *testing.T, st *stage) {
	ll := st.logList(t)
	if len(ll.Operators) != 2 {
		t.Fatalf("%d operators, want 2", len(ll.Operators))
	}
	now := time.Now()
	for _, op := range ll.Operators {
		covered := false
		for _, l := range op.Logs {
			if !bytes.Equal(l.LogID, sha(l.Key)) {
				t.Errorf("%s: log_id is not the SHA-256 of the key", l.URL)
			}
			if _, err := x509.ParsePKIXPublicKey(l.Key); err != nil {
				t.Errorf("%s: key: %v", l.URL, err)
			}
			if l.TemporalInterval.StartInclusive.Before(now) && l.TemporalInterval.EndExclusive.After(now.AddDate(1, 0, 0)) {
				t.Errorf("%s: one shard spans more than a half-year", l.URL)
			}
			if !l.TemporalInterval.EndExclusive.Before(now.AddDate(1, 0, 0)) {
				covered = true
			}
			roots, err := logClient(t, l).GetAcceptedRoots(context.Background())
			if err != nil || len(roots) < 3 {
				t.Errorf("%s: get-roots: %v, %d roots (want the 2 staging roots and the extra root)", l.URL, err, len(roots))
			}
		}
		if !covered {
			t.Errorf("operator %s has no shard a year ahead", op.Name)
		}
	}
}

// TestRestart stops ctstage and starts it again on the same --data and
// storage: shards, keys, trees and entries survive, and the STHs before and
// after are consistent.
func TestRestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ca, root := newCA(t)
			dataDir, spec := t.TempDir(), b.spec(t)
			st := startStage(t, dataDir, spec, ca, root)
			notAfter := time.Now().AddDate(0, 0, 90)
			before := st.shardFor(t, 0, notAfter)
			c := logClient(t, before)
			for i := range 5 {
				chain, err := ca.Leaf(fmt.Sprintf("restart-%d.example.com", i), notAfter, i%2 == 0)
				if err != nil {
					t.Fatal(err)
				}
				submit(t, c, chain, i%2 == 0)
			}
			sth1 := waitForSTH(t, c, 5, 3*time.Second)
			listBefore := st.logList(t)
			st.stop(t)

			st = startStage(t, dataDir, spec, ca, root)
			listAfter := st.logList(t)
			if len(listAfter.Operators) != len(listBefore.Operators) {
				t.Fatalf("operators: %d before, %d after", len(listBefore.Operators), len(listAfter.Operators))
			}
			for i, op := range listBefore.Operators {
				for j, l := range op.Logs {
					m := listAfter.Operators[i].Logs[j]
					if !bytes.Equal(l.Key, m.Key) || path(l.URL) != path(m.URL) {
						t.Errorf("shard %s changed key or name across the restart", path(l.URL))
					}
				}
			}
			after := st.shardFor(t, 0, notAfter)
			c = logClient(t, after) // the key from before must verify the STHs of after
			chain, err := ca.Leaf("after-restart.example.com", notAfter, true)
			if err != nil {
				t.Fatal(err)
			}
			submit(t, c, chain, true)
			sth2 := waitForSTH(t, c, sth1.TreeSize+1, 3*time.Second)
			cons, err := c.GetSTHConsistency(context.Background(), sth1.TreeSize, sth2.TreeSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, sth1.TreeSize, sth2.TreeSize, cons, sth1.SHA256RootHash[:], sth2.SHA256RootHash[:]); err != nil {
				t.Errorf("STH before the restart (%d) and after (%d) are not consistent: %v", sth1.TreeSize, sth2.TreeSize, err)
			}
		})
	}
}

// path is the shard part of a log URL.
func path(u string) string {
	u = strings.TrimSuffix(u, "/")
	return u[strings.LastIndex(u, "/")+1:]
}

// testReadRanges asks each read endpoint for what is beyond the tree or
// not a range: every answer is 400 with a message, never a 500 (Trillian
// v1.8.0 answered get-proof-by-hash beyond the tree with Unknown, 500).
func testReadRanges(t *testing.T, st *stage) {
	notAfter := time.Now().AddDate(0, 0, 90)
	l := st.shardFor(t, 0, notAfter)
	c := logClient(t, l)
	chain, err := st.ca.Leaf("ranges.example.com", notAfter, false)
	if err != nil {
		t.Fatal(err)
	}
	s := submit(t, c, chain, false)
	sth := waitForProof(t, c, leafHash(t, chain, false, s.sct))
	hash := base64.StdEncoding.EncodeToString(leafHash(t, chain, false, s.sct))
	n := sth.TreeSize
	for _, q := range []string{
		fmt.Sprintf("get-proof-by-hash?hash=%s&tree_size=%d", url.QueryEscape(hash), n+100),
		fmt.Sprintf("get-proof-by-hash?hash=%s&tree_size=%d", url.QueryEscape(hash), int64(1)<<62),
		fmt.Sprintf("get-proof-by-hash?hash=%s&tree_size=-1", url.QueryEscape(hash)),
		fmt.Sprintf("get-proof-by-hash?hash=%s&tree_size=x", url.QueryEscape(hash)),
		"get-proof-by-hash?hash=notbase64&tree_size=1",
		fmt.Sprintf("get-entries?start=%d&end=%d", n+5, n+10),
		"get-entries?start=-1&end=2",
		"get-entries?start=2&end=1",
		"get-entries?start=0&end=x",
		fmt.Sprintf("get-sth-consistency?first=1&second=%d", n+100),
		"get-sth-consistency?first=3&second=1",
		"get-sth-consistency?first=-1&second=1",
		fmt.Sprintf("get-entry-and-proof?leaf_index=%d&tree_size=%d", n+5, n),
		fmt.Sprintf("get-entry-and-proof?leaf_index=0&tree_size=%d", n+100),
		"get-entry-and-proof?leaf_index=-1&tree_size=1",
	} {
		rsp, err := http.Get(l.URL + "ct/v1/" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusBadRequest || len(bytes.TrimSpace(body)) == 0 {
			t.Errorf("%s: %d %q, want 400 with a message", q, rsp.StatusCode, body)
		}
	}
}
