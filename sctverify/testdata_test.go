package sctverify

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// sharedTestdata finds the outside test vectors (shared/testdata, kept
// beside the project with their licenses, not copied into it) by walking
// up from the package directory; CTSTAGE_TESTDATA overrides. Without them
// the test skips, or fails under CI=true.
func sharedTestdata(t testing.TB, sub string) string {
	t.Helper()
	if d := os.Getenv("CTSTAGE_TESTDATA"); d != "" {
		return filepath.Join(d, sub)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		cand := filepath.Join(dir, "shared", "testdata", sub)
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	testenv.Unavailable(t, "shared/testdata/%s not found above the package directory; set CTSTAGE_TESTDATA", sub)
	return ""
}

func readPEMBlocks(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		out = append(out, blk.Bytes)
	}
}
