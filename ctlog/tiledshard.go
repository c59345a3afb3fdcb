package ctlog

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/x509util"

	"github.com/ctstage/ctstage/ctlog/tiled"
	"github.com/ctstage/ctstage/internal/keyfile"
)

// tiledShard is a Static CT API shard (package ctlog/tiled).
type tiledShard struct {
	cfg     ShardOf
	log     *tiled.Log
	pubDER  []byte
	logID   [sha256.Size]byte
	origin  string
	created time.Time
	db      *sql.DB // the shard's MySQL database; nil on POSIX
}

// newTiledShard opens (or creates) a tiled shard: under
// --data/tiled/<name> on the POSIX backend, or in the database that
// opts.TiledDB gives. Like an RFC 6962 shard it is bound to its storage:
// a shard whose key changed, or whose tiles vanished while its key and
// its marker (--data/logs/<name>.tree) remained, refuses to start rather
// than fork.
func newTiledShard(ctx context.Context, s ShardOf, opts *Options, roots [][]byte) (*tiledShard, error) {
	signer, _, err := loadShardKey(opts.KeysDir, s.Name)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("shard %s: the key is not ECDSA", s.Name)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("shard %s: couldn't encode public key: %w", s.Name, err)
	}
	marker := markerPath(opts.KeysDir, s.Name)
	_, err = os.Stat(marker)
	existing := err == nil
	to := tiled.Options{
		Origin:   strings.TrimPrefix(strings.TrimPrefix(strings.TrimRight(opts.BaseURL, "/"), "http://"), "https://") + "/" + s.Name,
		Dir:      filepath.Join(opts.DataDir, "tiled", s.Name),
		Existing: existing,
		Key:      key, Roots: roots,
		NotAfterStart: s.NotAfterStart, NotAfterLimit: s.NotAfterLimit, MaxBodyBytes: opts.Config.MaxBodyBytes,
		RepublishInterval: opts.Config.STHMaxAge,
		Logger:            opts.Logger, Name: s.Name, Registerer: opts.Registerer, Unavailable: opts.Unavailable,
	}
	sh := &tiledShard{cfg: s, pubDER: pubDER, logID: sha256.Sum256(pubDER)}
	if opts.TiledDB != nil {
		if sh.db, err = opts.TiledDB(ctx, s.Name); err != nil {
			return nil, fmt.Errorf("shard %s: %w", s.Name, err)
		}
		to.DB = sh.db
	}
	if sh.log, err = tiled.New(ctx, to); err != nil {
		sh.closeDB()
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	sh.origin = sh.log.Origin()
	if !existing {
		if err := keyfile.WriteFileAtomic(marker, []byte("tiled "+sh.origin+"\n"), 0o600); err != nil {
			sh.close(ctx)
			return nil, fmt.Errorf("shard %s: %w", s.Name, err)
		}
	}
	// The log list's state timestamp: when the shard was made.
	fi, err := os.Stat(marker)
	if err != nil {
		sh.close(ctx)
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	sh.created = fi.ModTime().UTC().Truncate(time.Second)
	return sh, nil
}

// close stops the shard's log, then closes its database.
func (sh *tiledShard) close(ctx context.Context) error {
	err := sh.log.Close(ctx)
	sh.closeDB()
	return err
}

func (sh *tiledShard) closeDB() {
	if sh.db != nil {
		sh.db.Close()
	}
}

// rootsDER reads the accepted roots of PEM files.
func rootsDER(files []string) ([][]byte, error) {
	pool := x509util.NewPEMCertPool()
	for _, f := range files {
		if err := pool.AppendCertsFromPEMFile(f); err != nil {
			return nil, fmt.Errorf("couldn't read roots %s: %w", f, err)
		}
	}
	var out [][]byte
	for _, c := range pool.RawCertificates() {
		out = append(out, c.Raw)
	}
	return out, nil
}

// tiledLogEntry is the shard's entry in the log list's tiled_logs.
func (s *Server) tiledLogEntry(sh *tiledShard) *loglist3.TiledLog {
	return &loglist3.TiledLog{
		Description:      sh.cfg.description(),
		LogID:            sh.logID[:],
		Key:              sh.pubDER,
		SubmissionURL:    s.shardURL(sh.cfg.Name),
		MonitoringURL:    s.shardURL(sh.cfg.Name),
		MMD:              int32(sh.cfg.MMD / time.Second),
		State:            s.listState(s.byName[sh.cfg.Name]),
		TemporalInterval: sh.cfg.temporalInterval(),
		Type:             "test",
	}
}
