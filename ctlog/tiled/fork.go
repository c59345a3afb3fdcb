package tiled

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/tessera/ctonly"
	"golang.org/x/crypto/cryptobyte"

	"github.com/ctstage/ctstage/ctlog/forktree"
)

// The split view of a tiled log (ctstage's split_view fault). The fork is
// taken from the checkpoint readers are shown when it is set: its first
// N entries are the log's own, and entry N is fabricated (a copy of
// entry N-1 one millisecond later, with its own leaf_index). Its
// checkpoint is signed with the log's key, and its tiles are consistent
// with it and with every checkpoint of N entries or fewer, but with none
// of the main view's above N. The fork does not grow. Tessera's storage
// is not touched: the fork lives in memory, costing one read of the
// level-0 tiles when it is taken.

// tiledFork is one fork, immutable once made.
type tiledFork struct {
	set  time.Time // the fault's Set it was made for
	base uint64    // N
	tree *forktree.Tree
	// bundle is the fork's data tile N/256: the log's entries of that
	// tile below N, then the fabricated one.
	bundle []byte
}

// forkState is the log's fork and the fault it is for.
type forkState struct {
	mu   sync.Mutex
	want time.Time // the Set of the split_view fault, zero when none
	fork *tiledFork
}

// Fork takes the fork for the split_view fault set at set, unless it is
// taken already. On an empty log there is nothing to fork yet: the
// first request shown the fork takes it once there is an entry.
func (l *Log) Fork(ctx context.Context, set time.Time) error {
	l.forks.mu.Lock()
	l.forks.want = set
	l.forks.mu.Unlock()
	_, err := l.forkNow(ctx)
	return err
}

// Unfork drops the fork: readers see the main view again.
func (l *Log) Unfork() {
	l.forks.mu.Lock()
	l.forks.want, l.forks.fork = time.Time{}, nil
	l.forks.mu.Unlock()
}

// forkNow is the fork wanted, taken on first use; nil when none is
// wanted or the log is empty.
func (l *Log) forkNow(ctx context.Context) (*tiledFork, error) {
	f := &l.forks
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.want.IsZero() {
		return nil, nil
	}
	if f.fork != nil && f.fork.set.Equal(f.want) {
		return f.fork, nil
	}
	start := time.Now()
	fk, err := l.makeFork(ctx)
	if err != nil || fk == nil {
		return nil, err
	}
	fk.set = f.want
	f.fork = fk
	root, _ := fk.tree.Root(fk.tree.Size())
	l.opts.Logger.Warn("split view forked", "origin", l.opts.Origin, "base_size", fk.base, "fork_size", fk.tree.Size(),
		"fork_root", fmt.Sprintf("%x", root), "took", time.Since(start).Round(time.Millisecond))
	return fk, nil
}

// makeFork reads the level-0 tiles of the tree readers are shown and
// fabricates the entry after its last.
func (l *Log) makeFork(ctx context.Context) (*tiledFork, error) {
	_, n, err := l.servedCheckpoint(ctx)
	if err != nil || n == 0 {
		return nil, err
	}
	hashes := make([]forktree.Hash, 0, n+1)
	for k := uint64(0); k*entriesPerTile < n; k++ {
		t, err := l.readTile(ctx, 0, k, widthAt(0, k, n))
		if err != nil {
			return nil, fmt.Errorf("couldn't read tile 0/%d: %w", k, err)
		}
		for i := 0; i+sha256.Size <= len(t); i += sha256.Size {
			hashes = append(hashes, forktree.Hash(t[i:i+sha256.Size]))
		}
	}
	k := (n - 1) / entriesPerTile
	bundle, err := l.readTile(ctx, dataLevel, k, widthAt(dataLevel, k, n))
	if err != nil {
		return nil, fmt.Errorf("couldn't read data tile %d: %w", k, err)
	}
	_, ends, err := bundleEntries(bundle)
	if err != nil {
		return nil, err
	}
	lastStart := 0
	if len(ends) > 1 {
		lastStart = ends[len(ends)-2]
	}
	e, err := parseTileLeaf(bundle[lastStart:])
	if err != nil {
		return nil, fmt.Errorf("couldn't read entry %d to fork from: %w", n-1, err)
	}
	e.Timestamp++
	fab := e.LeafData(n)
	hashes = append(hashes, forktree.Hash(e.MerkleLeafHash(n)))
	if n%entriesPerTile == 0 {
		bundle = nil // the fabricated entry starts a new data tile
	}
	return &tiledFork{base: n, tree: forktree.New(hashes), bundle: append(bundle[:len(bundle):len(bundle)], fab...)}, nil
}

