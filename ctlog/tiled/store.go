package tiled

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tmysql "github.com/transparency-dev/tessera/storage/mysql"
	"github.com/transparency-dev/tessera/storage/posix"
	_ "modernc.org/sqlite" // the antispam index beside POSIX tiles

	"github.com/ctstage/ctstage/internal/keyfile"
	"github.com/ctstage/ctstage/internal/mysqldb"
	"github.com/ctstage/ctstage/internal/sqlitedb"
)

// store is where a log lives: Tessera's driver for the tree, and beside it
// what Tessera does not keep: the log's identity (origin and log ID), the
// issuers, and the antispam index. Two exist: files under a directory
// (Tessera's POSIX backend) and a MySQL database (Tessera's MySQL backend).
type store interface {
	// driver opens Tessera's storage; bg lives as long as the log.
	driver(bg context.Context) (tessera.Driver, error)
	// identity returns the stored origin and log ID, or fs.ErrNotExist
	// for a log never created.
	identity(ctx context.Context) (origin string, logID string, err error)
	// create records the identity of a new log.
	create(ctx context.Context, origin string, logID [32]byte) error
	// vanished reports why a log whose identity is stored has lost its
	// tree, or "" when it has not.
	vanished(ctx context.Context) (string, error)
	// putIssuer stores an issuer under fp, the SHA-256 of der.
	putIssuer(ctx context.Context, fp [32]byte, der []byte) error
	// issuer returns the issuer of that lower-case hex SHA-256, or
	// fs.ErrNotExist.
	issuer(ctx context.Context, fp string) ([]byte, error)
	// published is when the newest checkpoint was published, as
	// Tessera's publisher reckons its age: the file's mtime on POSIX,
	// published_at on MySQL.
	published(ctx context.Context) (time.Time, error)
	antispam() *antispam
	close() error
}

// POSIX layout: identity files beside Tessera's under the directory,
// which is served as the monitoring prefix except for them and .state.
const (
	originFile   = "origin"
	logIDFile    = "log_id"
	antispamFile = ".antispam.db"
)

type dirStore struct {
	dir string
	as  *antispam
	db  *sql.DB
}

func openDirStore(ctx context.Context, dir string, opts *Options) (*dirStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, "issuer"), 0o755); err != nil {
		return nil, fmt.Errorf("couldn't create the log's directory: %w", err)
	}
	db, err := sql.Open("sqlite", sqlitedb.DSN(filepath.Join(dir, antispamFile)))
	if err != nil {
		return nil, err
	}
	// WAL: the lookups of concurrent submissions read beside the
	// follower's writes.
	db.SetMaxOpenConns(4)
	if err := sqlitedb.Migrate(ctx, db, []string{strings.Join(antispamSchema(false), ";\n")}); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open the antispam index in %s: %w", dir, err)
	}
	as, err := newAntispam(ctx, db, false, opts.Logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &dirStore{dir: dir, db: db, as: as}, nil
}

func (s *dirStore) driver(bg context.Context) (tessera.Driver, error) {
	return posix.New(bg, posix.Config{Path: s.dir})
}

func (s *dirStore) identity(context.Context) (string, string, error) {
	id, err := os.ReadFile(filepath.Join(s.dir, logIDFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(s.dir, "checkpoint")); err == nil {
				return "", "", fmt.Errorf("%s holds tiles but no %s: refusing to reuse tiles whose key is unknown", s.dir, logIDFile)
			}
		}
		return "", "", err
	}
	origin, err := os.ReadFile(filepath.Join(s.dir, originFile))
	if err != nil {
		return "", "", fmt.Errorf("couldn't read the log's origin: %w", err)
	}
	return strings.TrimSpace(string(origin)), strings.TrimSpace(string(id)), nil
}

func (s *dirStore) create(_ context.Context, origin string, logID [32]byte) error {
	if err := keyfile.WriteFileAtomic(filepath.Join(s.dir, originFile), []byte(origin+"\n"), 0o644); err != nil {
		return err
	}
	return keyfile.WriteFileAtomic(filepath.Join(s.dir, logIDFile), fmt.Appendf(nil, "%x\n", logID), 0o644)
}

// vanished: tiles without a checkpoint. A log with neither was stopped
// between recording its identity and its first checkpoint, before any
// entry: it may go on.
func (s *dirStore) vanished(context.Context) (string, error) {
	_, errCP := os.Stat(filepath.Join(s.dir, "checkpoint"))
	_, errTiles := os.Stat(filepath.Join(s.dir, "tile"))
	if errCP != nil && errTiles == nil {
		return fmt.Sprintf("the tiles of %s vanished (no checkpoint)", s.dir), nil
	}
	return "", nil
}

func (s *dirStore) putIssuer(_ context.Context, fp [32]byte, der []byte) error {
	path := filepath.Join(s.dir, "issuer", fmt.Sprintf("%x", fp))
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return keyfile.WriteFileAtomic(path, der, 0o644)
}

func (s *dirStore) issuer(_ context.Context, fp string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.dir, "issuer", fp))
}

