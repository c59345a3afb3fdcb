// Package testenv gives tests the outside services they need, with the
// project's rule for a missing one: skip loudly on a developer's machine,
// fail under CI=true.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // MySQL driver
)

// MySQLEnv names the variable that points tests at a MySQL server, as
// "USER:PASS@HOST:PORT". The user needs rights to create and drop
// databases named ctstage_test_*. Default: ctstage:ctstage@127.0.0.1:3306,
// which .ci/run creates.
const MySQLEnv = "CTSTAGE_TEST_MYSQL"

// CI reports whether the tests run in CI, where nothing may be skipped.
func CI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test loudly, or fails it under CI=true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("CI=true and %s", msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", t.Name(), msg)
	t.Skip(msg)
}

// MySQL creates a fresh, empty database for the test and returns a
// --storage spec for it ("mysql://USER:PASS@HOST:PORT/DB"). The database,
// and the tiled shards' databases named after it (DB_tiled_*), are
// dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	server := os.Getenv(MySQLEnv)
	if server == "" {
		server = "ctstage:ctstage@127.0.0.1:3306"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", server[:len(server)-len(hostPart(server))]+"tcp("+hostPart(server)+")/")
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		Unavailable(t, "no MySQL at %s (set %s; .ci/run creates the user): %v", server, MySQLEnv, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "ctstage_test_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("couldn't create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		db.Exec("DROP DATABASE " + name)
		rows, err := db.Query("SHOW DATABASES LIKE '" + name + `\_tiled\_%'`)
		if err != nil {
			return
		}
		var derived []string
		for rows.Next() {
			var d string
			if rows.Scan(&d) == nil {
				derived = append(derived, d)
			}
		}
		rows.Close()
		for _, d := range derived {
			db.Exec("DROP DATABASE `" + d + "`")
		}
	})
	return "mysql://" + server + "/" + name
}

// hostPart returns HOST:PORT of USER:PASS@HOST:PORT.
func hostPart(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			return s[i+1:]
		}
	}
	return s
}