// parseTileLeaf reads one TileLeaf (c2sp.org/static-ct-api, "Log
// entries"), which is all of b.
func parseTileLeaf(b []byte) (*ctonly.Entry, error) {
	s := cryptobyte.String(b)
	var e ctonly.Entry
	var typ uint16
	var cert, ext, pre, chain cryptobyte.String
	if !s.ReadUint64(&e.Timestamp) || !s.ReadUint16(&typ) {
		return nil, errors.New("truncated entry")
	}
	switch typ {
	case 0:
	case 1:
		e.IsPrecert = true
		if !s.ReadBytes(&e.IssuerKeyHash, 32) {
			return nil, errors.New("truncated entry")
		}
	default:
		return nil, fmt.Errorf("entry type %d", typ)
	}
	if !s.ReadUint24LengthPrefixed(&cert) || !s.ReadUint16LengthPrefixed(&ext) ||
		e.IsPrecert && !s.ReadUint24LengthPrefixed(&pre) || !s.ReadUint16LengthPrefixed(&chain) || !s.Empty() {
		return nil, errors.New("malformed entry")
	}
	e.Certificate, e.Precertificate = cert, pre
	for len(chain) >= sha256.Size {
		e.FingerprintsChain = append(e.FingerprintsChain, [32]byte(chain[:sha256.Size]))
		chain = chain[sha256.Size:]
	}
	if len(chain) != 0 {
		return nil, errors.New("malformed chain fingerprints")
	}
	return &e, nil
}

// ForkHandler is the handler that serves the fork's answer to a read of
// endpoint ("checkpoint", "tile" or "data-tile") at rel (the path under
// the log's prefix); what the fork shares with the log is served by
// next. It is nil when there is no fork to show.
func (l *Log) ForkHandler(ctx context.Context, endpoint, rel string, next http.Handler) http.Handler {
	fk, err := l.forkNow(ctx)
	if err != nil {
		l.opts.Logger.Warn("couldn't fork the split view; serving the main view", "origin", l.opts.Origin, "err", err)
		return nil
	}
	if fk == nil {
		return nil
	}
	size := fk.tree.Size()
	switch endpoint {
	case "checkpoint":
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			root, _ := fk.tree.Root(size)
			cp, err := l.signCheckpoint(size, root[:], time.Now())
			if err != nil {
				http.Error(w, "Internal Server Error", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache, max-age=0")
			w.Write(cp)
		})
	case "tile", "data-tile":
		level, n, width, ok := parseTile(strings.TrimPrefix(rel, "/"))
		if !ok {
			return next
		}
		need, ok := tileNeeds(hashLevel(level), n, width)
		if !ok || need <= fk.base {
			return next // the same tile in both views
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if need > size {
				http.Error(w, "Not Found\nno such tile in the published tree", http.StatusNotFound)
				return
			}
			if level == dataLevel {
				// need is exactly the fork's size: the fork's last tile, whole.
				l.serveStored(w, r, fk.bundle, nil, "application/octet-stream", true)
				return
			}
			b, err := fk.tree.Tile(level, n, width)
			l.serveStored(w, r, b, err, "application/octet-stream", false)
		})
	}
	return nil
}
