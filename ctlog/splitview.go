package ctlog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/google/trillian"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ctstage/ctstage/ctlog/faults"
	"github.com/ctstage/ctstage/ctlog/forktree"
)

// The split view of an RFC 6962 shard. When split_view is set, the fork
// is taken from the tree as it is then: its first N leaves are the log's
// own, and leaf N is fabricated (a copy of entry N-1 one millisecond
// later, which changes its leaf hash). The fork is signed with the
// shard's key and is consistent within itself and with every tree head
// of N entries or fewer, but with none of the main view's above N: a
// client shown both holds two signed tree heads that no consistency
// proof can join. The fork does not grow; submissions go to the main
// view. It costs one read of every leaf when it is taken.

// rfcFork is one fork of an RFC 6962 shard, immutable once made.
type rfcFork struct {
	set  time.Time // the split_view fault's Set it was made for
	base uint64    // N, the size of the main view it branches from
	tree *forktree.Tree
	// leaf is the fabricated entry N.
	leaf ct.LeafEntry
	ts   uint64 // its timestamp, ms
}

// forkOf is the shard's fork for the split_view fault now set, made on
// first use; nil while the log is empty (the fork needs an entry to
// copy) or when no split_view is set.
func (s *Server) forkOf(ctx context.Context, f *front) (*rfcFork, error) {
	flt, ok := f.faults.Get(faults.SplitView)
	if !ok {
		return nil, nil
	}
	f.forkMu.Lock()
	defer f.forkMu.Unlock()
	if f.fork != nil && f.fork.set.Equal(flt.Set) {
		return f.fork, nil
	}
	f.fork = nil
	root, err := s.latestRoot(ctx, f.rfc)
	if err != nil || root.TreeSize == 0 {
		return nil, err
	}
	start := time.Now()
	fk, err := s.makeFork(ctx, f.rfc, root.TreeSize)
	if err != nil {
		return nil, err
	}
	fk.set = flt.Set
	f.fork = fk
	top, _ := fk.tree.Root(fk.tree.Size())
	s.log.Warn("split view forked", "shard", f.name, "base_size", fk.base, "fork_size", fk.tree.Size(),
		"fork_root", fmt.Sprintf("%x", top), "took", time.Since(start).Round(time.Millisecond))
	return fk, nil
}

// dropFork forgets the fork once split_view is cleared.
func (f *front) dropFork() {
	if _, ok := f.faults.Get(faults.SplitView); ok {
		return
	}
	f.forkMu.Lock()
	f.fork = nil
	f.forkMu.Unlock()
}

// makeFork reads the n leaves of sh's tree and fabricates leaf n.
func (s *Server) makeFork(ctx context.Context, sh *shard, n uint64) (*rfcFork, error) {
	hashes := make([]forktree.Hash, 0, n+1)
	var last *trillian.LogLeaf
	for start := uint64(0); start < n; {
		leaves, err := s.leaves(ctx, sh, start, min(n-start, 1024))
		if err != nil {
			return nil, err
		}
		for _, l := range leaves {
			hashes = append(hashes, forktree.Hash(l.MerkleLeafHash))
		}
		start += uint64(len(leaves))
		last = leaves[len(leaves)-1]
	}
	var mtl ct.MerkleTreeLeaf
	if rest, err := tls.Unmarshal(last.LeafValue, &mtl); err != nil || len(rest) > 0 || mtl.TimestampedEntry == nil {
		return nil, fmt.Errorf("couldn't read entry %d to fork from: %v", n-1, err)
	}
	mtl.TimestampedEntry.Timestamp++
	in, err := tls.Marshal(mtl)
	if err != nil {
		return nil, err
	}
	hashes = append(hashes, forktree.Hash(rfc6962.DefaultHasher.HashLeaf(in)))
	return &rfcFork{base: n, tree: forktree.New(hashes), leaf: ct.LeafEntry{LeafInput: in, ExtraData: last.ExtraData},
		ts: mtl.TimestampedEntry.Timestamp}, nil
}

// leaves reads up to count leaves of sh's tree from start (at least one).
func (s *Server) leaves(ctx context.Context, sh *shard, start, count uint64) ([]*trillian.LogLeaf, error) {
	rsp, err := s.trillian.log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: sh.tree.TreeId, StartIndex: int64(start), Count: int64(count)})
	if err != nil {
		return nil, err
	}
	if len(rsp.Leaves) == 0 || uint64(len(rsp.Leaves)) > count {
		return nil, fmt.Errorf("reading %d leaves from %d, Trillian returned %d", count, start, len(rsp.Leaves))
	}
	return rsp.Leaves, nil
}

// Fork serves the fork's reads: what lies above the base size comes from
// the fork, the rest is the log's own, served by next.
func (v rfcViews) Fork(r *http.Request, ep string, next http.Handler) http.Handler {
	fk, err := v.s.forkOf(r.Context(), v.f)
	if err != nil {
		v.s.log.Warn("couldn't fork the split view; serving the main view", "shard", v.f.name, "err", err)
		return nil
	}
	if fk == nil {
		return nil
	}
	fs := forkServer{s: v.s, f: v.f, fk: fk, next: next}
	switch ep {
	case "get-sth":
		return http.HandlerFunc(fs.sth)
	case "get-sth-consistency":
		return http.HandlerFunc(fs.consistency)
	case "get-proof-by-hash":
		return http.HandlerFunc(fs.proofByHash)
	case "get-entries":
		return http.HandlerFunc(fs.entries)
	case "get-entry-and-proof":
		return http.HandlerFunc(fs.entryAndProof)
	}
	return nil
}

type forkServer struct {
	s    *Server
	f    *front
	fk   *rfcFork
	next http.Handler
}

