package monitor

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"filippo.io/sunlight"
	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tiledSource reads a static-ct-api log with Sunlight's client, which
// proves every data tile against the tree it reads.
type tiledSource struct {
	c      *sunlight.Client
	pub    crypto.PublicKey
	hc     *http.Client
	prefix string // the monitoring prefix, with its trailing "/"
	// parallel is how many chunks of entries are parsed at once.
	parallel int
}

func newTiledSource(monitoringURL string, key []byte, hc *http.Client, parallel int) (*tiledSource, error) {
	pub, err := ctPublicKey(key)
	if err != nil {
		return nil, err
	}
	c, err := sunlight.NewClient(&sunlight.ClientConfig{MonitoringPrefix: monitoringURL, PublicKey: pub, HTTPClient: hc,
		UserAgent: userAgent, Timeout: 2 * time.Minute})
	if err != nil {
		return nil, err
	}
	return &tiledSource{c: c, pub: pub, hc: hc, prefix: strings.TrimSuffix(monitoringURL, "/") + "/", parallel: max(parallel, 1)}, nil
}

func (s *tiledSource) head(ctx context.Context) (Head, error) {
	// One GET, not the tile fetcher's retries: the monitor's own polls
	// retry, and count how long the log has failed.
	signed, err := getBody(ctx, s.hc, s.prefix+"checkpoint", 1<<20)
	if err != nil {
		return Head{}, err
	}
	origin, _, _ := strings.Cut(string(signed), "\n")
	v, err := sunlight.NewRFC6962Verifier(origin, s.pub)
	if err != nil {
		return Head{}, fmt.Errorf("checkpoint origin %q: %v", origin, err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Head{}, fmt.Errorf("%w: checkpoint: %v", errSignature, err)
	}
	cp, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil || cp.Origin != origin {
		return Head{}, fmt.Errorf("%w: checkpoint does not parse or names another origin: %v", errSignature, err)
	}
	ts, err := sunlight.RFC6962SignatureTimestamp(n.Sigs[0])
	if err != nil {
		return Head{}, fmt.Errorf("%w: checkpoint signature: %v", errSignature, err)
	}
	return Head{Size: uint64(cp.N), Root: Hash(cp.Hash), Time: time.UnixMilli(ts)}, nil
}

func (s *tiledSource) consistency(ctx context.Context, from, to Head) error {
	hr := torchwood.TileHashReaderWithContext(ctx, tlog.Tree{N: int64(to.Size), Hash: tlog.Hash(to.Root)}, s.c.TileReader())
	p, err := tlog.ProveTree(int64(to.Size), int64(from.Size), hr)
	if err != nil {
		if strings.Contains(err.Error(), "inconsistent") {
			// The tiles do not hash to the checkpoint: the log lies.
			return fmt.Errorf("%w: the tiles of the tree of size %d: %v", errInconsistent, to.Size, err)
		}
		return err
	}
	if err := tlog.CheckTree(p, int64(to.Size), tlog.Hash(to.Root), int64(from.Size), tlog.Hash(from.Root)); err != nil {
		return fmt.Errorf("%w: from size %d to %d: %v", errInconsistent, from.Size, to.Size, err)
	}
	return nil
}

// entries reads [start, end) with Sunlight's client, which fetches the
// data tiles, up to 50 at once, and proves each against the tree. The
// entries are parsed (most of the work) by up to parallel goroutines, a
// tile's worth each, and handed to fn in order.
func (s *tiledSource) entries(ctx context.Context, start, end uint64, to Head, fn func(Entry) error) error {
	tree := tlog.Tree{N: int64(to.Size), Hash: tlog.Hash(to.Root)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A chunk's parse starts once its future is queued: at most parallel
	// chunks are parsed at once, the one fn takes included.
	futures := make(chan chan []Entry, s.parallel-1)
	var readErr error
	go func() {
		defer close(futures)
		readErr = s.read(ctx, tree, start, end, func(chunk []*sunlight.LogEntry, from uint64) bool {
			f := make(chan []Entry, 1)
			select {
			case futures <- f:
			case <-ctx.Done():
				return false
			}
			go func() { f <- parseTiled(chunk, from) }()
			return true
		})
	}()
	for f := range futures {
		for _, e := range <-f {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	// futures is closed: the reading goroutine has returned.
	if readErr != nil {
		return readErr
	}
	return ctx.Err()
}

// tiledChunk is how many entries go to one parsing goroutine: a data tile.
const tiledChunk = 256

// read reads [start, end) in chunks of tiledChunk consecutive entries (the
// first from start), each handed to chunk with its first index until
// chunk returns false.
func (s *tiledSource) read(ctx context.Context, tree tlog.Tree, start, end uint64, chunk func([]*sunlight.LogEntry, uint64) bool) error {
	// Entries stops before a partial data tile; resumed with the same
	// tree, it reads it.
	var buf []*sunlight.LogEntry
	from := start
	flush := func() bool {
		if len(buf) == 0 {
			return true
		}
		ok := chunk(buf, from)
		from += uint64(len(buf))
		buf = nil
		return ok
	}
	for round := 0; start < end; round++ {
		before := start
		for i, le := range s.c.Entries(ctx, tree, int64(start)) {
			if uint64(i) >= end {
				break
			}
			buf = append(buf, le)
			start = uint64(i) + 1
			if len(buf) == tiledChunk && !flush() {
				return ctx.Err()
			}
		}
		if !flush() {
			return ctx.Err()
		}
		if err := s.c.Err(); err != nil {
			if isTileMismatch(err) {
				return fmt.Errorf("%w: data tile from entry %d: %v", errBadEntry, start, err)
			}
			return err
		}
		if start == before && round > 0 {
			return fmt.Errorf("no progress reading entries from %d", start)
		}
	}
	return nil
}

// parseTiled turns the entries of a chunk, the first at index from, into
// the monitor's.
func parseTiled(les []*sunlight.LogEntry, from uint64) []Entry {
	es := make([]Entry, len(les))
	for i, le := range les {
		e := &es[i]
		*e = Entry{Index: from + uint64(i), LeafHash: leafHash(le.MerkleTreeLeaf()), Precert: le.IsPrecert, Cert: le.Certificate,
			Timestamp: time.UnixMilli(le.Timestamp).UTC()}
		if le.IsPrecert {
			e.Cert = le.PreCertificate
			e.Names, e.Facts, e.Err = tbsNames(le.Certificate) // a precert_entry holds the TBS
		} else {
			e.Names, e.Facts, e.Err = certNames(le.Certificate)
		}
	}
	return es
}

// isTileMismatch reports whether a client error is a tile that does not
// hash to the tree (rather than one that could not be fetched).
func isTileMismatch(err error) bool {
	var ee interface{ Timeout() bool }
	if errors.As(err, &ee) {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "inconsistent") || strings.Contains(m, "hash") || strings.Contains(m, "malformed") || strings.Contains(m, "invalid")
}

// getBody GETs url and returns its body, at most limit bytes; a status
// other than 200 is an error.
func getBody(ctx context.Context, hc *http.Client, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	rsp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, rsp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(rsp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: over %d bytes", url, limit)
	}
	return b, nil
}

func (s *tiledSource) included(ctx context.Context, h Hash, idx *uint64, to Head) (bool, error) {
	if idx == nil {
		return false, errors.New("the SCT has no leaf_index: a static-ct-api log's entry cannot be found without it")
	}
	if *idx >= to.Size {
		return false, nil
	}
	e, _, err := s.c.Entry(ctx, tlog.Tree{N: int64(to.Size), Hash: tlog.Hash(to.Root)}, int64(*idx))
	if err != nil {
		if isTileMismatch(err) {
			return false, fmt.Errorf("%w: entry %d: %v", errBadEntry, *idx, err)
		}
		return false, err
	}
	if leafHash(e.MerkleTreeLeaf()) != h {
		return false, fmt.Errorf("%w: the entry at leaf_index %d is not the SCT's", errBadEntry, *idx)
	}
	return true, nil
}
