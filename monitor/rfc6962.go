package monitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// rfcSource reads an RFC 6962 log with ct-go's client. Signatures are
// checked here, not by the client, so that a bad one is told apart from
// a log that does not answer.
type rfcSource struct {
	c        *client.LogClient
	url      string // the log's URL, with its trailing "/"
	hc       *http.Client
	verifier *ct.SignatureVerifier
	// batch is the most entries one get-entries answered, which is the
	// log's limit once it cut a range; parallel requests use it.
	mu       sync.Mutex
	batch    uint64
	learned  bool // batch is what the log answered, not a guess
	parallel int
}

func newRFCSource(url string, key []byte, hc *http.Client, parallel int) (*rfcSource, error) {
	c, err := client.New(url, hc, jsonclient.Options{UserAgent: userAgent})
	if err != nil {
		return nil, err
	}
	pk, err := ctPublicKey(key)
	if err != nil {
		return nil, err
	}
	v, err := ct.NewSignatureVerifier(pk)
	if err != nil {
		return nil, err
	}
	return &rfcSource{c: c, url: strings.TrimSuffix(url, "/") + "/", hc: hc, verifier: v, batch: 1024, parallel: max(parallel, 1)}, nil
}

func (s *rfcSource) head(ctx context.Context) (Head, error) {
	sth, err := s.c.GetSTH(ctx)
	if err != nil {
		return Head{}, err
	}
	if err := s.verifier.VerifySTHSignature(*sth); err != nil {
		return Head{}, fmt.Errorf("%w: tree head of size %d: %v", errSignature, sth.TreeSize, err)
	}
	return Head{Size: sth.TreeSize, Root: Hash(sth.SHA256RootHash), Time: msTime(sth.Timestamp)}, nil
}

func (s *rfcSource) consistency(ctx context.Context, from, to Head) error {
	p, err := s.c.GetSTHConsistency(ctx, from.Size, to.Size)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from.Size, to.Size, p, from.Root[:], to.Root[:]); err != nil {
		return fmt.Errorf("%w: from size %d to %d: %v", errInconsistent, from.Size, to.Size, err)
	}
	return nil
}

// entries fetches [start, end) with up to parallel get-entries at once,
// each of the log's batch size, and hands them to fn in order.
func (s *rfcSource) entries(ctx context.Context, start, end uint64, _ Head, fn func(Entry) error) error {
	deliver := func(from uint64, got []ct.LeafEntry) error {
		for i, le := range got {
			e := Entry{Index: from + uint64(i)}
			parseLeaf(&e, le.LeafInput, le.ExtraData)
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	for start < end {
		s.mu.Lock()
		batch, learned := s.batch, s.learned
		s.mu.Unlock()
		if !learned {
			// One request first: its answer is the log's batch size
			// when it cuts the range, and the chunks below are that size,
			// so that entries reach fn (and the state) batch by batch.
			got, err := s.getEntries(ctx, start, min(start+batch, end)-1)
			if err != nil {
				return err
			}
			n := uint64(len(got))
			if n == 0 || n > min(start+batch, end)-start {
				return fmt.Errorf("get-entries from %d answered %d entries", start, n)
			}
			s.mu.Lock()
			if n < min(start+batch, end)-start {
				s.batch = n
			}
			s.learned = true // cut: the log's limit; whole: it takes the guess
			s.mu.Unlock()
			if err := deliver(start, got); err != nil {
				return err
			}
			start += n
			continue
		}
		return s.pipeline(ctx, start, end, batch, fn)
	}
	return nil
}

// pipeline reads [start, end) in chunks of batch, up to parallel at once,
// each fetched and parsed by its own goroutine (parsing is most of the
// work), and hands the entries to fn in order while later chunks load.
func (s *rfcSource) pipeline(ctx context.Context, start, end, batch uint64, fn func(Entry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		entries []Entry
		err     error
	}
	// A chunk's fetch starts once its future is taken or queued: at most
	// parallel chunks are read at once, the one fn takes included, so a
	// killed monitor has read at most that many past its state.
	futures := make(chan chan result, s.parallel-1)
	go func() {
		defer close(futures)
		for from := start; from < end; from += batch {
			to := min(from+batch, end)
			f := make(chan result, 1)
			select {
			case futures <- f:
			case <-ctx.Done():
				return
			}
			go func() {
				got, err := s.fetch(ctx, from, to)
				var es []Entry
				if err == nil {
					es = make([]Entry, len(got))
					for i, le := range got {
						es[i].Index = from + uint64(i)
						parseLeaf(&es[i], le.LeafInput, le.ExtraData)
					}
				}
				f <- result{es, err}
			}()
		}
	}()
	for f := range futures {
		r := <-f
		if r.err != nil {
			return r.err
		}
		for _, e := range r.entries {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// fetch reads [from, to) whole, in as many get-entries as the log needs;
// a log cutting a range teaches the batch size.
func (s *rfcSource) fetch(ctx context.Context, from, to uint64) ([]ct.LeafEntry, error) {
	var out []ct.LeafEntry
	for from < to {
		got, err := s.getEntries(ctx, from, to-1)
		if err != nil {
			return nil, err
		}
		n := uint64(len(got))
		if n == 0 || n > to-from {
			return nil, fmt.Errorf("get-entries %d-%d answered %d entries", from, to-1, n)
		}
		if n < to-from {
			s.mu.Lock()
			s.batch = n
			s.mu.Unlock()
		}
		out = append(out, got...)
		from += n
	}
	return out, nil
}

func (s *rfcSource) included(ctx context.Context, h Hash, _ *uint64, to Head) (bool, error) {
	if to.Size == 0 {
		return false, nil
	}
	rsp, err := s.c.GetProofByHash(ctx, h[:], to.Size)
	if err != nil {
		var re jsonclient.RspError
		var rp *jsonclient.RspError
		if errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.StatusCode == http.StatusBadRequest) ||
			errors.As(err, &rp) && (rp.StatusCode == http.StatusNotFound || rp.StatusCode == http.StatusBadRequest) {
			return false, nil // not in the tree (ctfe answers 404, some logs 400)
		}
		return false, err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rsp.LeafIndex), to.Size, h[:], rsp.AuditPath, to.Root[:]); err != nil {
		return false, fmt.Errorf("%w: inclusion proof of %s: %v", errInconsistent, h, err)
	}
	return true, nil
}
