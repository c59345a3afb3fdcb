package sctverify

import "testing"

func TestLeafIndex(t *testing.T) {
	for _, tc := range []struct {
		name string
		exts []byte
		want uint64
		ok   bool
	}{
		{"index 0", []byte{0, 0, 5, 0, 0, 0, 0, 0}, 0, true},
		{"index 2^32+7", []byte{0, 0, 5, 1, 0, 0, 0, 7}, 1<<32 + 7, true},
		{"with another extension", []byte{9, 0, 1, 0xff, 0, 0, 5, 0, 0, 0, 1, 0}, 256, true},
		{"none", nil, 0, false},
		{"only another", []byte{9, 0, 0}, 0, false},
		{"short", []byte{0, 0, 4, 0, 0, 0, 1}, 0, false},
		{"long", []byte{0, 0, 6, 0, 0, 0, 0, 0, 1}, 0, false},
		{"twice", []byte{0, 0, 5, 0, 0, 0, 0, 1, 0, 0, 5, 0, 0, 0, 0, 2}, 0, false},
		{"truncated", []byte{0, 0, 5, 0, 0}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LeafIndex(tc.exts)
			if (err == nil) != tc.ok || got != tc.want && tc.ok {
				t.Errorf("LeafIndex(%x) = %d, %v; want %d, ok %v", tc.exts, got, err, tc.want, tc.ok)
			}
		})
	}
}