func (s *dirStore) published(context.Context) (time.Time, error) {
	fi, err := os.Stat(filepath.Join(s.dir, layout.CheckpointPath))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

func (s *dirStore) antispam() *antispam { return s.as }
func (s *dirStore) close() error        { return errors.Join(s.as.close(), s.db.Close()) }

// mysqlStore is a log in a MySQL database of its own: Tessera's tables,
// and ctstage's beside them.
type mysqlStore struct {
	db *sql.DB
	as *antispam
}

// mysqlSchema is Tessera v1.0.4's storage/mysql/schema.sql (Apache 2.0,
// The Tessera authors), which its package does not export, followed by
// ctstage's tables. Tessera's statements are repeatable, as
// mysqldb.Migrate needs.
var mysqlSchema = append([]string{
	"CREATE TABLE IF NOT EXISTS Tessera (`id` TINYINT UNSIGNED NOT NULL, `compatibilityVersion` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`id`))",
	"INSERT IGNORE INTO Tessera (`id`, `compatibilityVersion`) VALUES (0, 1)",
	"CREATE TABLE IF NOT EXISTS `Checkpoint` (`id` TINYINT UNSIGNED NOT NULL, `note` MEDIUMBLOB NOT NULL, `published_at` BIGINT NOT NULL, PRIMARY KEY(`id`))",
	"CREATE TABLE IF NOT EXISTS `TreeState` (`id` TINYINT UNSIGNED NOT NULL, `size` BIGINT UNSIGNED NOT NULL, `root` TINYBLOB NOT NULL, PRIMARY KEY(`id`))",
	"CREATE TABLE IF NOT EXISTS `Subtree` (`level` TINYINT UNSIGNED NOT NULL, `index` BIGINT UNSIGNED NOT NULL, `nodes` MEDIUMBLOB NOT NULL, PRIMARY KEY(`level`, `index`))",
	"CREATE TABLE IF NOT EXISTS `TiledLeaves` (`tile_index` BIGINT UNSIGNED NOT NULL, `size` SMALLINT UNSIGNED NOT NULL, `data` LONGBLOB NOT NULL, PRIMARY KEY(`tile_index`))",
	"CREATE TABLE IF NOT EXISTS ctstage_tiled_identity (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, origin VARCHAR(255) NOT NULL, log_id CHAR(64) NOT NULL) ENGINE=InnoDB",
	"CREATE TABLE IF NOT EXISTS ctstage_tiled_issuer (fp CHAR(64) NOT NULL PRIMARY KEY, der MEDIUMBLOB NOT NULL) ENGINE=InnoDB",
}, antispamSchema(true)...)

func openMySQLStore(ctx context.Context, db *sql.DB, opts *Options) (*mysqlStore, error) {
	if err := mysqldb.Migrate(ctx, db, "ctstage_tiled_schema", "ctstage_tiled_schema", [][]string{mysqlSchema}); err != nil {
		return nil, fmt.Errorf("couldn't create the log's tables: %w", err)
	}
	as, err := newAntispam(ctx, db, true, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &mysqlStore{db: db, as: as}, nil
}

func (s *mysqlStore) driver(bg context.Context) (tessera.Driver, error) {
	return tmysql.New(bg, s.db)
}

func (s *mysqlStore) identity(ctx context.Context) (string, string, error) {
	var origin, id string
	err := s.db.QueryRowContext(ctx, "SELECT origin, log_id FROM ctstage_tiled_identity WHERE id = 0").Scan(&origin, &id)
	if errors.Is(err, sql.ErrNoRows) {
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM TiledLeaves").Scan(&n); err == nil && n > 0 {
			return "", "", errors.New("the database holds tiles but no identity: refusing to reuse tiles whose key is unknown")
		}
		return "", "", fs.ErrNotExist
	}
	return origin, id, err
}

func (s *mysqlStore) create(ctx context.Context, origin string, logID [32]byte) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO ctstage_tiled_identity (id, origin, log_id) VALUES (0, ?, ?)", origin, fmt.Sprintf("%x", logID))
	return err
}

// vanished: entry bundles without a tree state. A log with neither was
// stopped between recording its identity and starting its tree.
func (s *mysqlStore) vanished(ctx context.Context) (string, error) {
	var state, leaves int
	if err := s.db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM TreeState), (SELECT COUNT(*) FROM TiledLeaves)").Scan(&state, &leaves); err != nil {
		return "", fmt.Errorf("couldn't read the log's tree state: %w", err)
	}
	if state == 0 && leaves > 0 {
		return "the log's tree state vanished from its database", nil
	}
	return "", nil
}

func (s *mysqlStore) putIssuer(ctx context.Context, fp [32]byte, der []byte) error {
	_, err := s.db.ExecContext(ctx, "INSERT IGNORE INTO ctstage_tiled_issuer (fp, der) VALUES (?, ?)", fmt.Sprintf("%x", fp), der)
	return err
}

func (s *mysqlStore) issuer(ctx context.Context, fp string) ([]byte, error) {
	var der []byte
	err := s.db.QueryRowContext(ctx, "SELECT der FROM ctstage_tiled_issuer WHERE fp = ?", fp).Scan(&der)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fs.ErrNotExist
	}
	return der, err
}

func (s *mysqlStore) published(ctx context.Context) (time.Time, error) {
	var ms int64
	if err := s.db.QueryRowContext(ctx, "SELECT published_at FROM `Checkpoint` WHERE id = 0").Scan(&ms); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}

func (s *mysqlStore) antispam() *antispam { return s.as }

// close leaves the database to its owner, who gave it in Options.DB.
func (s *mysqlStore) close() error { return s.as.close() }
