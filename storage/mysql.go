package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/trillian/monitoring"
	tmysql "github.com/google/trillian/storage/mysql"

	"github.com/ctstage/ctstage/internal/mysqldb"
)

//go:embed mysql_schema.sql
var mysqlSchema string

// MySQLDSN turns "mysql://USER:PASS@HOST:PORT/DB" into a go-sql-driver DSN
// with the settings Trillian's MySQL storage needs.
func MySQLDSN(spec string) (string, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return "", fmt.Errorf("%w: couldn't parse %q as a URL", ErrBadSpec, redact(spec))
	}
	db := strings.TrimPrefix(u.Path, "/")
	if u.Scheme != "mysql" || u.Host == "" || db == "" || strings.Contains(db, "/") {
		return "", fmt.Errorf("%w %q: want mysql://USER:PASS@HOST:PORT/DB", ErrBadSpec, redact(spec))
	}
	cfg := gomysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	cfg.DBName = db
	cfg.Timeout = 10 * time.Second
	// Every pooled connection must run in strict mode; Trillian's OpenDB sets
	// it on one connection only.
	cfg.Params = map[string]string{"sql_mode": "'STRICT_ALL_TABLES'"}
	// UPDATE reports the rows it matched, not only those it changed, so
	// that the ACME store's rewrite of an unchanged document is not "not
	// found". Trillian's storage counts rows only after INSERTs and
	// DELETEs, where matched and changed rows are the same.
	cfg.ClientFoundRows = true
	return cfg.FormatDSN(), nil
}

// redact hides the password of a mysql:// spec in error messages.
func redact(spec string) string {
	u, err := url.Parse(spec)
	if err != nil || u.User == nil {
		return "mysql://..."
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// MySQLPoolSize is the one pool's size: Trillian's storage (whose
// concurrent QueueLeaves calls Coalesce merges), the CA's store and the
// ACME store share it. Before they shared it, they had 64 + 16 + 32.
const MySQLPoolSize = 64

func openMySQL(ctx context.Context, spec, dataDir string, mf monitoring.MetricFactory) (*Backend, error) {
	dsn, err := MySQLDSN(spec)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("couldn't open MySQL %s: %w", redact(spec), err)
	}
	db.SetMaxOpenConns(MySQLPoolSize)
	db.SetMaxIdleConns(MySQLPoolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't connect to MySQL %s: %w", redact(spec), err)
	}
	b := &Backend{
		Kind:  "mysql",
		Log:   Coalesce(tmysql.NewLogStorage(db, mf), 256),
		Admin: CacheTrees(tmysql.NewAdminStorage(db), treeCacheTTL),
		DB:    db,
		Dir:   dataDir,
		dsn:   dsn,
		close: db.Close,
	}
	if cfg, err := gomysql.ParseDSN(dsn); err == nil {
		b.Name = cfg.DBName
	}
	// Processes starting together on an empty database create the
	// schema once.
	unlock, err := b.Lock(ctx, "schema")
	if err != nil {
		db.Close()
		return nil, err
	}
	defer unlock()
	if err := ensureMySQLSchema(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// lockWait is how long Lock waits for another process's provisioning.
const lockWait = 2 * time.Minute

// Lock serializes a one-time step (creating the schema, the trees, the
// keys) among every ctstage process on this storage: on MySQL a named
// lock, GET_LOCK, scoped to the DSN's database; on SQLite nothing, the
// data directory's lock already keeps other processes out. It waits up
// to two minutes.
func (b *Backend) Lock(ctx context.Context, purpose string) (unlock func(), err error) {
	if b.Kind != "mysql" {
		return func() {}, nil
	}
	// MySQL's lock names are server-wide and at most 64 characters.
	h := sha256.Sum256([]byte(b.Name + "\x00" + purpose))
	name := "ctstage_" + hex.EncodeToString(h[:16])
	_, unlock, err = mysqldb.Lock(ctx, b.DB, name, lockWait)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", purpose, b.Name, err)
	}
	return unlock, nil
}

// TiledDatabase is the name of a tiled shard's own database beside the
// DSN's database db: "<db>_tiled_<shard>", '-' read as '_'.
func TiledDatabase(db, shard string) string {
	return db + "_tiled_" + strings.ReplaceAll(shard, "-", "_")
}

// TiledPoolSize is the size of each tiled shard's pool: Tessera's MySQL
// backend sequences in one transaction at a time, and the read path and
// the antispam index need a few more. The default topology's six tiled
// shards so add 24 connections to the shared pool's 64, well within
// MariaDB's default max_connections of 151.
const TiledPoolSize = 4

// Database opens the MySQL database of a tiled shard, named
// "<db>_tiled_<shard>" after the DSN's database <db>, creating it when it
// is missing. It is on the same server, with the same user and settings,
// in a pool of TiledPoolSize of its own; the caller closes it. On SQLite
// it is an error: tiled shards keep files under the data directory there.
func (b *Backend) Database(ctx context.Context, shard string) (*sql.DB, error) {
	if b.Kind != "mysql" {
		return nil, fmt.Errorf("storage %s has no databases of its own for tiled shards", b.Kind)
	}
	cfg, err := gomysql.ParseDSN(b.dsn)
	if err != nil {
		return nil, err
	}
	name := TiledDatabase(cfg.DBName, shard)
	if len(name) > 64 {
		return nil, fmt.Errorf("the database name %s is longer than MySQL's 64 characters; use a shorter database name in --storage", name)
	}
	if _, err := b.DB.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"`"); err != nil {
		return nil, fmt.Errorf("couldn't create database %s (the user needs CREATE on it): %w", name, err)
	}
	cfg.DBName = name
	// Tessera polls each shard's tree state several times a second for
	// its own statistics (tessera.integrationStats, hard-coded at 100 ms,
	// and followerStats at 200 ms): with server-side prepared statements
	// every such query is three round trips (prepare, execute, close),
	// which made an idle frontend of 6 tiled shards cost 75-90 ms of CPU
	// a second, and MariaDB 60-70. Interpolated on the client (safe with
	// utf8mb4, the driver's default), each query is one.
	cfg.InterpolateParams = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(TiledPoolSize)
	db.SetMaxIdleConns(TiledPoolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't connect to database %s: %w", name, err)
	}
	return db, nil
}

// ensureMySQLSchema creates Trillian's tables when the Trees table is missing.
// A partly created schema (Trees present, others not) is left for the
// operator: Trillian's own checks then name the missing table.
func ensureMySQLSchema(ctx context.Context, db *sql.DB) error {
	var n int
	err := db.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'Trees'").Scan(&n)
	if err != nil {
		return fmt.Errorf("couldn't inspect the MySQL schema: %w", err)
	}
	if n > 0 {
		return nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("couldn't get a MySQL connection: %w", err)
	}
	defer conn.Close()
	for _, stmt := range splitSQL(mysqlSchema) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("couldn't create the Trillian schema (%.40q...): %w", stmt, err)
		}
	}
	return nil
}

// splitSQL splits a schema file into statements, dropping "--" comments.
func splitSQL(schema string) []string {
	var b strings.Builder
	for _, line := range strings.Split(schema, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	var stmts []string
	for _, s := range strings.Split(b.String(), ";") {
		if s = strings.TrimSpace(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts
}
