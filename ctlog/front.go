package ctlog

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/google/certificate-transparency-go/trillian/ctfe"

	"github.com/ctstage/ctstage/ctlog/faults"
)

// front is what every shard, of either kind, has in front of its log: its
// state (which requests it takes), its faults, and the history of tree
// heads that rollbacks serve.
type front struct {
	name     string
	operator string
	tiled    bool
	logID    [sha256.Size]byte
	state    *shardState
	faults   *faults.Set
	mw       *faults.Middleware
	rfc      *shard      // RFC 6962 shards
	tl       *tiledShard // tiled shards
	// refused counts a submission to endpoint that the shard's state
	// refused, in the shard's submission metric.
	refused func(endpoint string)

	// skew is sct_timestamp_skew's offset on an RFC 6962 shard, in
	// nanoseconds (ctfe's clock, skewClock).
	skew atomic.Int64
	// submissions counts the add-chain and add-pre-chain requests this
	// process received for the shard, whatever their outcome.
	submissions atomic.Uint64
	// queued is the timestamp (ms) of the oldest fresh SCT issued since
	// the last tree head seen, 0 when none: the stall check's queue age.
	queued atomic.Int64

	// fork is the split view's fork of an RFC 6962 shard (splitview.go).
	forkMu sync.Mutex
	fork   *rfcFork

	mu       sync.Mutex
	heads    []signedHead // RFC 6962: the roots seen, by size ascending
	lastSize uint64       // at the last watch, for freezing
	lastSeen bool
}

// signedHead is a tree head as Trillian signed it.
type signedHead struct {
	size uint64
	root []byte
	ts   uint64 // ms
}

// rememberHead records an RFC 6962 root seen by watchRoots.
func (f *front) rememberHead(h signedHead) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.heads); n > 0 && f.heads[n-1].size >= h.size {
		return
	}
	f.heads = append(f.heads, h)
	if len(f.heads) > 1024 {
		f.heads = f.heads[len(f.heads)-1024:]
	}
}

// endpoint names the endpoint of r under the shard's prefix.
func (f *front) endpoint(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/"+f.name+"/")
	if rest, ok := strings.CutPrefix(p, "ct/v1/"); ok {
		return rest
	}
	switch {
	case p == "checkpoint":
		return "checkpoint"
	case strings.HasPrefix(p, "tile/data/"):
		return "data-tile"
	case strings.HasPrefix(p, "tile/"):
		return "tile"
	case strings.HasPrefix(p, "issuer/"):
		return "issuer"
	}
	return ""
}

// wrap puts the shard's state and faults in front of h.
func (f *front) wrap(h http.Handler) http.Handler {
	inner := f.mw.Wrap(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		if r.Method == http.MethodPost {
			if ep := f.endpoint(r); ep == "add-chain" || ep == "add-pre-chain" {
				f.submissions.Add(1)
			}
		}
		st := f.state.now(now)
		if !writable(st) { // a writable log's requests pass untouched
			ep := f.endpoint(r)
			isAdd := ep == "add-chain" || ep == "add-pre-chain"
			if isAdd {
				f.refused(ep)
			}
			if st == StateRejected {
				http.Error(w, "Forbidden\nthe log is rejected: it serves nothing", http.StatusForbidden)
				return
			}
			if isAdd {
				rec := f.state.get()
				http.Error(w, fmt.Sprintf("Forbidden\nthe log is %s since %s: it takes no submissions", st, rec.At.Format(time.RFC3339)), http.StatusForbidden)
				return
			}
		}
		inner.ServeHTTP(w, r)
	})
}

// head is the shard's current tree head.
func (s *Server) head(ctx context.Context, f *front) (TreeHead, error) {
	if f.tl != nil {
		size, root, err := f.tl.log.Head(ctx)
		return TreeHead{Size: size, Root: root}, err
	}
	root, err := s.latestRoot(ctx, f.rfc)
	if err != nil {
		return TreeHead{}, err
	}
	return TreeHead{Size: root.TreeSize, Root: root.RootHash}, nil
}

