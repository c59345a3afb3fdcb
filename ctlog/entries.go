package ctlog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/certificate-transparency-go/trillian/ctfe"
	"github.com/google/trillian"
	"github.com/google/trillian/types"
)

// get-entries is the read path monitors load most: every entry of the log,
// again and again. ctfe answers it by asking Trillian over gRPC (the
// in-process bufconn: every leaf marshalled and unmarshalled as protobuf),
// parsing each leaf once more with ct-go's reflective TLS decoder only to
// log a malformed one, and encoding the answer with encoding/json. serveEntries
// answers the requests ctfe would answer 200 itself, with the same bytes:
// it calls Trillian's log server in the process directly (the same
// GetLeavesByRange, with its tree checks and clamping to the signed tree
// size) and writes the JSON with base64 straight into a pooled buffer.
// Every other request, and any answer that is not a plain 200 (a range
// beyond the tree, a storage error, leaves out of order), goes to ctfe, so
// the errors stay ctfe's to the byte.

// entriesTimeout bounds one storage read, as ctfe's --rpc_deadline does.
const entriesTimeout = 30 * time.Second

// ctfeEntriesOnly sends every get-entries to ctfe; the tests set it to
// compare the two answers.
var ctfeEntriesOnly atomic.Bool

// serveEntries answers r and reports true, or leaves it to ctfe and
// reports false without having written anything.
func (s *Server) serveEntries(sh *shard, w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet || ctfeEntriesOnly.Load() {
		return false
	}
	start, end, ok := entriesRange(r, ctfe.MaxGetEntriesAllowed)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), entriesTimeout)
	defer cancel()
	count := end - start + 1
	rsp, err := s.trillian.direct.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
		LogId: sh.tree.TreeId, StartIndex: start, Count: count,
	})
	if err != nil || len(rsp.Leaves) == 0 || int64(len(rsp.Leaves)) > count {
		return false
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(rsp.GetSignedLogRoot().GetLogRoot()); err != nil || root.TreeSize <= uint64(start) {
		return false
	}
	for i, l := range rsp.Leaves {
		if l.LeafIndex != start+int64(i) {
			return false
		}
	}
	buf := entriesBufs.Get().(*[]byte)
	defer entriesBufs.Put(buf)
	b := appendEntries((*buf)[:0], rsp.Leaves)
	*buf = b
	// ctfe's caching headers: a full answer never changes, a partial one
	// grows as the tree does.
	if int64(len(rsp.Leaves)) < count {
		w.Header().Set("Cache-Control", "public, max-age=60")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=86400")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
	return true
}

// ErrNotRFC6962 is ReadEntries' answer for a shard that is not an RFC
// 6962 shard of this server.
var ErrNotRFC6962 = errors.New("not an RFC 6962 shard of this server")

// ReadEntries calls fn with the MerkleTreeLeaf and extra data of shard's
// entries [start, end), in order, read from Trillian's log server in the
// process (the same GetLeavesByRange as get-entries, clamped to the
// signed tree), in batches of the shard's get-entries limit. It is for
// readers in the process (the dashboard's index) that would otherwise
// pay for get-entries' JSON both ways.
func (s *Server) ReadEntries(ctx context.Context, shard string, start, end uint64, fn func(index uint64, leafInput, extraData []byte) error) error {
	f := s.byName[shard]
	if f == nil || f.rfc == nil {
		return fmt.Errorf("%w: %q", ErrNotRFC6962, shard)
	}
	batch := uint64(max(f.rfc.cfg.MaxGetEntries, 1))
	for start < end {
		rctx, cancel := context.WithTimeout(ctx, entriesTimeout)
		rsp, err := s.trillian.direct.GetLeavesByRange(rctx, &trillian.GetLeavesByRangeRequest{
			LogId: f.rfc.tree.TreeId, StartIndex: int64(start), Count: int64(min(batch, end-start)),
		})
		cancel()
		if err != nil {
			return err
		}
		if len(rsp.Leaves) == 0 {
			return fmt.Errorf("shard %s: no entries from %d (the signed tree ends before %d)", shard, start, end)
		}
		for _, l := range rsp.Leaves {
			if uint64(l.LeafIndex) != start {
				return fmt.Errorf("shard %s: entry %d where %d was due", shard, l.LeafIndex, start)
			}
			if err := fn(start, l.LeafValue, l.ExtraData); err != nil {
				return err
			}
			start++
		}
	}
	return nil
}

// entriesBufs holds answer buffers between requests: a full answer of
// 1,000 precertificate entries is about 5 MB.
var entriesBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// entriesRange is ctfe's parseGetEntriesRange with its default alignment
// (--align_getentries): a range of maxRange or more entries is cut to
// maxRange and then ends before the next multiple of maxRange, so that
// readers of large runs ask for the same, cacheable ranges. ok is false
// for whatever ctfe would refuse.
func entriesRange(r *http.Request, maxRange int64) (start, end int64, ok bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, 0, false // ctfe's ParseForm refuses it
	}
	start, err1 := strconv.ParseInt(q.Get("start"), 10, 64)
	end, err2 := strconv.ParseInt(q.Get("end"), 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || maxRange < 1 {
		return 0, 0, false
	}
	count := end - start + 1
	if count > maxRange {
		end = start + maxRange - 1
	}
	if count >= maxRange {
		end -= (end + 1) % maxRange
	}
	return start, end, true
}

// appendEntries appends the JSON encoding/json gives a
// ct.GetEntriesResponse of leaves: {"entries":[{"leaf_input":B64,
// "extra_data":B64},...]}, an empty byte string as null as Trillian's
// protobuf leaves it.
func appendEntries(b []byte, leaves []*trillian.LogLeaf) []byte {
	b = append(b, `{"entries":[`...)
	for i, l := range leaves {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"leaf_input":`...)
		b = appendBase64(b, l.LeafValue)
		b = append(b, `,"extra_data":`...)
		b = appendBase64(b, l.ExtraData)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func appendBase64(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}
