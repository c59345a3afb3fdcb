package tiled

import (
	"fmt"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
)

func TestParseTile(t *testing.T) {
	for _, tc := range []struct {
		path            string
		level, n, width uint64
		ok              bool
	}{
		{"tile/0/000", 0, 0, 256, true},
		{"tile/0/999", 0, 999, 256, true},
		{"tile/0/x001/000", 0, 1000, 256, true},
		// A log of 1,000,000 entries ends in this partial tile.
		{"tile/0/x003/906.p/64", 0, 3906, 64, true},
		{"tile/data/x003/906.p/64", dataLevel, 3906, 64, true},
		{"tile/2/x001/x234/067", 2, 1234067, 256, true},
		{"tile/5/x001/x234/067.p/255", 5, 1234067, 255, true},
		{"tile/0/x000/906", 0, 0, 0, false}, // not the one encoding of 906
		{"tile/0/x001/x000/067", 0, 1000067, 256, true},
		{"tile/0/x003", 0, 0, 0, false},
		{"tile/0/x003/", 0, 0, 0, false},
		{"tile/0/003/906", 0, 0, 0, false},
		{"tile/0/x3/906", 0, 0, 0, false},
		{"tile/0/906.p/0", 0, 0, 0, false},
		{"tile/0/906.p/256", 0, 0, 0, false},
		{"tile/0/906.p/064", 0, 0, 0, false},
		{"tile/6/000", 0, 0, 0, false},
		{"tile/entries/000", 0, 0, 0, false},
	} {
		level, n, width, ok := parseTile(tc.path)
		if ok != tc.ok || ok && (level != tc.level || n != tc.n || width != tc.width) {
			t.Errorf("parseTile(%q) = %d, %d, %d, %v; want %d, %d, %d, %v",
				tc.path, level, n, width, ok, tc.level, tc.n, tc.width, tc.ok)
		}
	}
}

// Every path Tessera writes parses back to its level, index and width.
func TestParseTileTesseraPaths(t *testing.T) {
	for _, n := range []uint64{0, 1, 999, 1000, 3906, 999999, 1000000, 1234067, 1 << 32} {
		for _, w := range []uint8{0, 1, 64, 255} {
			want := uint64(w)
			if w == 0 {
				want = entriesPerTile
			}
			for level := uint64(0); level <= 5; level++ {
				p := layout.TilePath(level, n, w)
				if l, gn, gw, ok := parseTile(p); !ok || l != level || gn != n || gw != want {
					t.Errorf("parseTile(%q) = %d, %d, %d, %v", p, l, gn, gw, ok)
				}
			}
			p := fmt.Sprintf("tile/data/%s", layout.NWithSuffix(0, n, w))
			if l, gn, gw, ok := parseTile(p); !ok || l != dataLevel || gn != n || gw != want {
				t.Errorf("parseTile(%q) = %d, %d, %d, %v", p, l, gn, gw, ok)
			}
		}
	}
}

// A path that parses is the one encoding of what it parses to.
func FuzzParseTile(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/0/x003/906.p/64", "tile/data/x001/x234/067", "tile/0/x000/906"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		level, n, width, ok := parseTile(p)
		if !ok {
			return
		}
		w := uint8(0)
		if width < entriesPerTile {
			w = uint8(width)
		}
		want := layout.TilePath(level, n, w)
		if level == dataLevel {
			want = "tile/data/" + layout.NWithSuffix(0, n, w)
		}
		if p != want {
			t.Fatalf("parseTile(%q) = %d, %d, %d; that encodes as %q", p, level, n, width, want)
		}
	})
}
