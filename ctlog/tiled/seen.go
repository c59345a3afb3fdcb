package tiled

import (
	"context"
	"database/sql"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// seenFilter is a Bloom filter of the identity hashes in the antispam
// index, in front of its SQL lookup: a submission whose hash the filter
// has never seen is new, and needs no query. Almost every submission is
// new, and under 64 clients the lookup was 6 % of a tiled shard's CPU
// (docs/benchmarks.md). It is used only where one process is the index's
// only writer (the POSIX shards): a MySQL shard's other frontends index
// entries this process never sees.
//
// The filter grows as a list of sets, each twice the capacity of the one
// before, so that it never needs rebuilding; a hash is probed in every
// set. At 16 bits an entry and 11 probes a set, a false positive (then
// the query runs) is about 1 in 2,000 per set.
type seenFilter struct {
	mu   sync.RWMutex
	sets []*bloomSet
	// ready is set once the hashes indexed before this process started
	// are in the filter; until then every lookup queries.
	ready atomic.Bool
}

type bloomSet struct {
	bits     []uint64
	n, limit int
}

const (
	bloomFirst  = 1 << 16 // entries in the first set
	bloomBits   = 16      // bits per entry
	bloomProbes = 11
)

// Two fixed seeds: the filter lives in memory only.
var bloomSeed1, bloomSeed2 = maphash.MakeSeed(), maphash.MakeSeed()

func newSeenFilter() *seenFilter { return &seenFilter{} }

func newBloomSet(limit int) *bloomSet {
	return &bloomSet{bits: make([]uint64, limit*bloomBits/64), limit: limit}
}

func probes(h []byte) (uint64, uint64) {
	return maphash.Bytes(bloomSeed1, h), maphash.Bytes(bloomSeed2, h) | 1
}

func (s *bloomSet) add(h1, h2 uint64) {
	m := uint64(len(s.bits) * 64)
	for i := range uint64(bloomProbes) {
		b := (h1 + i*h2) % m
		s.bits[b/64] |= 1 << (b % 64)
	}
	s.n++
}

func (s *bloomSet) has(h1, h2 uint64) bool {
	m := uint64(len(s.bits) * 64)
	for i := range uint64(bloomProbes) {
		b := (h1 + i*h2) % m
		if s.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// add records identity hashes.
func (f *seenFilter) add(hashes ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range hashes {
		if len(f.sets) == 0 || f.sets[len(f.sets)-1].n >= f.sets[len(f.sets)-1].limit {
			limit := bloomFirst << min(len(f.sets), 20)
			f.sets = append(f.sets, newBloomSet(limit))
		}
		h1, h2 := probes(h)
		f.sets[len(f.sets)-1].add(h1, h2)
	}
}

// mayHave reports whether h may be in the index: false only when the
// filter is ready and has never seen h.
func (f *seenFilter) mayHave(h []byte) bool {
	if !f.ready.Load() {
		return true
	}
	h1, h2 := probes(h)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, s := range f.sets {
		if s.has(h1, h2) {
			return true
		}
	}
	return false
}

// load adds every hash of the index's table, and makes the filter ready.
// Hashes the follower indexes meanwhile it adds itself (before it commits
// them), so none is missed.
func (f *seenFilter) load(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT hash FROM "+antispamTable)
	if err != nil {
		return err
	}
	defer rows.Close()
	batch := make([][]byte, 0, 4096)
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return err
		}
		if batch = append(batch, h); len(batch) == cap(batch) {
			f.add(batch...)
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	f.add(batch...)
	f.ready.Store(true)
	return nil
}
