// Package storage selects the Trillian storage that backs ctstage's logs.
//
// Two backends exist:
//
//   - "sqlite" (the default): ctstage's own embedded provider in
//     [github.com/ctstage/ctstage/storage/sqlite], one file under the data
//     directory, no server needed;
//   - "mysql://USER:PASS@HOST:PORT/DB": Trillian's own MySQL storage
//     (MariaDB works), whose schema is created when it is missing.
//
// Open parses the --storage flag value once and returns a [Backend]: the
// one handle that Trillian's storage, the CA's store and the ACME store all
// open from. On MySQL they share the Backend's one connection pool; on
// SQLite each keeps its own file under the data directory. The caller
// closes the Backend after everything that uses it has stopped.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/trillian/monitoring"
	tstorage "github.com/google/trillian/storage"

	"github.com/ctstage/ctstage/storage/sqlite"
)

// SQLiteFile is the name of the embedded database file under the data directory.
const SQLiteFile = "trillian.db"

// Backend is an open storage: Trillian's log and admin storage, and what
// the CA's and the ACME server's stores open from.
type Backend struct {
	// Kind is "sqlite" or "mysql".
	Kind string
	// Log stores leaves, Merkle nodes and signed log roots.
	Log tstorage.LogStorage
	// Admin stores tree metadata.
	Admin tstorage.AdminStorage
	// DB is the MySQL connection pool (Kind "mysql"; nil on SQLite) that
	// Trillian's storage, the ca_ tables and the acme_ tables share. It
	// is the Backend's: stores opened on it must not close it.
	DB *sql.DB
	// Dir is the data directory, where the SQLite files live.
	Dir string
	// Name is the MySQL database's name ("" on SQLite): what the
	// processes sharing it have in common.
	Name string

	dsn   string // the MySQL DSN (Kind "mysql")
	close func() error
}

// Close releases the database. Call it after everything using Log and Admin
// has stopped.
func (b *Backend) Close() error {
	if b.close == nil {
		return nil
	}
	return b.close()
}

// treeCacheTTL bounds how long tree metadata is served from memory.
const treeCacheTTL = 5 * time.Second

// ErrBadSpec is returned by Open for a --storage value it does not understand.
var ErrBadSpec = errors.New("bad storage spec")

// Open opens the storage named by spec: "sqlite" (files under dataDir) or
// "mysql://USER:PASS@HOST:PORT/DB". mf receives the storage's metrics and
// may be nil.
func Open(ctx context.Context, spec, dataDir string, mf monitoring.MetricFactory) (*Backend, error) {
	if mf == nil {
		mf = monitoring.InertMetricFactory{}
	}
	switch {
	case spec == "" || spec == "sqlite":
		return openSQLite(ctx, dataDir, mf)
	case strings.HasPrefix(spec, "mysql://"):
		return openMySQL(ctx, spec, dataDir, mf)
	default:
		return nil, fmt.Errorf("%w %q: want \"sqlite\" or \"mysql://USER:PASS@HOST:PORT/DB\"", ErrBadSpec, spec)
	}
}

func openSQLite(ctx context.Context, dataDir string, mf monitoring.MetricFactory) (*Backend, error) {
	db, err := sqlite.Open(ctx, filepath.Join(dataDir, SQLiteFile), sqlite.Options{MetricFactory: mf})
	if err != nil {
		return nil, err
	}
	return &Backend{Kind: "sqlite", Log: db.LogStorage(), Admin: CacheTrees(db.AdminStorage(), treeCacheTTL), Dir: dataDir, close: db.Close}, nil
}

// Path is the path of a file named name in the data directory.
func (b *Backend) Path(name string) string { return filepath.Join(b.Dir, name) }
