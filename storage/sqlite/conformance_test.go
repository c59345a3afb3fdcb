package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/trillian/integration/storagetest"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/testonly"
)

// openTestDB opens a new database in a temporary directory and closes it
// when the test ends.
func openTestDB(t testing.TB) *DB {
	t.Helper()
	return openTestDBAt(t, filepath.Join(t.TempDir(), "trillian.db"))
}

// openTestDBAt opens the database at path and closes it when the test ends.
func openTestDBAt(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return db
}

// TestLogStorageSuite runs Trillian's log storage conformance suite.
func TestLogStorageSuite(t *testing.T) {
	storagetest.RunLogStorageTests(t, func(ctx context.Context, _ *testing.T) (storage.LogStorage, storage.AdminStorage) {
		db := openTestDB(t)
		return db.LogStorage(), db.AdminStorage()
	})
}

// TestAdminStorageSuite runs Trillian's admin storage conformance suite.
func TestAdminStorageSuite(t *testing.T) {
	tester := &testonly.AdminStorageTester{NewAdminStorage: func() storage.AdminStorage {
		return openTestDB(t).AdminStorage()
	}}
	tester.RunAllTests(t)
}
