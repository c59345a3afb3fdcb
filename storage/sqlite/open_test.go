package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/util/clock"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// integrate queues leaves and sequences them all.
func integrate(t *testing.T, db *DB, tree *trillian.Tree, leaves []*trillian.LogLeaf) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.LogStorage().QueueLeaves(ctx, tree, leaves, time.Now()); err != nil {
		t.Fatalf("QueueLeaves() = %v", err)
	}
	log.InitMetrics(nil)
	for total := 0; total < len(leaves); {
		n, err := log.IntegrateBatch(ctx, tree, 100, 0, time.Hour, clock.System, db.LogStorage(), quota.Noop())
		if err != nil || n == 0 {
			t.Fatalf("IntegrateBatch() = %d, %v after %d of %d leaves", n, err, total, len(leaves))
		}
		total += n
	}
}

// TestReopen writes a tree, closes the database and opens it again: the
// tree, its roots, its leaves and its Merkle nodes (which the sequencer reads
// back to extend the tree) survive.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "trillian.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	tree := createTree(t, db, true)
	integrate(t, db, tree, newLeaves(0, 300))
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	db = openTestDBAt(t, path)
	got, err := storage.GetTree(ctx, db.AdminStorage(), tree.TreeId)
	if err != nil || got.DisplayName != tree.DisplayName {
		t.Fatalf("GetTree() after reopen = %v, %v", got, err)
	}
	checkIntegrated(t, db, tree, 300)
	integrate(t, db, tree, newLeaves(300, 45))
	checkIntegrated(t, db, tree, 345)
	res, err := db.LogStorage().QueueLeaves(ctx, tree, newLeaves(7, 1), time.Now())
	if err != nil || status.FromProto(res[0].Status).Code() != codes.AlreadyExists {
		t.Errorf("QueueLeaves(leaf from before reopen) = %v, %v; want AlreadyExists", res, err)
	}
}

// TestOpenCorrupt checks that damaged or foreign files give a clear error
// wrapping ErrCorrupt at Open.
func TestOpenCorrupt(t *testing.T) {
	for _, test := range []struct {
		desc string
		make func(t *testing.T, path string)
		want string
	}{
		{"garbage", writeGarbage, "not a database"},
		{"damaged pages", damagePages, "integrity"},
		{"foreign database", writeForeignDB, "application_id"},
		{"newer schema", writeNewerSchema, "newer"},
	} {
		t.Run(test.desc, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "trillian.db")
			test.make(t, path)
			db, err := Open(context.Background(), path, Options{})
			if err == nil {
				_ = db.Close()
				t.Fatal("Open() succeeded, want error")
			}
			t.Logf("Open() = %v", err)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), test.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open() = %v, want ErrCorrupt naming the file and %q", err, test.want)
			}
		})
	}
}

// writeGarbage writes random bytes.
func writeGarbage(t *testing.T, path string) {
	b := make([]byte, 16384)
	_, _ = rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// damagePages creates a real database and overwrites pages in its middle.
func damagePages(t *testing.T, path string) {
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tree := createTree(t, db, true)
	leaves := newLeaves(0, 200)
	for _, l := range leaves {
		l.LeafValue = bytes.Repeat(l.LeafValue, 100)
	}
	integrate(t, db, tree, leaves)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 8*4096), 8*4096); err != nil {
		t.Fatal(err)
	}
}

// writeForeignDB creates an SQLite database that ctstage did not write.
func writeForeignDB(t *testing.T, path string) {
	execRaw(t, path, "CREATE TABLE t(x)")
}

// writeNewerSchema creates a ctstage database from a future version.
func writeNewerSchema(t *testing.T, path string) {
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	execRaw(t, path, "PRAGMA user_version = 99")
}

// execRaw runs query on the file with a plain connection.
func execRaw(t *testing.T, path, query string) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.Close() }()
	if _, err := raw.Exec(query); err != nil {
		t.Fatal(err)
	}
}

// TestOpenNotWritable checks paths that cannot hold a database. Tests run as
// root, whom file modes do not stop, so the unwritable place is simulated by
// a path whose parent is a regular file, and by a directory in place of the
// file.
func TestOpenNotWritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(file, "trillian.db"), dir} {
		db, err := Open(context.Background(), path, Options{})
		if err == nil {
			_ = db.Close()
			t.Fatalf("Open(%q) succeeded, want error", path)
		}
		t.Logf("Open(%q) = %v", path, err)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%q) = %v, want ErrUnavailable naming the path", path, err)
		}
	}
}

// TestDiskFull fills the database up to a page limit: QueueLeaves fails with
// an error that wraps ErrUnavailable and carries gRPC code Unavailable (HTTP
// 503 in ctfe), and works again once there is room.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	tree := createTree(t, db, true)
	setMaxPages(t, db, 0)
	var err error
	for i := 0; err == nil && i < 100; i++ {
		leaf := newLeaf(strings.Repeat("x", 4096) + string(rune('a'+i)))
		_, err = db.LogStorage().QueueLeaves(ctx, tree, []*trillian.LogLeaf{leaf}, time.Now())
	}
	t.Logf("QueueLeaves() on a full disk = %v", err)
	if !errors.Is(err, ErrUnavailable) || status.Code(err) != codes.Unavailable {
		t.Fatalf("QueueLeaves() on a full disk = %v (code %v), want ErrUnavailable, code Unavailable", err, status.Code(err))
	}
	setMaxPages(t, db, 1<<30)
	if _, err := db.LogStorage().QueueLeaves(ctx, tree, newLeaves(0, 1), time.Now()); err != nil {
		t.Errorf("QueueLeaves() after freeing space = %v", err)
	}
}

// setMaxPages limits the writer connection to the current size plus extra
// pages, which makes further growth fail with SQLITE_FULL.
func setMaxPages(t *testing.T, db *DB, limit int) {
	t.Helper()
	if limit == 0 {
		if err := db.writer.QueryRow("PRAGMA page_count").Scan(&limit); err != nil {
			t.Fatal(err)
		}
		limit += 2
	}
	var got int
	if err := db.writer.QueryRow(fmt.Sprintf("PRAGMA max_page_count = %d", limit)).Scan(&got); err != nil {
		t.Fatal(err)
	}
}

// TestClosed checks that a closed DB refuses work with ErrUnavailable.
func TestClosed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "trillian.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tree := createTree(t, db, true)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.LogStorage().QueueLeaves(ctx, tree, newLeaves(0, 1), time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("QueueLeaves() after Close = %v, want ErrUnavailable", err)
	}
	if _, err := db.LogStorage().SnapshotForTree(ctx, tree); !errors.Is(err, ErrUnavailable) {
		t.Errorf("SnapshotForTree() after Close = %v, want ErrUnavailable", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}
