package sctverify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/tlog"
)

// Static CT API logs (c2sp.org/static-ct-api) publish a checkpoint and
// tiles instead of get-sth and get-proof-by-hash: the inclusion of an SCT
// is proven from its leaf_index extension, the checkpoint and the tiles.
// The Merkle tree is RFC 6962's, so golang.org/x/mod/sumdb/tlog, whose
// hashing is the same, builds and checks the proof from the tiles.

// Checkpoint fetches a tiled log's checkpoint and checks its
// RFC6962NoteSignature with the log's key: the signature line whose key
// name is the checkpoint's origin and whose key ID is the first four
// bytes of SHA-256(origin || 0x0A || 0x05 || LogID). It returns the tree
// head and the origin.
func (v *Verifier) Checkpoint(ctx context.Context, l *Log) (*STH, string, error) {
	if l.PublicKey == nil {
		return nil, "", fmt.Errorf("couldn't check the checkpoint: %v", l.KeyErr)
	}
	b, err := httpGet(ctx, v.HTTPClient, strings.TrimRight(l.URL, "/")+"/checkpoint", 1<<16)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't get the checkpoint: %w", err)
	}
	body, sigs, ok := strings.Cut(string(b), "\n\n")
	lines := strings.Split(body, "\n")
	if !ok || len(lines) != 3 {
		return nil, "", errors.New("the checkpoint is not a signed note of origin, size and root hash")
	}
	origin := lines[0]
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, "", fmt.Errorf("checkpoint size %q: %w", lines[1], err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, "", fmt.Errorf("checkpoint root hash %q is not 32 bytes of base64", lines[2])
	}
	h := sha256.New()
	h.Write([]byte(origin))
	h.Write([]byte{0x0A, 0x05})
	h.Write(l.ID[:])
	keyID := h.Sum(nil)[:4]
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		name, sigB64, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		sig, err := base64.StdEncoding.DecodeString(sigB64)
		if !ok || !strings.HasPrefix(line, "— ") || name != origin || err != nil || len(sig) < 4+8 || string(sig[:4]) != string(keyID) {
			continue // another signer's line, or not one
		}
		sth := &STH{TreeSize: size, Timestamp: binary.BigEndian.Uint64(sig[4:12]), RootHash: [32]byte(root)}
		if err := sth.verify(l, sig[12:]); err != nil {
			return nil, "", fmt.Errorf("checkpoint signature: %w", err)
		}
		return sth, origin, nil
	}
	return nil, "", fmt.Errorf("the checkpoint has no signature by the log's key for origin %q", origin)
}

// LeafIndex reads a static-ct-api SCT's leaf_index extension: exactly
// one, 5 bytes, no extension type twice.
func LeafIndex(exts []byte) (uint64, error) {
	s := cryptobyte.String(exts)
	seen := map[uint8]bool{}
	var idx uint64
	found := false
	for !s.Empty() {
		var typ uint8
		var data cryptobyte.String
		if !s.ReadUint8(&typ) || !s.ReadUint16LengthPrefixed(&data) {
			return 0, errors.New("SCT extensions do not parse")
		}
		if seen[typ] {
			return 0, fmt.Errorf("SCT extension %d appears twice", typ)
		}
		seen[typ] = true
		if typ != 0 {
			continue
		}
		if len(data) != 5 {
			return 0, fmt.Errorf("leaf_index extension of %d bytes, want 5", len(data))
		}
		for _, b := range data {
			idx = idx<<8 | uint64(b)
		}
		found = true
	}
	if !found {
		return 0, errors.New("no leaf_index extension")
	}
	return idx, nil
}

// ProveTiledInclusion proves from a tiled log's tiles that leafHash is
// entry idx of the tree of sth, whose signature the caller checked.
func (v *Verifier) ProveTiledInclusion(ctx context.Context, l *Log, sth *STH, idx uint64, leafHash [32]byte) error {
	if idx >= sth.TreeSize {
		return fmt.Errorf("leaf_index %d is beyond the tree of %d: %w", idx, sth.TreeSize, errNotFound)
	}
	tree := tlog.Tree{N: int64(sth.TreeSize), Hash: tlog.Hash(sth.RootHash)}
	hr := tlog.TileHashReader(tree, &tileReader{ctx: ctx, v: v, l: l})
	p, err := tlog.ProveRecord(tree.N, int64(idx), hr)
	if err != nil {
		return fmt.Errorf("couldn't build the inclusion proof from tiles: %w", err)
	}
	if err := tlog.CheckRecord(p, tree.N, tree.Hash, int64(idx), tlog.Hash(leafHash)); err != nil {
		return fmt.Errorf("entry %d of the tiles is not this SCT's entry: %w", idx, err)
	}
	return nil
}

// tileReader fetches Static CT API tiles for tlog: tile/<L>/<N>[.p/<W>].
type tileReader struct {
	ctx context.Context
	v   *Verifier
	l   *Log
}

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := fmt.Sprintf("tile/%d/%s", t.L, tileIndexPath(t.N))
		if t.W < 256 {
			path += fmt.Sprintf(".p/%d", t.W)
		}
		b, err := httpGet(r.ctx, r.v.HTTPClient, strings.TrimRight(r.l.URL, "/")+"/"+path, 8192)
		if err != nil {
			return nil, fmt.Errorf("couldn't get %s: %w", path, err)
		}
		out[i] = b
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// tileIndexPath encodes a tile index in 3-digit elements, all but the
// last prefixed x: 1234067 is x001/x234/067.
func tileIndexPath(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// ProveTiledConsistency proves from a tiled log's tiles that the tree of
// older is a prefix of the tree of newer (both checkpoints the caller
// checked).
func (v *Verifier) ProveTiledConsistency(ctx context.Context, l *Log, older, newer *STH) error {
	if older.TreeSize > newer.TreeSize {
		return fmt.Errorf("the tree shrank from %d to %d", older.TreeSize, newer.TreeSize)
	}
	if older.TreeSize == newer.TreeSize {
		if older.RootHash != newer.RootHash {
			return fmt.Errorf("two roots for the tree of %d", older.TreeSize)
		}
		return nil
	}
	if older.TreeSize == 0 {
		return nil
	}
	tree := tlog.Tree{N: int64(newer.TreeSize), Hash: tlog.Hash(newer.RootHash)}
	hr := tlog.TileHashReader(tree, &tileReader{ctx: ctx, v: v, l: l})
	p, err := tlog.ProveTree(tree.N, int64(older.TreeSize), hr)
	if err != nil {
		return fmt.Errorf("couldn't build the consistency proof from tiles: %w", err)
	}
	if err := tlog.CheckTree(p, tree.N, tree.Hash, int64(older.TreeSize), tlog.Hash(older.RootHash)); err != nil {
		return fmt.Errorf("the tree of %d is not a prefix of the tree of %d: %w", older.TreeSize, newer.TreeSize, err)
	}
	return nil
}
