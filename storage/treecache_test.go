package storage

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	tstorage "github.com/google/trillian/storage"
	"github.com/google/trillian/storage/testonly"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ctstage/ctstage/storage/sqlite"
)

// countingAdmin counts the snapshots opened on the real storage.
type countingAdmin struct {
	tstorage.AdminStorage
	snapshots atomic.Int64
}

func (c *countingAdmin) Snapshot(ctx context.Context) (tstorage.ReadOnlyAdminTX, error) {
	c.snapshots.Add(1)
	return c.AdminStorage.Snapshot(ctx)
}

func TestCacheTrees(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir()+"/t.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	real := &countingAdmin{AdminStorage: db.AdminStorage()}
	c := CacheTrees(real, 200*time.Millisecond)
	tree, err := tstorage.CreateTree(ctx, c, testonly.LogTree)
	if err != nil {
		t.Fatal(err)
	}
	get := func() *trillian.Tree {
		t.Helper()
		got, err := tstorage.GetTree(ctx, c, tree.TreeId)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	get()
	before := real.snapshots.Load()
	for range 10 {
		get().DisplayName = "mutated by a caller"
	}
	if n := real.snapshots.Load() - before; n != 0 {
		t.Errorf("%d storage snapshots for 10 cached reads", n)
	}
	if got := get().DisplayName; got != tree.DisplayName {
		t.Errorf("a caller's change leaked into the cache: %q", got)
	}

	// A write through the cache is seen at once.
	if _, err := tstorage.UpdateTree(ctx, c, tree.TreeId, func(t *trillian.Tree) { t.MaxRootDuration = durationpb.New(time.Hour) }); err != nil {
		t.Fatal(err)
	}
	if got := get().MaxRootDuration.AsDuration(); got != time.Hour {
		t.Errorf("after UpdateTree: MaxRootDuration %v, want 1h", got)
	}

	// A write by someone else is seen after the TTL.
	if _, err := tstorage.UpdateTree(ctx, real, tree.TreeId, func(t *trillian.Tree) { t.Description = "changed elsewhere" }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	if got := get().Description; got != "changed elsewhere" {
		t.Errorf("after the TTL: description %q", got)
	}
	if _, err := tstorage.GetTree(ctx, c, 12345); err == nil {
		t.Error("GetTree of an unknown tree succeeded")
	}
}
