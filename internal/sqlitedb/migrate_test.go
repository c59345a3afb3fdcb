package sqlitedb

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	version := func() int {
		var v int
		if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v1 := []string{"CREATE TABLE a(x INTEGER)"}
	v2 := append(v1, "CREATE TABLE b(y INTEGER)")
	if err := Migrate(ctx, db, v1); err != nil || version() != 1 {
		t.Fatalf("to v1: %v, version %d", err, version())
	}
	if err := Migrate(ctx, db, v1); err != nil || version() != 1 {
		t.Fatalf("v1 again: %v, version %d", err, version())
	}
	if err := Migrate(ctx, db, v2); err != nil || version() != 2 {
		t.Fatalf("to v2: %v, version %d", err, version())
	}
	if err := Migrate(ctx, db, v1); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("an older ctstage opened a v2 database: %v", err)
	}
	bad := append(append([]string{}, v2...), "CREATE TABLE c(z INTEGER)", "NOT SQL")
	if err := Migrate(ctx, db, bad); err == nil {
		t.Fatal("a broken migration succeeded")
	}
	if version() != 2 {
		t.Errorf("a failed migration left version %d, want 2", version())
	}
	if _, err := db.Exec("SELECT * FROM c"); err == nil {
		t.Error("a failed migration left part of its work behind")
	}
}
