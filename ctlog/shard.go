package ctlog

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/trillian/ctfe"
	"github.com/google/certificate-transparency-go/trillian/ctfe/configpb"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/trillian"
	"github.com/google/trillian/client"
	"github.com/google/trillian/crypto/keys"
	"github.com/google/trillian/crypto/keys/der"
	"github.com/google/trillian/crypto/keyspb"
	"github.com/google/trillian/monitoring"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ctstage/ctstage/internal/keyfile"
)

func init() {
	// ctfe loads its signing key through Trillian's key handlers.
	keys.RegisterHandler(&keyspb.PrivateKey{}, der.FromProto)
}

// shard is one running log: its config, Trillian tree, key and ctfe handlers.
type shard struct {
	cfg      ShardOf
	tree     *trillian.Tree
	key      crypto.Signer
	pubDER   []byte
	logID    [sha256.Size]byte
	instance *ctfe.Instance
	// clock is ctfe's clock for the shard, skewed by sct_timestamp_skew.
	clock *skewClock
}

// keyPath is where a shard's private key lives under the data directory.
func keyPath(dataDir, name string) string {
	return filepath.Join(dataDir, "logs", name+".key")
}

// markerPath records that a tree was created for the shard's key.
func markerPath(dataDir, name string) string {
	return filepath.Join(dataDir, "logs", name+".tree")
}

func loadShardKey(dataDir, name string) (crypto.Signer, bool, error) {
	return keyfile.LoadOrCreate(keyPath(dataDir, name), func() (crypto.Signer, error) {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
}

// keyTag binds a tree to its key: it is written into the tree's description
// so that a tree is never served with another key than the one it began with.
func keyTag(pubDER []byte) string {
	h := sha256.Sum256(pubDER)
	return "key sha256:" + hex.EncodeToString(h[:])
}

// findOrCreateTree returns the shard's tree, found by display name, or
// creates and initialises it. A tree created with another key is an error.
func findOrCreateTree(ctx context.Context, ts *trillianServer, s ShardOf, pubDER []byte, dataDir string, sthMaxAge time.Duration) (*trillian.Tree, error) {
	rsp, err := ts.admin.ListTrees(ctx, &trillian.ListTreesRequest{})
	if err != nil {
		return nil, fmt.Errorf("couldn't list trees: %w", err)
	}
	tag := keyTag(pubDER)
	for _, t := range rsp.Tree {
		if t.DisplayName != s.Name || t.Deleted {
			continue
		}
		if !strings.Contains(t.Description, tag) {
			return nil, fmt.Errorf("shard %s: tree %d in storage was created with another key than %s (a different --data directory on the same database?)",
				s.Name, t.TreeId, keyPath(dataDir, s.Name))
		}
		if err := updateMaxRootDuration(ctx, ts, t, sthMaxAge); err != nil {
			return nil, err
		}
		return t, initLog(ctx, ts, t)
	}
	if _, err := os.Stat(markerPath(dataDir, s.Name)); err == nil {
		// The key and its marker survived but the tree did not: serving the
		// shard would present a new, shorter tree under the old log ID, which
		// monitors rightly see as a misbehaving log. Refuse rather than fork.
		return nil, fmt.Errorf("shard %s: %s says a tree was created for this key, but storage holds none (was the storage reset or changed?); move %s away to start a new log",
			s.Name, markerPath(dataDir, s.Name), filepath.Dir(keyPath(dataDir, s.Name)))
	}
	t, err := ts.admin.CreateTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        trillian.TreeType_LOG,
		DisplayName:     s.Name,
		Description:     "ctstage shard, " + tag,
		MaxRootDuration: durationpb.New(sthMaxAge),
	}})
	if err != nil {
		return nil, fmt.Errorf("couldn't create the tree of shard %s: %w", s.Name, err)
	}
	if err := initLog(ctx, ts, t); err != nil {
		return nil, err
	}
	marker := fmt.Sprintf("tree %d\n", t.TreeId)
	if err := keyfile.WriteFileAtomic(markerPath(dataDir, s.Name), []byte(marker), 0o600); err != nil {
		return nil, err
	}
	return t, nil
}

// initLog initialises a tree that has no root yet: a new tree, or one whose
// creation was interrupted before its first root was written.
func initLog(ctx context.Context, ts *trillianServer, t *trillian.Tree) error {
	_, err := ts.log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: t.TreeId})
	if status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.NotFound {
		return err
	}
	if err := client.InitLog(ctx, t, ts.log); err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("couldn't initialise tree %d: %w", t.TreeId, err)
	}
	return nil
}

