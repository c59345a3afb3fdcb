package tiled

import (
	"bytes"
	"encoding/json"
	"testing"

	ct "github.com/google/certificate-transparency-go"
)

func TestDecodeChain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		ok    bool
		certs int
	}{
		{"two", `{"chain":["AAE=","AgM="]}`, true, 2},
		{"one", `{"chain":["AAE="]}`, true, 1},
		{"none", `{"chain":[]}`, true, 0},
		{"an empty certificate", `{"chain":[""]}`, true, 1},
		{"encoding/json's newline", "{\"chain\":[\"AAE=\"]}\n", true, 1},
		{"escaped slash", `{"chain":["A\/E="]}`, false, 0},
		{"spaces", `{"chain": ["AAE=", "AgM="]}`, false, 0},
		{"another member", `{"chain":["AAE="],"x":1}`, false, 0},
		{"raw newline, which base64 would skip", "{\"chain\":[\"AA\nE=\"]}", false, 0},
		{"bad base64", `{"chain":["A!E="]}`, false, 0},
		{"a number", `{"chain":[1]}`, false, 0},
		{"trailing comma", `{"chain":["AAE=",]}`, false, 0},
		{"cut", `{"chain":["AAE="`, false, 0},
		{"cut in a string", `{"chain":["AAE`, false, 0},
		{"trailing bytes", `{"chain":["AAE="]}x`, false, 0},
		{"null", `{"chain":null}`, false, 0},
		{"capitalised", `{"Chain":["AAE="]}`, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, ok := decodeChain([]byte(tc.in))
			if ok != tc.ok || len(chain) != tc.certs {
				t.Fatalf("decodeChain = %d certificates, %v; want %d, %v", len(chain), ok, tc.certs, tc.ok)
			}
			if ok {
				checkChainAsJSON(t, []byte(tc.in), chain)
			}
		})
	}
}

// checkChainAsJSON fails unless encoding/json decodes in to chain.
func checkChainAsJSON(t *testing.T, in []byte, chain [][]byte) {
	t.Helper()
	var req ct.AddChainRequest
	if err := json.Unmarshal(in, &req); err != nil {
		t.Fatalf("decodeChain took %q, which encoding/json refuses: %v", in, err)
	}
	if len(req.Chain) != len(chain) {
		t.Fatalf("%d certificates, encoding/json %d", len(chain), len(req.Chain))
	}
	for i := range chain {
		if !bytes.Equal(chain[i], req.Chain[i]) {
			t.Fatalf("certificate %d differs from encoding/json's", i)
		}
	}
}

// FuzzDecodeChain: whatever decodeChain takes, encoding/json decodes to
// the same chain.
func FuzzDecodeChain(f *testing.F) {
	for _, seed := range []string{
		`{"chain":["AAE=","AgM="]}`, `{"chain":[]}`, `{"chain":["A\/E="]}`, "{\"chain\":[\"AA\nE=\"]}",
		`{"chain":[""]}`, `{"chain":["AAE=",]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if chain, ok := decodeChain(in); ok {
			checkChainAsJSON(t, in, chain)
		}
	})
}
