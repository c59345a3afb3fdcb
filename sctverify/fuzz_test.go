package sctverify

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func seedProofs(f testing.TB) [][]byte {
	var out [][]byte
	dir := sharedTestdata(f, "ct-cpp")
	for _, name := range []string{"test-cert.proof", "test-embedded-pre-cert.proof", "rsa/test-cert-rsa.proof"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzParseSCTList: a list that parses re-encodes to the same bytes, and
// every SCT in it parses or is refused without panicking.
func FuzzParseSCTList(f *testing.F) {
	proofs := seedProofs(f)
	f.Add(encodeSCTList(proofs))
	f.Add(append(encodeSCTList(proofs[:1]), 0))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		scts, err := ParseSCTList(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeSCTList(scts), b) {
			t.Fatalf("list %x does not round-trip", b)
		}
		for _, s := range scts {
			ParseSCT(s)
		}
	})
}

// FuzzParseSCT: an SCT that parses re-encodes to the same bytes.
func FuzzParseSCT(f *testing.F) {
	for _, p := range seedProofs(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSCT(b)
		if err != nil {
			return
		}
		enc := []byte{0}
		enc = append(enc, s.LogID[:]...)
		enc = append(enc, byte(s.Timestamp>>56), byte(s.Timestamp>>48), byte(s.Timestamp>>40), byte(s.Timestamp>>32),
			byte(s.Timestamp>>24), byte(s.Timestamp>>16), byte(s.Timestamp>>8), byte(s.Timestamp))
		enc = append(enc, byte(len(s.Extensions)>>8), byte(len(s.Extensions)))
		enc = append(enc, s.Extensions...)
		enc = append(enc, s.HashAlg, s.SigAlg, byte(len(s.Signature)>>8), byte(len(s.Signature)))
		enc = append(enc, s.Signature...)
		if !bytes.Equal(enc, b) {
			t.Fatalf("SCT %x does not round-trip", b)
		}
	})
}

// FuzzParseLogList: any log list that parses has every log findable by ID,
// with a key that is usable or an error that says why.
func FuzzParseLogList(f *testing.F) {
	f.Add(logListJSON(f, newTestLog(f, "a", "A"), newTestLog(f, "b", "B")))
	f.Add([]byte(`{"operators":[{"name":"x","logs":[{"key":"AAAA","log_id":"AAAA","url":"http://x/","mmd":1,"state":{"retired":{"timestamp":"2020-01-01T00:00:00Z"}}}]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ll, err := ParseLogList(b)
		if err != nil {
			return
		}
		for _, l := range ll.Logs {
			if ll.Lookup(l.ID) != l {
				t.Fatalf("log %q not found by its ID", l.Description)
			}
			if (l.PublicKey == nil) == (l.KeyErr == nil) {
				t.Fatalf("log %q: key %v, error %v", l.Description, l.PublicKey, l.KeyErr)
			}
		}
	})
}

// FuzzRemoveSCTList: the cut never panics, and what it returns is shorter
// than what it was given.
func FuzzRemoveSCTList(f *testing.F) {
	dir := sharedTestdata(f, "ct-cpp")
	for _, blk := range readPEMBlocks(f, filepath.Join(dir, "test-embedded-cert.pem")) {
		c, err := x509.ParseCertificate(blk)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.RawTBSCertificate)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := RemoveSCTList(b)
		if err == nil && len(out) >= len(b) {
			t.Fatalf("cut of %d bytes gave %d", len(b), len(out))
		}
	})
}

// FuzzParseSCTFile: --scts input never panics, and every SCT it yields
// is a whole serialized SCT that ParseSCT takes or refuses cleanly.
func FuzzParseSCTFile(f *testing.F) {
	proofs := seedProofs(f)
	f.Add(encodeSCTList(proofs))
	f.Add([]byte(`{"sct_version":0,"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":1,"extensions":"","signature":"BAMARzBFAiEA"}`))
	f.Add([]byte(`[{"sct_version":0,"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":1,"extensions":"AAAF","signature":"BAMAAQ=="}]`))
	f.Add([]byte("{}\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		scts, err := ParseSCTFile(b)
		if err != nil {
			return
		}
		if len(scts) == 0 {
			t.Fatal("no error and no SCTs")
		}
		for _, s := range scts {
			ParseSCT(s)
		}
	})
}

// TestParseSCTFile: the forms --scts takes, and what it refuses.
func TestParseSCTFile(t *testing.T) {
	proofs := seedProofs(t)
	one := `{"sct_version":0,"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":1,"extensions":"","signature":"BAMAAQE="}`
	for _, tc := range []struct {
		name string
		in   string
		n    int // SCTs; -1 for an error
	}{
		{"list", string(encodeSCTList(proofs)), len(proofs)},
		{"one answer", one, 1},
		{"lines", one + "\n" + one + "\n", 2},
		{"array", "[" + one + "," + one + "]", 2},
		{"empty", " \n", -1},
		{"no id", `{"sct_version":0,"timestamp":1,"signature":"BAMAAQ=="}`, -1},
		{"no version", `{"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":1,"signature":"BAMAAQ=="}`, -1},
		{"bad json", `{"sct_version":`, -1},
		{"empty array", `[]`, -1},
	} {
		scts, err := ParseSCTFile([]byte(tc.in))
		switch {
		case tc.n < 0 && err == nil:
			t.Errorf("%s: took it", tc.name)
		case tc.n >= 0 && (err != nil || len(scts) != tc.n):
			t.Errorf("%s: %d SCTs, %v; want %d", tc.name, len(scts), err, tc.n)
		}
	}
	if scts, _ := ParseSCTFile([]byte(one)); len(scts) == 1 {
		if s, err := ParseSCT(scts[0]); err != nil || s.Timestamp != 1 {
			t.Errorf("the answer's SCT: %+v, %v", s, err)
		}
	}
}
