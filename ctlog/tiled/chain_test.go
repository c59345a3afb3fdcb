package tiled

import (
	"bytes"
	"testing"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/internal/testsupport/testca"
)

// TestPrecertTBS: the TBSCertificate a precertificate's entry holds, the
// poison cut out byte for byte, is the one ct-go's BuildPrecertTBS (which
// ctfe uses) re-encodes; the issuers are parsed once.
func TestPrecertTBS(t *testing.T) {
	ca, err := testca.New("precert tbs")
	if err != nil {
		t.Fatal(err)
	}
	cv, err := newChainVerifier([][]byte{ca.Root.Raw})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		chain, err := ca.Leaf("tbs.example.com", time.Now().AddDate(0, 0, 30+i), true)
		if err != nil {
			t.Fatal(err)
		}
		v, err := cv.verify(chain, true, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := parse(chain[0])
		if err != nil {
			t.Fatal(err)
		}
		want, err := ctx509.BuildPrecertTBS(leaf.RawTBSCertificate, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.tbs, want) {
			t.Errorf("precertificate %d: the entry's TBS differs from BuildPrecertTBS's", i)
		}
	}
	if n := len(cv.parsed); n != len(chainIssuers(t, ca)) {
		t.Errorf("%d issuers parsed and kept, want %d", n, len(chainIssuers(t, ca)))
	}
}

func chainIssuers(t *testing.T, ca *testca.CA) [][]byte {
	chain, err := ca.Leaf("x.example.com", time.Now().AddDate(0, 0, 30), false)
	if err != nil {
		t.Fatal(err)
	}
	return chain[1:]
}
