package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage"
)

// TestOneMySQLPool shows that under --storage mysql:// Trillian's storage,
// the CA's store and the ACME store share one pool: after a certificate
// is issued (Trillian's tables, the ca_ tables) with ACME started (the
// acme_ tables), every connection the server sees to the database is one
// of that pool's.
func TestOneMySQLPool(t *testing.T) {
	spec := testenv.MySQL(t)
	o := testOptions(t.TempDir(), listeners{mgmt: true, acme: true})
	o.Storage = spec
	st, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, st)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CA.Issue(t.Context(), ca.Request{PublicKey: key.Public(), Names: []string{"pool.example.com"}}); err != nil {
		t.Fatal(err)
	}
	pool := st.store.backend.DB
	if pool == nil {
		t.Fatal("no MySQL pool on the storage handle")
	}
	if got := pool.Stats().MaxOpenConnections; got != storage.MySQLPoolSize {
		t.Errorf("pool of %d connections, want %d", got, storage.MySQLPoolSize)
	}
	// A connection of our own, not to the test database.
	u, err := url.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	pw, _ := u.User.Password()
	admin, err := sql.Open("mysql", u.User.Username()+":"+pw+"@tcp("+u.Host+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var server int
	if err := admin.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?", dbName).Scan(&server); err != nil {
		t.Fatal(err)
	}
	open := pool.Stats().OpenConnections
	if server != open || open == 0 {
		t.Errorf("the server sees %d connections to %s; the storage pool has %d open: another pool is connected", server, dbName, open)
	}
}
