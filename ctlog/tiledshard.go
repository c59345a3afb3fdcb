package ctlog

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/x509util"
	"github.com/prometheus/client_golang/prometheus"

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
}

// Identity files of a tiled shard, beside Tessera's under
// --data/tiled/<name>: the origin, fixed at creation (it embeds the
// host:port of that start), and the log ID of the key the tiles were made
// with.
const (
	tiledOriginFile = "origin"
	tiledLogIDFile  = "log_id"
)

// newTiledShard opens (or creates) a tiled shard. Like an RFC 6962 shard,
// it is bound to its storage: a shard whose key changed, or whose tiles
// vanished while its key remained, refuses to start rather than fork.
func newTiledShard(ctx context.Context, s ShardOf, cfg Config, dataDir, baseURL string, roots [][]byte, reg prometheus.Registerer) (*tiledShard, error) {
	signer, _, err := loadShardKey(dataDir, s.Name)
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
	logID := sha256.Sum256(pubDER)
	dir := filepath.Join(dataDir, "tiled", s.Name)
	origin, err := tiledIdentity(dir, logID, strings.TrimPrefix(strings.TrimPrefix(strings.TrimRight(baseURL, "/"), "http://"), "https://")+"/"+s.Name)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	l, err := tiled.New(ctx, tiled.Options{
		Origin: origin, Dir: dir, Key: key, Roots: roots,
		NotAfterStart: s.NotAfterStart, NotAfterLimit: s.NotAfterLimit, MaxBodyBytes: cfg.MaxBodyBytes,
		Name: s.Name, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	// The log list's state timestamp: when the shard was made.
	fi, err := os.Stat(filepath.Join(dir, tiledLogIDFile))
	if err != nil {
		l.Close(ctx)
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	return &tiledShard{cfg: s, log: l, pubDER: pubDER, logID: logID, origin: origin, created: fi.ModTime().UTC().Truncate(time.Second)}, nil
}

// tiledIdentity checks (or, for a new shard, writes) the shard's log ID
// and origin, and returns the origin.
func tiledIdentity(dir string, logID [32]byte, newOrigin string) (string, error) {
	idPath, originPath := filepath.Join(dir, tiledLogIDFile), filepath.Join(dir, tiledOriginFile)
	have, err := os.ReadFile(idPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(filepath.Join(dir, "checkpoint")); err == nil {
			return "", fmt.Errorf("%s holds tiles but no %s: refusing to reuse tiles whose key is unknown", dir, tiledLogIDFile)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if err := keyfile.WriteFileAtomic(originPath, []byte(newOrigin+"\n"), 0o644); err != nil {
			return "", err
		}
		if err := keyfile.WriteFileAtomic(idPath, []byte(fmt.Sprintf("%x\n", logID)), 0o644); err != nil {
			return "", err
		}
		return newOrigin, nil
	case err != nil:
		return "", err
	}
	if strings.TrimSpace(string(have)) != fmt.Sprintf("%x", logID) {
		return "", fmt.Errorf("the tiles in %s were made with another key (log ID %s); refusing to fork the log", dir, strings.TrimSpace(string(have)))
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint")); err != nil {
		return "", fmt.Errorf("the tiles of %s vanished (no checkpoint) while its key remained; refusing to start a new tree under the same key", dir)
	}
	b, err := os.ReadFile(originPath)
	if err != nil {
		return "", fmt.Errorf("couldn't read the shard's origin: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
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
		MMD:              60,
		State:            logState(sh.cfg.State, sh.created),
		TemporalInterval: sh.cfg.temporalInterval(),
		Type:             "test",
	}
}
