package tiled

import (
	"context"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/ctstage/ctstage/internal/sqlitedb"
)

func randomHashes(n int) [][]byte {
	hs := make([][]byte, n)
	for i := range hs {
		hs[i] = make([]byte, 32)
		rand.Read(hs[i])
	}
	return hs
}

func TestSeenFilter(t *testing.T) {
	f := newSeenFilter()
	in := randomHashes(300_000) // over four sets: 64 Ki, 128 Ki, 256 Ki
	if !f.mayHave(in[0]) {
		t.Fatal("a filter not yet ready answered no")
	}
	f.add(in...)
	f.ready.Store(true)
	for i, h := range in {
		if !f.mayHave(h) {
			t.Fatalf("hash %d added but not found", i)
		}
	}
	fp := 0
	for _, h := range randomHashes(100_000) {
		if f.mayHave(h) {
			fp++
		}
	}
	// About 0.05% a set, of 3 sets: well under 1%.
	if fp > 1000 {
		t.Errorf("%d false positives in 100,000", fp)
	}
	t.Logf("%d entries in %d sets, %d KiB; %d false positives in 100,000", len(in), len(f.sets), f.size()>>10, fp)
}

// countedReader is a LogReader of an integrated size whose entry bundles
// the test's hasher turns into the hashes it was given.
type countedReader struct {
	tessera.LogReader
	size uint64
}

func (r countedReader) IntegratedSize(context.Context) (uint64, error) { return r.size, nil }
func (r countedReader) ReadEntryBundle(_ context.Context, n uint64, _ uint8) ([]byte, error) {
	return []byte{byte(n)}, nil
}

// TestAntispamFilter: on SQLite the index's lookup is skipped for what
// the filter never saw, so what the index holds must be in the filter:
// what was there at open (loaded) and what the follower adds.
func TestAntispamFilter(t *testing.T) {
	ctx := t.Context()
	db, err := sql.Open("sqlite", sqlitedb.DSN(filepath.Join(t.TempDir(), "as.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqlitedb.Migrate(ctx, db, []string{strings.Join(antispamSchema(false), ";\n")}); err != nil {
		t.Fatal(err)
	}
	entries := make([]*tessera.Entry, 600)
	hashes := make([][]byte, len(entries))
	for i := range entries {
		entries[i] = tessera.NewEntry([]byte{byte(i), byte(i >> 8), 'e'})
		hashes[i] = entries[i].Identity()
	}
	// The first 256 were indexed by an earlier run.
	if _, err := db.ExecContext(ctx, "INSERT INTO "+antispamNextRow+" (id, next) VALUES (0, 256)"); err != nil {
		t.Fatal(err)
	}
	for i, h := range hashes[:256] {
		if _, err := db.ExecContext(ctx, "INSERT INTO "+antispamTable+" (hash, idx) VALUES (?, ?)", h, i); err != nil {
			t.Fatal(err)
		}
	}

	a, err := newAntispam(ctx, db, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	for deadline := time.Now().Add(10 * time.Second); !a.seen.ready.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the filter never became ready")
		}
	}
	// This run's follower indexes the next 344 (one bundle of 256 and a
	// partial one).
	f := a.Follower(func(bundle []byte) ([][]byte, error) {
		n := int(bundle[0])
		return hashes[n*entriesPerTile : min((n+1)*entriesPerTile, len(hashes))], nil
	}).(*follower)
	if n, err := f.catchUp(ctx, countedReader{size: 600}); n != 600 || err != nil {
		t.Fatalf("catchUp = %d, %v; want 600", n, err)
	}

	fresh := func(context.Context, *tessera.Entry) tessera.IndexFuture {
		return func() (tessera.Index, error) { return tessera.Index{Index: 1 << 40}, nil }
	}
	add := a.Decorator()(fresh)
	for i, e := range entries {
		idx, err := add(ctx, e)()
		if err != nil || !idx.IsDup || idx.Index != uint64(i) {
			t.Fatalf("entry %d: %+v, %v; want a duplicate of %d", i, idx, err, i)
		}
	}
	if idx, err := add(ctx, tessera.NewEntry([]byte("new")))(); err != nil || idx.IsDup || idx.Index != 1<<40 {
		t.Errorf("a new entry: %+v, %v; want it passed on", idx, err)
	}
}

// size is the filter's memory in bytes.
func (f *seenFilter) size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, s := range f.sets {
		n += len(s.bits) * 8
	}
	return n
}
