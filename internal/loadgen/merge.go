package loadgen

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"golang.org/x/sync/errgroup"
)

// sth is an observed tree head: its size and its timestamp (ms since the epoch).
type sth struct {
	size      uint64
	timestamp uint64
}

// sthPoller records every distinct STH it sees. Safe for concurrent use.
type sthPoller struct {
	lc *client.LogClient

	mu     sync.Mutex
	seen   []sth // in the order observed
	errors int
}

// run polls until ctx ends.
func (p *sthPoller) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.poll(ctx)
		}
	}
}

// poll gets and records the current STH.
func (p *sthPoller) poll(ctx context.Context) (sth, error) {
	h, err := p.lc.GetSTH(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			p.errors++
		}
		return sth{}, err
	}
	s := sth{size: h.TreeSize, timestamp: h.Timestamp}
	if n := len(p.seen); n == 0 || p.seen[n-1] != s {
		p.seen = append(p.seen, s)
	}
	return s, nil
}

// latest is the last STH observed.
func (p *sthPoller) latest() sth {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return sth{}
	}
	return p.seen[len(p.seen)-1]
}

func (p *sthPoller) stats() (distinct, errors int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen), p.errors
}

// growth is the observed STHs that were larger than every STH before them,
// in order: the candidates for "the first observed STH that includes index
// i", sorted by size even if the log served an older STH in between.
func (p *sthPoller) growth() []sth {
	p.mu.Lock()
	defer p.mu.Unlock()
	var g []sth
	for _, s := range p.seen {
		if len(g) == 0 || s.size > g[len(g)-1].size {
			g = append(g, s)
		}
	}
	return g
}

// firstIncluding is the first STH in growth whose tree includes index.
func firstIncluding(growth []sth, index uint64) (sth, bool) {
	i := sort.Search(len(growth), func(i int) bool { return growth[i].size > index })
	if i == len(growth) {
		return sth{}, false
	}
	return growth[i], true
}

// measureMerge waits (up to MergeWait) for the log to integrate every
// accepted submission, finds each one's index with get-entries, and fills
// in the merge delays.
func (r *runner) measureMerge(ctx context.Context, res *Result, startSize uint64) error {
	want := make(map[[32]byte]int, res.Accepted) // leaf hash -> submission
	for i, o := range r.out {
		if o.sct == nil {
			continue
		}
		h, err := r.pcs[i].leafHash(o.sct)
		if err != nil {
			return fmt.Errorf("couldn't compute a leaf hash: %w", err)
		}
		want[h] = i
	}
	index := make(map[int]uint64, len(want)) // submission -> index in the log
	next := startSize
	deadline := time.Now().Add(r.cfg.MergeWait)
	for len(index) < len(want) && time.Now().Before(deadline) {
		if size := r.sths.latest().size; size > next {
			if err := r.findEntries(ctx, next, size, want, index); err != nil {
				return err
			}
			next = size
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.STHInterval):
		}
	}
	res.EndSize = next
	res.MergeDelay, res.Integrated = r.mergeDelays(index)
	if res.NotIntegrated = len(want) - res.Integrated; res.NotIntegrated > 0 {
		res.Errors.add(fmt.Sprintf("accepted but not integrated within %s", r.cfg.MergeWait), res.NotIntegrated)
	}
	return nil
}

// getEntriesBatch is how many entries to ask for at once; logs may return fewer.
const getEntriesBatch = 1000

// findEntries reads the entries [from, to) and records in index where each
// leaf of want is. A log may return fewer entries than asked for (RFC 6962
// section 4.6): ask again from the first one missing.
func (r *runner) findEntries(ctx context.Context, from, to uint64, want map[[32]byte]int, index map[int]uint64) error {
	for from < to {
		end := min(from+getEntriesBatch, to) - 1
		resp, err := r.sths.lc.GetRawEntries(ctx, int64(from), int64(end))
		if err != nil {
			return fmt.Errorf("couldn't get entries %d-%d: %w", from, end, err)
		}
		if len(resp.Entries) == 0 {
			return fmt.Errorf("couldn't get entries %d-%d: the log returned none", from, end)
		}
		for _, e := range resp.Entries[:min(uint64(len(resp.Entries)), end-from+1)] {
			h := sha256.Sum256(append([]byte{ct.TreeLeafPrefix}, e.LeafInput...))
			if i, ok := want[h]; ok {
				index[i] = from
			}
			from++
		}
	}
	return nil
}

// mergeDelays computes each integrated submission's merge delay.
func (r *runner) mergeDelays(index map[int]uint64) (Summary, int) {
	growth := r.sths.growth()
	delays := make([]time.Duration, 0, len(index))
	for i, idx := range index {
		s, ok := firstIncluding(growth, idx)
		if !ok { // cannot happen: entries are only read up to an observed STH
			continue
		}
		ms := int64(s.timestamp) - int64(r.out[i].sct.Timestamp)
		delays = append(delays, time.Duration(ms)*time.Millisecond)
	}
	return summarize(delays), len(delays)
}

// verifySCTs checks the signatures of VerifySample SCTs (all when 0),
// evenly spread, on every CPU.
func (r *runner) verifySCTs(ctx context.Context, res *Result) error {
	if len(r.cfg.LogPublicKey) == 0 || res.Accepted == 0 {
		return nil
	}
	var accepted []int
	for i, o := range r.out {
		if o.sct != nil {
			accepted = append(accepted, i)
		}
	}
	sample := accepted
	if n := r.cfg.VerifySample; n > 0 && n < len(accepted) {
		sample = make([]int, n)
		for k := range sample {
			sample[k] = accepted[k*len(accepted)/n]
		}
	}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range sample {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := r.sths.lc.VerifySCTSignature(*r.out[i].sct, ct.PrecertLogEntryType, r.pcs[i].chain)
			mu.Lock()
			defer mu.Unlock()
			res.SCTsVerified++
			if err != nil {
				res.InvalidSCTs++
				res.Errors.add("invalid SCT signature", 1)
			}
			return nil
		})
	}
	g.Wait() // the tasks return no error
	return ctx.Err()
}
