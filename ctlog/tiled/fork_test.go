package tiled_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/ctstage/ctstage/internal/testsupport/testca"
)

// TestTiledFork takes the split view's fork at the two tile boundaries
// (the fabricated entry completing a full tile, and starting a new one)
// and has Sunlight's client read it: the fork's checkpoint verifies, and
// its tiles prove every entry, the fabricated one included.
func TestTiledFork(t *testing.T) {
	ca, err := testca.New("fork test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tl := start(t, backend{dir: t.TempDir()}, key, ca)
	c := tl.ctClient(t)
	notAfter := time.Now().AddDate(0, 0, 90)
	add := func(from, to int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for i := from; i < to; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				chain, err := ca.Leaf(fmt.Sprintf("fork-%d.example.com", i), notAfter, i%3 == 0)
				if err != nil {
					t.Error(err)
					return
				}
				addf := c.AddChain
				if i%3 == 0 {
					addf = c.AddPreChain
				}
				if _, err := addf(t.Context(), asn1(chain)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	for _, base := range []int64{255, 256} {
		add(len(readAll(t, tl)), int(base))
		if t.Failed() {
			t.FailNow()
		}
		if err := tl.log.Fork(t.Context(), time.Now()); err != nil {
			t.Fatal(err)
		}
		tl.forked.Store(true)
		sc := tl.sunlight(t)
		cp, _, err := sc.Checkpoint(t.Context())
		if err != nil || cp.N != base+1 {
			t.Fatalf("fork of %d: checkpoint %v, size %d", base, err, cp.N)
		}
		if got := entriesOf(t, tl, cp.Tree); int64(len(got)) != base+1 {
			t.Errorf("fork of %d: read %d entries", base, len(got))
		}
		tl.log.Unfork()
		tl.forked.Store(false)
	}
}

// readAll is the leaf indexes of every entry of the log's newest
// checkpoint, read with Sunlight's client.
func readAll(t *testing.T, tl *testLog) []int64 {
	t.Helper()
	cp, _, err := tl.sunlight(t).Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return entriesOf(t, tl, cp.Tree)
}

// entriesOf reads every entry of tree with Sunlight's client, which
// proves the data tiles against it; Entries may stop before a partial
// data tile, and resumed with the same tree reads the rest. It returns
// their leaf indexes, checked to be their positions.
func entriesOf(t *testing.T, tl *testLog, tree tlog.Tree) []int64 {
	t.Helper()
	sc := tl.sunlight(t)
	var idx []int64
	for round := 0; int64(len(idx)) < tree.N && round < 3; round++ {
		for i, e := range sc.Entries(t.Context(), tree, int64(len(idx))) {
			if e.LeafIndex != i {
				t.Errorf("entry %d has leaf_index %d", i, e.LeafIndex)
			}
			idx = append(idx, i)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return idx
}