// watchFreeze records the final tree head of a shard that became
// readonly or retired, once its tree stopped growing (the submissions it
// took before are in): two watches a second apart with the same size,
// at least two seconds after the state took effect.
func (s *Server) watchFreeze(ctx context.Context, f *front, now time.Time) {
	rec := f.state.get()
	if !frozen(rec.effective(now)) || rec.Final != nil {
		return
	}
	th, err := s.head(ctx, f)
	if err != nil {
		return
	}
	f.mu.Lock()
	same := f.lastSeen && f.lastSize == th.Size
	f.lastSize, f.lastSeen = th.Size, true
	f.mu.Unlock()
	if !same || now.Sub(rec.At) < 2*time.Second {
		return
	}
	if err := f.state.setFinal(th); err != nil {
		s.log.Warn("couldn't record a frozen shard's final tree head", "shard", f.name, "err", err)
		return
	}
	s.log.Info("shard frozen", "shard", f.name, "state", rec.State, "tree_size", th.Size, "root_hash", fmt.Sprintf("%x", th.Root))
	s.changed()
}

// applyFaults carries the faults that need the log's internals into it:
// the sequencer's hold (no_integrate), the publication hold (no_publish),
// the SCT clock (sct_timestamp_skew) and the split view's fork, taken
// before the change is answered, so that every client of the fork is
// shown the same one from the first request.
func (s *Server) applyFaults(f *front) {
	if _, ok := f.faults.Get(faults.SplitView); ok {
		s.takeFork(f)
	} else if f.tl != nil {
		f.tl.log.Unfork()
	} else {
		f.dropFork()
	}
	skew := time.Duration(0)
	if sk, ok := f.faults.Get(faults.SCTTimestampSkew); ok {
		skew = time.Duration(sk.OffsetMS) * time.Millisecond
	}
	hold, held := f.faults.Get(faults.NoIntegrate)
	if f.tl != nil {
		hold, held = f.faults.Get(faults.NoPublish)
		f.tl.log.SetSkew(skew)
		if held {
			if err := f.tl.log.Hold(context.Background(), afterOf(hold)); err != nil {
				s.log.Warn("couldn't hold a tiled shard's checkpoint", "shard", f.name, "err", err)
			}
		} else {
			f.tl.log.Release()
		}
		return
	}
	f.skew.Store(int64(skew))
	if held {
		s.trillian.hold(f.rfc.tree.TreeId, afterOf(hold))
	} else {
		s.trillian.release(f.rfc.tree.TreeId)
	}
}

// takeFork takes the split view's fork of a shard, logging a failure
// (the next request shown the fork tries again, as on an empty log).
func (s *Server) takeFork(f *front) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flt, ok := f.faults.Get(faults.SplitView)
	if !ok {
		return
	}
	var err error
	if f.tl != nil {
		err = f.tl.log.Fork(ctx, flt.Set)
	} else {
		_, err = s.forkOf(ctx, f)
	}
	if err != nil {
		s.log.Warn("couldn't fork the split view yet", "shard", f.name, "err", err)
	}
}

// afterOf is a hold's delay: 0 for "until cleared".
func afterOf(f faults.Fault) time.Duration {
	if f.AfterS == nil {
		return 0
	}
	return time.Duration(*f.AfterS) * time.Second
}

// views serve an RFC 6962 shard's rollbacks and split view.
type rfcViews struct {
	s *Server
	f *front
}

