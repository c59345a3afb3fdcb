// Package forktree is an RFC 6962 Merkle tree held in memory: the tree
// of the split_view fault's fork, which is a real log's prefix with
// fabricated leaves after it. It gives the fork's root, its inclusion
// and consistency proofs (RFC 6962 section 2.1) and its hash tiles
// (c2sp.org/tlog-tiles), all computed from the leaf hashes.
package forktree

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Hash is a node's SHA-256 hash.
type Hash = [32]byte

// Tree is an immutable Merkle tree over its leaf hashes.
type Tree struct {
	// levels[l][i] is the hash of the perfect subtree of height l whose
	// leftmost leaf is i<<l; a level holds only complete subtrees.
	levels [][]Hash
}

// New builds the tree over leaves (the leaf hashes, RFC 6962's
// SHA-256(0x00 || leaf)). It keeps its own copy.
func New(leaves []Hash) *Tree {
	t := &Tree{levels: [][]Hash{append([]Hash(nil), leaves...)}}
	for lv := t.levels[0]; len(lv) > 1; lv = t.levels[len(t.levels)-1] {
		up := make([]Hash, len(lv)/2)
		for i := range up {
			up[i] = children(lv[2*i], lv[2*i+1])
		}
		t.levels = append(t.levels, up)
	}
	return t
}

func children(l, r Hash) Hash {
	return Hash(rfc6962.DefaultHasher.HashChildren(l[:], r[:]))
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return uint64(len(t.levels[0])) }

// Leaf is the hash of leaf i.
func (t *Tree) Leaf(i uint64) Hash { return t.levels[0][i] }

// node is the hash of a complete subtree.
func (t *Tree) node(id compact.NodeID) (Hash, error) {
	if int(id.Level) >= len(t.levels) || id.Index >= uint64(len(t.levels[id.Level])) {
		return Hash{}, fmt.Errorf("forktree: node %d/%d is not in a tree of %d leaves", id.Level, id.Index, t.Size())
	}
	return t.levels[id.Level][id.Index], nil
}

// Root is the root hash of the tree's first size leaves; the empty
// tree's is SHA-256 of nothing.
func (t *Tree) Root(size uint64) (Hash, error) {
	if size > t.Size() {
		return Hash{}, fmt.Errorf("forktree: size %d is beyond the tree's %d leaves", size, t.Size())
	}
	if size == 0 {
		return Hash(rfc6962.DefaultHasher.EmptyRoot()), nil
	}
	// The complete subtrees covering [0, size), largest first, folded
	// from the right.
	ids := compact.RangeNodes(0, size, nil)
	root, err := t.node(ids[len(ids)-1])
	if err != nil {
		return Hash{}, err
	}
	for i := len(ids) - 2; i >= 0; i-- {
		h, err := t.node(ids[i])
		if err != nil {
			return Hash{}, err
		}
		root = children(h, root)
	}
	return root, nil
}

// Inclusion is the audit path of leaf index in the tree of size leaves.
func (t *Tree) Inclusion(index, size uint64) ([][]byte, error) {
	if size > t.Size() {
		return nil, fmt.Errorf("forktree: size %d is beyond the tree's %d leaves", size, t.Size())
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return t.rehash(nodes)
}

// Consistency is the consistency proof from the tree of size1 leaves to
// the tree of size2 leaves.
func (t *Tree) Consistency(size1, size2 uint64) ([][]byte, error) {
	if size2 > t.Size() {
		return nil, fmt.Errorf("forktree: size %d is beyond the tree's %d leaves", size2, t.Size())
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return t.rehash(nodes)
}

func (t *Tree) rehash(nodes proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := t.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = h[:]
	}
	return nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
}

// TileWidth is how many hashes tile n of level holds in a tree of size
// leaves (c2sp.org/tlog-tiles: a tile of level L holds the hashes of
// height 8L, 256 to a tile), 0 when it holds none.
func TileWidth(level, n, size uint64) uint64 {
	if level > 7 {
		return 0
	}
	nodes := size >> (8 * level)
	if nodes <= n*256 {
		return 0
	}
	return min(nodes-n*256, 256)
}

// Tile is hash tile n of level with width hashes, as the tree holds it.
func (t *Tree) Tile(level, n, width uint64) ([]byte, error) {
	if width == 0 || width > 256 || width > TileWidth(level, n, t.Size()) {
		return nil, fmt.Errorf("forktree: no tile %d/%d of width %d in a tree of %d leaves", level, n, width, t.Size())
	}
	lv := t.levels[8*level]
	out := make([]byte, 0, width*32)
	for i := n * 256; i < n*256+width; i++ {
		out = append(out, lv[i][:]...)
	}
	return out, nil
}
