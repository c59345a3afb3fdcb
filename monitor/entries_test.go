package monitor

import (
	"bytes"
	"encoding/json"
	"testing"

	ct "github.com/google/certificate-transparency-go"
)

func TestDecodeEntries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		ok     bool
		leaves int
	}{
		{"two", `{"entries":[{"leaf_input":"AAE=","extra_data":""},{"leaf_input":"AgM=","extra_data":"BA=="}]}`, true, 2},
		{"none", `{"entries":[]}`, true, 0},
		{"encoding/json's newline", "{\"entries\":[{\"leaf_input\":\"AAE=\",\"extra_data\":\"\"}]}\n", true, 1},
		{"escaped slash", `{"entries":[{"leaf_input":"A\/E=","extra_data":""}]}`, false, 0},
		{"members swapped", `{"entries":[{"extra_data":"","leaf_input":"AAE="}]}`, false, 0},
		{"spaces", `{"entries": [{"leaf_input": "AAE=", "extra_data": ""}]}`, false, 0},
		{"another member", `{"entries":[{"leaf_input":"AAE=","extra_data":"","x":1}]}`, false, 0},
		{"raw newline, which base64 would skip", "{\"entries\":[{\"leaf_input\":\"AA\nE=\",\"extra_data\":\"\"}]}", false, 0},
		{"bad base64", `{"entries":[{"leaf_input":"A!E=","extra_data":""}]}`, false, 0},
		{"cut", `{"entries":[{"leaf_input":"AAE=","extra_data":""}`, false, 0},
		{"trailing bytes", `{"entries":[{"leaf_input":"AAE=","extra_data":""}]}x`, false, 0},
		{"not entries", `{"sth":1}`, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, ok := decodeEntries([]byte(tc.in))
			if ok != tc.ok || len(es) != tc.leaves {
				t.Fatalf("decodeEntries = %d entries, %v; want %d, %v", len(es), ok, tc.leaves, tc.ok)
			}
			if ok {
				checkSameAsJSON(t, []byte(tc.in), es)
			}
		})
	}
}

// checkSameAsJSON fails unless encoding/json decodes in to the entries es.
func checkSameAsJSON(t *testing.T, in []byte, es []ct.LeafEntry) {
	t.Helper()
	var rsp ct.GetEntriesResponse
	if err := json.Unmarshal(in, &rsp); err != nil {
		t.Fatalf("decodeEntries took %q, which encoding/json refuses: %v", in, err)
	}
	if len(rsp.Entries) != len(es) {
		t.Fatalf("%d entries, encoding/json %d", len(es), len(rsp.Entries))
	}
	for i := range es {
		if !bytes.Equal(es[i].LeafInput, rsp.Entries[i].LeafInput) || !bytes.Equal(es[i].ExtraData, rsp.Entries[i].ExtraData) {
			t.Fatalf("entry %d differs from encoding/json's", i)
		}
	}
}

// FuzzDecodeEntries: whatever decodeEntries takes, encoding/json decodes
// to the same entries.
func FuzzDecodeEntries(f *testing.F) {
	f.Add([]byte(`{"entries":[{"leaf_input":"AAE=","extra_data":""},{"leaf_input":"AgM=","extra_data":"BA=="}]}`))
	f.Add([]byte(`{"entries":[]}`))
	f.Add([]byte(`{"entries":[{"leaf_input":"A\/E=","extra_data":""}]}`))
	f.Add([]byte("{\"entries\":[{\"leaf_input\":\"AA\nE=\",\"extra_data\":\"\"}]}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if es, ok := decodeEntries(in); ok {
			checkSameAsJSON(t, in, es)
		}
	})
}