func updateMaxRootDuration(ctx context.Context, ts *trillianServer, t *trillian.Tree, d time.Duration) error {
	if t.MaxRootDuration.AsDuration() == d {
		return nil
	}
	t.MaxRootDuration = durationpb.New(d)
	_, err := ts.admin.UpdateTree(ctx, &trillian.UpdateTreeRequest{
		Tree:       t,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"max_root_duration"}},
	})
	if err != nil {
		return fmt.Errorf("couldn't update the STH age of tree %d: %w", t.TreeId, err)
	}
	return nil
}

// newShard provisions one shard and sets up its ctfe instance.
func newShard(ctx context.Context, ts *trillianServer, s ShardOf, cfg Config, dataDir string, roots []string, mf monitoring.MetricFactory) (*shard, error) {
	key, _, err := loadShardKey(dataDir, s.Name)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("shard %s: couldn't encode public key: %w", s.Name, err)
	}
	tree, err := findOrCreateTree(ctx, ts, s, pubDER, dataDir, cfg.STHMaxAge)
	if err != nil {
		return nil, err
	}
	inst, err := newInstance(ctx, ts, s, tree.TreeId, key, pubDER, cfg, roots, mf)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	return &shard{cfg: s, tree: tree, key: key, pubDER: pubDER, logID: sha256.Sum256(pubDER), instance: inst}, nil
}

func newInstance(ctx context.Context, ts *trillianServer, s ShardOf, treeID int64, key crypto.Signer, pubDER []byte, cfg Config, roots []string, mf monitoring.MetricFactory) (*ctfe.Instance, error) {
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode private key: %w", err)
	}
	privAny, err := anypb.New(&keyspb.PrivateKey{Der: privDER})
	if err != nil {
		return nil, err
	}
	lc := &configpb.LogConfig{
		LogId:            treeID,
		Prefix:           s.Name,
		RootsPemFile:     roots,
		PrivateKey:       privAny,
		PublicKey:        &keyspb.PublicKey{Der: pubDER},
		RejectExpired:    s.RejectExpired,
		ExtKeyUsages:     s.ExtKeyUsages,
		MaxMergeDelaySec: int32(s.MMD / time.Second),
	}
	if !s.NotAfterStart.IsZero() {
		lc.NotAfterStart = timestamppb.New(s.NotAfterStart)
		lc.NotAfterLimit = timestamppb.New(s.NotAfterLimit)
	}
	vc, err := ctfe.ValidateLogConfig(lc)
	if err != nil {
		return nil, fmt.Errorf("invalid log config: %w", err)
	}
	inst, err := ctfe.SetUpInstance(ctx, ctfe.InstanceOptions{
		Validated:     vc,
		Client:        ts.log,
		Deadline:      cfg.RequestTimeout,
		MetricFactory: mf,
		RequestLog:    quietRequestLog{},
		// A storage that cannot take writes answers Unavailable; ctfe maps
		// that to 503, and the front end adds Retry-After.
		MaskInternalErrors: true,
	})
	if err != nil {
		return nil, errors.Join(errors.New("couldn't set up ctfe"), err)
	}
	return inst, nil
}

// quietRequestLog is a ctfe.RequestLog that records nothing. ctfe's
// DefaultRequestLog logs at klog verbosity 9, which ctstage never enables,
// yet hex-encodes every submitted certificate and formats its names before
// klog drops the line: about 1.3% of the CPU of an add-pre-chain. ctstage
// logs requests itself (internal/logging).
type quietRequestLog struct{}

func (quietRequestLog) Start(ctx context.Context) context.Context           { return ctx }
func (quietRequestLog) LogPrefix(context.Context, string)                   {}
func (quietRequestLog) AddDERToChain(context.Context, []byte)               {}
func (quietRequestLog) AddCertToChain(context.Context, *ctx509.Certificate) {}
func (quietRequestLog) FirstAndSecond(context.Context, int64, int64)        {}
func (quietRequestLog) StartAndEnd(context.Context, int64, int64)           {}
func (quietRequestLog) LeafIndex(context.Context, int64)                    {}
func (quietRequestLog) TreeSize(context.Context, int64)                     {}
func (quietRequestLog) LeafHash(context.Context, []byte)                    {}
func (quietRequestLog) IssueSCT(context.Context, []byte)                    {}
func (quietRequestLog) Status(context.Context, int)                         {}
