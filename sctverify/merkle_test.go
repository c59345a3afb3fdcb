package sctverify

import (
	"encoding/json"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The merkle vectors (shared/testdata/merkle, transparency-dev/merkle's
// testdata, Apache 2.0) check the proof verification this package relies
// on: every inclusion and consistency case through
// proof.VerifyInclusion and VerifyConsistency (which refuses size1 == 0,
// as the vectors expect and merkle v0.0.2 does not), and every subtree
// inclusion case through subtreeInclusion below. Excluded, with the
// reason: subtreeconsistency/ (Merkle Tree Certificates' subtree
// consistency proofs: merkle v0.0.2 has no verifier for them and RFC 6962
// verification never uses one; see docs/verify.md).

type inclusionVector struct {
	LeafIdx  uint64   `json:"leafIdx"`
	TreeSize uint64   `json:"treeSize"`
	Start    uint64   `json:"start"`
	End      uint64   `json:"end"`
	Root     []byte   `json:"root"`
	LeafHash []byte   `json:"leafHash"`
	Proof    [][]byte `json:"proof"`
	Desc     string   `json:"desc"`
	WantErr  bool     `json:"wantErr"`
}

type consistencyVector struct {
	Size1   uint64   `json:"size1"`
	Size2   uint64   `json:"size2"`
	Root1   []byte   `json:"root1"`
	Root2   []byte   `json:"root2"`
	Proof   [][]byte `json:"proof"`
	Desc    string   `json:"desc"`
	WantErr bool     `json:"wantErr"`
}

// merkleExcluded are the vector directories not run, with the reason.
var merkleExcluded = map[string]string{
	"subtreeconsistency": "subtree consistency proofs (Merkle Tree Certificates) have no verifier in transparency-dev/merkle v0.0.2 and no use in RFC 6962",
}

func TestMerkleVectors(t *testing.T) {
	root := sharedTestdata(t, "merkle")
	counts := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		kind := strings.Split(rel, string(filepath.Separator))[0]
		if _, ok := merkleExcluded[kind]; ok {
			counts[kind+" (excluded)"]++
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		counts[kind]++
		t.Run(rel, func(t *testing.T) { runMerkleVector(t, kind, b) })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"inclusion", "consistency", "subtreeinclusion"} {
		if counts[k] == 0 {
			t.Errorf("no %s vectors found under %s", k, root)
		}
	}
	t.Logf("vectors run: %v", counts)
}

func runMerkleVector(t *testing.T, kind string, b []byte) {
	var err error
	var wantErr bool
	var desc string
	switch kind {
	case "inclusion", "subtreeinclusion":
		var v inclusionVector
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		wantErr, desc = v.WantErr, v.Desc
		if kind == "inclusion" {
			err = proof.VerifyInclusion(rfc6962.DefaultHasher, v.LeafIdx, v.TreeSize, v.LeafHash, v.Proof, v.Root)
		} else {
			err = subtreeInclusion(v.LeafIdx, v.Start, v.End, v.LeafHash, v.Proof, v.Root)
		}
	case "consistency":
		var v consistencyVector
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		wantErr, desc = v.WantErr, v.Desc
		err = VerifyConsistency(v.Size1, v.Size2, v.Proof, v.Root1, v.Root2)
	default:
		t.Fatalf("unknown vector kind %q", kind)
	}
	if (err != nil) != wantErr {
		t.Errorf("%s: err = %v, want error: %v", desc, err, wantErr)
	}
}

// subtreeInclusion verifies the inclusion of a leaf in the subtree
// [start, end) of a Merkle tree, as Merkle Tree Certificates define it: the
// subtree must be valid (start < end, start a multiple of the smallest
// power of two >= end - start), the leaf inside it, and the proof is the
// RFC 6962 inclusion proof of leaf - start in the tree of the subtree's
// end - start leaves.
func subtreeInclusion(leaf, start, end uint64, leafHash []byte, p [][]byte, root []byte) error {
	if start >= end {
		return errBadSubtree
	}
	size := end - start
	if bits.Len64(size-1) >= 64 || start%(uint64(1)<<bits.Len64(size-1)) != 0 {
		return errBadSubtree
	}
	if leaf < start || leaf >= end {
		return errBadSubtree
	}
	return proof.VerifyInclusion(rfc6962.DefaultHasher, leaf-start, size, leafHash, p, root)
}

var errBadSubtree = os.ErrInvalid