// Rollback serves the newest root seen that is smaller than the current
// one, signed again with the shard's key (Trillian keeps only the newest
// root to serve), or the empty tree at the tree's creation time.
func (v rfcViews) Rollback(w http.ResponseWriter, r *http.Request) bool {
	cur, err := v.s.latestRoot(r.Context(), v.f.rfc)
	if err != nil {
		return false
	}
	empty := sha256.Sum256(nil)
	old := signedHead{size: 0, root: empty[:], ts: uint64(v.f.rfc.tree.CreateTime.AsTime().UnixMilli())}
	v.f.mu.Lock()
	for _, h := range v.f.heads {
		if h.size < cur.TreeSize {
			old = h
		}
	}
	v.f.mu.Unlock()
	b, err := v.s.signSTH(v.f.rfc, old)
	if err != nil {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
	return true
}

// signSTH signs a get-sth answer for h with the shard's key.
func (s *Server) signSTH(sh *shard, h signedHead) ([]byte, error) {
	sth := ct.SignedTreeHead{Version: ct.V1, TreeSize: h.size, Timestamp: h.ts}
	copy(sth.SHA256RootHash[:], h.root)
	in, err := ct.SerializeSTHSignatureInput(sth)
	if err != nil {
		return nil, err
	}
	sig, err := signDS(sh.key, in)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ct.GetSTHResponse{TreeSize: h.size, Timestamp: h.ts, SHA256RootHash: sth.SHA256RootHash[:], TreeHeadSignature: sig})
}

// tiledViews serve a tiled shard's rollbacks.
type tiledViews struct{ f *front }

func (v tiledViews) Rollback(w http.ResponseWriter, r *http.Request) bool {
	cp, err := v.f.tl.log.OlderCheckpoint(r.Context())
	if err != nil {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, max-age=0")
	w.Write(cp)
	return true
}

// Fork serves the tiled shard's fork (tiled.Log.Fork).
func (v tiledViews) Fork(r *http.Request, ep string, next http.Handler) http.Handler {
	return v.f.tl.log.ForkHandler(r.Context(), ep, strings.TrimPrefix(r.URL.Path, "/"+v.f.name), next)
}

// signDS signs msg as an encoded TLS DigitallySigned (ECDSA with
// SHA-256), as RFC 6962 section 3.5 has a tree head signature.
func signDS(key crypto.Signer, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return tls.Marshal(ct.DigitallySigned{
		Algorithm: tls.SignatureAndHashAlgorithm{Hash: tls.SHA256, Signature: tls.ECDSA},
		Signature: sig,
	})
}

// skewClock is ctfe's clock for one shard: the true time, offset by the
// shard's sct_timestamp_skew. ctfe stamps new entries and their SCTs with
// it, so the skewed SCT is validly signed and its entry carries the same
// timestamp.
type skewClock struct{ f *front }

func (c *skewClock) Now() time.Time { return time.Now().Add(time.Duration(c.f.skew.Load())) }

// serveSkewed serves a ctfe endpoint as ctfe's AppHandler.ServeHTTP
// does, but bounds the request with the true clock: ctfe takes its
// deadline from the shard's clock, which a past skew puts before now.
func (s *Server) serveSkewed(a ctfe.AppHandler, w http.ResponseWriter, r *http.Request) {
	if r.Method != a.Method {
		a.Info.SendHTTPError(w, http.StatusMethodNotAllowed, fmt.Errorf("method not allowed: %s", r.Method))
		return
	}
	if r.Method == http.MethodGet {
		if err := r.ParseForm(); err != nil {
			a.Info.SendHTTPError(w, http.StatusBadRequest, fmt.Errorf("failed to parse form data: %s", err))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Config.RequestTimeout)
	defer cancel()
	status, err := a.Handler(ctx, a.Info, w, r)
	if err != nil {
		a.Info.SendHTTPError(w, status, err)
		return
	}
	if status != http.StatusOK {
		a.Info.SendHTTPError(w, http.StatusInternalServerError, fmt.Errorf("http handler misbehaved, st: %d", status))
	}
}

// noteSCT records the timestamp of an SCT an RFC 6962 add just returned.
// Only a fresh one counts (a duplicate's is its original's, and a skewed
// one is not the queue's time).
func (f *front) noteSCT(ts int64, now time.Time) {
	if d := now.UnixMilli() - ts; d < -2000 || d > 2000 {
		return
	}
	f.queued.CompareAndSwap(0, ts)
}
