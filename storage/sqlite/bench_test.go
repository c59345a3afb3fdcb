package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/util/clock"
)

// BenchmarkQueueLeaves measures QueueLeaves as ctfe drives it: one leaf per
// call from 64 concurrent goroutines (b.SetParallelism(32) × GOMAXPROCS on
// the project's 2 cores), with leaf and extra data of the size of a
// precertificate entry. It reports leaves/s.
//
//	go test -run '^$' -bench BenchmarkQueueLeaves -benchtime 20000x ./storage/sqlite/
func BenchmarkQueueLeaves(b *testing.B) {
	db := openTestDB(b)
	benchmarkQueueLeaves(b, db, createTree(b, db, true))
}

// BenchmarkQueueLeavesWhileSequencing is BenchmarkQueueLeaves with Trillian's
// sequencer integrating the queued leaves at the same time, as in serving:
// every 100ms, up to 1,000 leaves (the defaults of Trillian's log signer).
func BenchmarkQueueLeavesWhileSequencing(b *testing.B) {
	db := openTestDB(b)
	tree := createTree(b, db, true)
	log.InitMetrics(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { sequenceEvery(ctx, b, db, tree, 100*time.Millisecond) })
	benchmarkQueueLeaves(b, db, tree)
}

// sequenceEvery runs Trillian's sequencer on tree every interval, with
// Trillian's default batch size, until ctx is done.
func sequenceEvery(ctx context.Context, b *testing.B, db *DB, tree *trillian.Tree, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := log.IntegrateBatch(ctx, tree, 1000, 0, time.Hour, clock.System, db.LogStorage(), quota.Noop())
		if err != nil && ctx.Err() == nil {
			b.Error(err)
			return
		}
	}
}

// benchmarkQueueLeaves queues b.N leaves from 64 goroutines.
func benchmarkQueueLeaves(b *testing.B, db *DB, tree *trillian.Tree) {
	s := db.LogStorage()
	value := bytes.Repeat([]byte{0x30}, 1500)
	extra := bytes.Repeat([]byte{0x31}, 3000)
	var next atomic.Int64
	b.SetParallelism(64 / min(64, max(1, runtime.GOMAXPROCS(0))))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			leaf := newLeaf(fmt.Sprintf("bench %d", next.Add(1)))
			leaf.LeafValue = append(leaf.LeafValue, value...)
			leaf.ExtraData = extra
			if _, err := s.QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{leaf}, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
	if fi, err := os.Stat(db.path + "-wal"); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "WAL-MiB")
	}
}
