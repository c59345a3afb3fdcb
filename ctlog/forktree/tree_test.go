package forktree

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

func leafHashes(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		out[i] = Hash(rfc6962.DefaultHasher.HashLeaf(b[:]))
	}
	return out
}

// TestRootsAgainstVectors checks the roots against transparency-dev's
// published vectors (the RFC 6962 test tree of 8 leaves, and the empty
// tree).
func TestRootsAgainstVectors(t *testing.T) {
	var leaves []Hash
	for _, in := range testonly.LeafInputs() {
		leaves = append(leaves, Hash(rfc6962.DefaultHasher.HashLeaf(in)))
	}
	tr := New(leaves)
	for i, want := range testonly.RootHashes() {
		got, err := tr.Root(uint64(i))
		if err != nil || !bytes.Equal(got[:], want) {
			t.Errorf("root of %d leaves: %x, %v; want %x", i, got, err, want)
		}
	}
	if _, err := tr.Root(9); err == nil {
		t.Error("a root beyond the tree")
	}
}

// TestProofs checks every inclusion and consistency proof of trees up
// to 70 leaves with transparency-dev's verifier, against the reference
// tree's roots.
func TestProofs(t *testing.T) {
	const n = 70
	leaves := leafHashes(n)
	tr := New(leaves)
	ref := testonly.New(rfc6962.DefaultHasher)
	roots := [][]byte{rfc6962.DefaultHasher.EmptyRoot()}
	for _, l := range leaves {
		ref.Append(l[:])
		roots = append(roots, ref.Hash())
	}
	for size := uint64(1); size <= n; size++ {
		got, err := tr.Root(size)
		if err != nil || !bytes.Equal(got[:], roots[size]) {
			t.Fatalf("root of %d: %x, %v; want %x", size, got, err, roots[size])
		}
		for i := range size {
			p, err := tr.Inclusion(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, leaves[i][:], p, roots[size]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, size, err)
			}
		}
		for s1 := uint64(1); s1 <= size; s1++ {
			p, err := tr.Consistency(s1, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, s1, size, p, roots[s1], roots[size]); err != nil {
				t.Fatalf("consistency %d to %d: %v", s1, size, err)
			}
		}
	}
	if _, err := tr.Inclusion(n, n); err == nil {
		t.Error("inclusion of a leaf beyond the tree")
	}
	if _, err := tr.Consistency(3, n+1); err == nil {
		t.Error("consistency to a size beyond the tree")
	}
}

// TestTiles: a level-0 tile is the leaf hashes; an entry of a level-1
// tile is the root of 256 leaves; widths follow the tree's size.
func TestTiles(t *testing.T) {
	const n = 256*256 + 300
	leaves := leafHashes(n)
	tr := New(leaves)
	for _, tc := range []struct {
		level, n, size, want uint64
	}{
		{0, 0, 1, 1}, {0, 0, 256, 256}, {0, 1, 256, 0}, {0, 1, 300, 44}, {0, 257, n, 44},
		{1, 0, 255, 0}, {1, 0, 256, 1}, {1, 0, n, 256}, {1, 1, n, 1}, {2, 0, n, 1}, {2, 1, n, 0}, {8, 0, n, 0},
	} {
		if got := TileWidth(tc.level, tc.n, tc.size); got != tc.want {
			t.Errorf("TileWidth(%d, %d, %d) = %d, want %d", tc.level, tc.n, tc.size, got, tc.want)
		}
	}
	t0, err := tr.Tile(0, 257, 44)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 44 {
		if !bytes.Equal(t0[32*i:32*i+32], leaves[257*256+i][:]) {
			t.Fatalf("level-0 tile hash %d", i)
		}
	}
	t1, err := tr.Tile(1, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 17, 255} {
		want, _ := New(leaves[256*i : 256*i+256]).Root(256)
		if !bytes.Equal(t1[32*i:32*i+32], want[:]) {
			t.Errorf("level-1 tile hash %d is not the root of its 256 leaves", i)
		}
	}
	t2, err := tr.Tile(2, 0, 1)
	if root, _ := tr.Root(256 * 256); err != nil || !bytes.Equal(t2, root[:]) {
		t.Errorf("level-2 tile: %v", err)
	}
	for _, bad := range [][3]uint64{{0, 257, 45}, {1, 1, 2}, {0, 0, 0}, {0, 0, 257}, {3, 0, 1}} {
		if _, err := tr.Tile(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("tile %v beyond the tree", bad)
		}
	}
}