// size is the fork's tree size, N+1.
func (fs forkServer) size() uint64 { return fs.fk.tree.Size() }

func (fs forkServer) sth(w http.ResponseWriter, r *http.Request) {
	root, _ := fs.fk.tree.Root(fs.size())
	// Fresh, as a log re-signing its head is, and never before the
	// fabricated entry.
	ts := max(uint64(time.Now().UnixMilli()), fs.fk.ts)
	b, err := fs.s.signSTH(fs.f.rfc, signedHead{size: fs.size(), root: root[:], ts: ts})
	if err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, json.RawMessage(b))
}

// params reads the named non-negative integer query parameters; false
// (and the log's own answer, a 400) when one is missing or malformed.
func params(r *http.Request, names ...string) ([]uint64, bool) {
	out := make([]uint64, len(names))
	for i, n := range names {
		v, err := strconv.ParseUint(r.URL.Query().Get(n), 10, 63)
		if err != nil {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// beyond answers a request for a tree larger than the fork as ctfe does.
func (fs forkServer) beyond(w http.ResponseWriter, need uint64) {
	http.Error(w, fmt.Sprintf("Bad Request\nneed tree size: %d but only got: %d", need, fs.size()), http.StatusBadRequest)
}

func (fs forkServer) consistency(w http.ResponseWriter, r *http.Request) {
	p, ok := params(r, "first", "second")
	if !ok || p[0] > p[1] || p[1] <= fs.fk.base {
		fs.next.ServeHTTP(w, r)
		return
	}
	if p[1] > fs.size() {
		fs.beyond(w, p[1])
		return
	}
	proof, err := fs.fk.tree.Consistency(p[0], p[1])
	if err != nil {
		http.Error(w, "Bad Request\n"+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, ct.GetSTHConsistencyResponse{Consistency: nonNil(proof)})
}

func (fs forkServer) proofByHash(w http.ResponseWriter, r *http.Request) {
	p, ok := params(r, "tree_size")
	hash, err := base64.StdEncoding.DecodeString(r.URL.Query().Get("hash"))
	if !ok || err != nil || len(hash) != 32 || p[0] <= fs.fk.base {
		fs.next.ServeHTTP(w, r)
		return
	}
	if p[0] > fs.size() {
		fs.beyond(w, p[0])
		return
	}
	idx := fs.fk.base
	if forktree.Hash(hash) != fs.fk.tree.Leaf(idx) {
		rsp, err := fs.s.trillian.log.GetInclusionProofByHash(r.Context(), &trillian.GetInclusionProofByHashRequest{
			LogId: fs.f.rfc.tree.TreeId, LeafHash: hash, TreeSize: int64(fs.fk.base)})
		switch {
		case status.Code(err) == codes.NotFound || err == nil && len(rsp.Proof) == 0:
			http.Error(w, "Not Found\nno entry with that leaf hash in the tree", http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		idx = uint64(rsp.Proof[0].LeafIndex)
	}
	proof, err := fs.fk.tree.Inclusion(idx, p[0])
	if err != nil {
		http.Error(w, "Bad Request\n"+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, ct.GetProofByHashResponse{LeafIndex: int64(idx), AuditPath: nonNil(proof)})
}

func (fs forkServer) entries(w http.ResponseWriter, r *http.Request) {
	p, ok := params(r, "start", "end")
	if !ok || p[0] > p[1] || p[1] < fs.fk.base {
		fs.next.ServeHTTP(w, r)
		return
	}
	// The entries from start to last, inclusive: the log's own below
	// the base size, then the fabricated one.
	start, last := p[0], min(p[1], fs.fk.base, p[0]+uint64(fs.f.rfc.cfg.MaxGetEntries)-1)
	if start > fs.fk.base {
		fs.beyond(w, start+1)
		return
	}
	var rsp ct.GetEntriesResponse
	for i, end := start, min(last+1, fs.fk.base); i < end; {
		leaves, err := fs.s.leaves(r.Context(), fs.f.rfc, i, end-i)
		if err != nil {
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		for _, l := range leaves {
			rsp.Entries = append(rsp.Entries, ct.LeafEntry{LeafInput: l.LeafValue, ExtraData: l.ExtraData})
		}
		i += uint64(len(leaves))
	}
	if last == fs.fk.base {
		rsp.Entries = append(rsp.Entries, fs.fk.leaf)
	}
	writeJSON(w, rsp)
}

func (fs forkServer) entryAndProof(w http.ResponseWriter, r *http.Request) {
	p, ok := params(r, "leaf_index", "tree_size")
	if !ok || p[0] >= p[1] || p[1] <= fs.fk.base {
		fs.next.ServeHTTP(w, r)
		return
	}
	if p[1] > fs.size() {
		fs.beyond(w, p[1])
		return
	}
	entry := fs.fk.leaf
	if p[0] < fs.fk.base {
		leaves, err := fs.s.leaves(r.Context(), fs.f.rfc, p[0], 1)
		if err != nil {
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		entry = ct.LeafEntry{LeafInput: leaves[0].LeafValue, ExtraData: leaves[0].ExtraData}
	}
	proof, err := fs.fk.tree.Inclusion(p[0], p[1])
	if err != nil {
		http.Error(w, "Bad Request\n"+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, ct.GetEntryAndProofResponse{LeafInput: entry.LeafInput, ExtraData: entry.ExtraData, AuditPath: nonNil(proof)})
}

// nonNil is p, or an empty proof (JSON [], as ctfe answers, not null).
func nonNil(p [][]byte) [][]byte {
	if p == nil {
		return [][]byte{}
	}
	return p
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
