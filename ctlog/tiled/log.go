// Package tiled is a Static CT API log (c2sp.org/static-ct-api v1.1.0) on
// Tessera's POSIX backend: RFC 6962 add-chain and add-pre-chain whose SCTs
// carry the leaf_index extension and are returned only once a published
// checkpoint covers the entry, and the read path (checkpoint, tiles, data
// tiles, issuers) served from the files Tessera writes.
//
// This is the first part of the tiled-logs work (docs/design.md): one log,
// tested with Sunlight's client. It is not yet in the default topology,
// the log list or the CA's submissions, and has no MySQL backend.
package tiled

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/ctonly"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/crypto/cryptobyte"

	"github.com/ctstage/ctstage/internal/keyfile"
)

// Options configure a Log.
type Options struct {
	// Origin is the submission prefix without scheme or trailing slash,
	// e.g. "127.0.0.1:6962/tiled/testflume2027h1": the checkpoint's first
	// line and its signature's key name.
	Origin string
	// Dir holds the tiles, the checkpoint and the issuers (Tessera's
	// POSIX layout, which is the monitoring URL layout), and Tessera's
	// own state under .state, which is never served.
	Dir string
	// Key is the log's ECDSA P-256 key.
	Key *ecdsa.PrivateKey
	// Roots are the accepted roots, DER.
	Roots [][]byte
	// NotAfterStart and NotAfterLimit bound the NotAfter of accepted
	// certificates, [start, limit); both zero takes any.
	NotAfterStart, NotAfterLimit time.Time
	// MaxBodyBytes bounds add-chain bodies. Default 2 MiB.
	MaxBodyBytes int64
	// Logger receives the log's messages. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock of SCTs and checkpoints. Default time.Now.
	Now func() time.Time
	// Name labels the log's metrics (shard=Name).
	Name string
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Log is one running tiled log.
type Log struct {
	opts     Options
	logID    [32]byte
	chains   *chainVerifier
	add      func(context.Context, *ctonly.Entry) tessera.IndexFuture
	reader   tessera.LogReader
	awaiter  *tessera.PublicationAwaiter
	shutdown func(context.Context) error
	cancel   context.CancelFunc
	metrics  *metrics
}

// New opens (or creates) the log in opts.Dir and starts its sequencer.
func New(ctx context.Context, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 2 << 20
	}
	spki, err := x509.MarshalPKIXPublicKey(opts.Key.Public())
	if err != nil {
		return nil, fmt.Errorf("couldn't encode the log's public key: %w", err)
	}
	chains, err := newChainVerifier(opts.Roots)
	if err != nil {
		return nil, err
	}
	signer, err := newCheckpointSigner(opts.Origin, opts.Key, opts.Now)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "issuer"), 0o755); err != nil {
		return nil, fmt.Errorf("couldn't create the log's directory: %w", err)
	}
	// The background tasks of the appender live until Close.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	driver, err := posix.New(bg, posix.Config{Path: opts.Dir})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("couldn't open the tiles in %s: %w", opts.Dir, err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(bg, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCTLayout().
		WithBatching(256, 50*time.Millisecond).
		WithCheckpointInterval(100*time.Millisecond).
		WithAntispam(1<<16, nil))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("couldn't start Tessera on %s: %w", opts.Dir, err)
	}
	l := &Log{
		opts: opts, logID: sha256.Sum256(spki), chains: chains,
		add: tessera.NewCertificateTransparencyAppender(appender), reader: reader,
		awaiter:  tessera.NewPublicationAwaiter(bg, reader.ReadCheckpoint, 10*time.Millisecond),
		shutdown: shutdown, cancel: cancel,
	}
	if l.metrics, err = l.newMetrics(opts.Registerer, opts.Name); err != nil {
		shutdown(ctx)
		cancel()
		return nil, fmt.Errorf("couldn't register the metrics: %w", err)
	}
	return l, nil
}

// Ready reports whether the log has a published checkpoint to serve.
func (l *Log) Ready(ctx context.Context) error {
	if _, err := l.reader.ReadCheckpoint(ctx); err != nil {
		return fmt.Errorf("no checkpoint: %w", err)
	}
	return nil
}

// LogID is the log's ID: the SHA-256 of its public key (RFC 6962 section 3.2).
func (l *Log) LogID() [32]byte { return l.logID }

// Close integrates and publishes what was added, then stops the log.
func (l *Log) Close(ctx context.Context) error {
	err := l.shutdown(ctx)
	l.cancel()
	return err
}

// ErrBadSubmission wraps every refusal of a submission that is the
// submitter's fault: the HTTP answer is 400 with its text.
var ErrBadSubmission = errors.New("bad submission")

// Add logs a chain (leaf first, DER) and returns the SCT once a published
// checkpoint covers the entry. A chain logged before gets the SCT it got
// then: the same index and timestamp.
func (l *Log) Add(ctx context.Context, chain [][]byte, precert bool) (*ct.SignedCertificateTimestamp, error) {
	v, err := l.chains.verify(chain, precert, l.opts.NotAfterStart, l.opts.NotAfterLimit)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSubmission, err)
	}
	for _, iss := range v.issuers {
		if err := l.storeIssuer(iss); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	e := v.entry(uint64(l.opts.Now().UnixMilli()))
	idx, _, err := l.awaiter.Await(ctx, l.add(ctx, e))
	if err != nil {
		if errors.Is(err, tessera.ErrPushback) {
			return nil, err
		}
		return nil, fmt.Errorf("couldn't sequence the entry: %w", err)
	}
	if idx.IsDup {
		ts, err := l.timestampAt(ctx, idx.Index)
		if err != nil {
			return nil, err
		}
		e.Timestamp = ts
	}
	sct, err := l.sct(e, idx.Index)
	if err == nil {
		l.metrics.sequencing.Observe(time.Since(start).Seconds())
	}
	return sct, err
}

// sct signs the SCT of entry e at index idx. Its digitally-signed input
// (RFC 6962 section 3.2) has the bytes of the entry's MerkleTreeLeaf:
// version v1 and leaf type timestamped_entry are the same bytes as SCT
// version v1 and signature type certificate_timestamp.
func (l *Log) sct(e *ctonly.Entry, idx uint64) (*ct.SignedCertificateTimestamp, error) {
	sig, err := signSHA256(l.opts.Key, e.MerkleTreeLeaf(idx))
	if err != nil {
		return nil, err
	}
	return &ct.SignedCertificateTimestamp{
		SCTVersion: ct.V1, LogID: ct.LogID{KeyID: l.logID}, Timestamp: e.Timestamp,
		Extensions: leafIndexExtension(idx),
		Signature: ct.DigitallySigned{
			Algorithm: tls.SignatureAndHashAlgorithm{Hash: tls.SHA256, Signature: tls.ECDSA},
			Signature: sig,
		},
	}, nil
}

// leafIndexExtension is the extensions field holding only leaf_index:
// type 0, length 5, the index as a 40-bit big-endian integer.
func leafIndexExtension(idx uint64) ct.CTExtensions {
	var b cryptobyte.Builder
	b.AddUint8(0)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(uint8(idx >> 32))
		b.AddUint32(uint32(idx))
	})
	out, _ := b.Bytes() // cannot fail
	return out
}

// storeIssuer writes an issuer at issuer/<hex sha256> before the entry
// that refers to it is sequenced.
func (l *Log) storeIssuer(der []byte) error {
	path := filepath.Join(l.opts.Dir, "issuer", fmt.Sprintf("%x", sha256.Sum256(der)))
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := keyfile.WriteFileAtomic(path, der, 0o644); err != nil {
		return fmt.Errorf("couldn't store an issuer: %w", err)
	}
	return nil
}

// timestampAt reads the timestamp of entry idx from its data tile.
func (l *Log) timestampAt(ctx context.Context, idx uint64) (uint64, error) {
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return 0, fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	size, err := checkpointSize(cp, l.opts.Origin)
	if err != nil {
		return 0, err
	}
	w := uint8(0)
	if idx/256 == size/256 {
		w = uint8(size % 256)
	}
	bundle, err := l.reader.ReadEntryBundle(ctx, idx/256, w)
	if err != nil {
		return 0, fmt.Errorf("couldn't read the data tile of entry %d: %w", idx, err)
	}
	ts, err := bundleTimestamps(bundle)
	if err != nil {
		return 0, err
	}
	if int(idx%256) >= len(ts) {
		return 0, fmt.Errorf("data tile of entry %d holds %d entries", idx, len(ts))
	}
	return ts[idx%256], nil
}

// addChainResponse is RFC 6962 section 4.1's answer.
type addChainResponse struct {
	SCTVersion ct.Version `json:"sct_version"`
	ID         []byte     `json:"id"`
	Timestamp  uint64     `json:"timestamp"`
	Extensions []byte     `json:"extensions"`
	Signature  []byte     `json:"signature"`
}

func marshalSCT(sct *ct.SignedCertificateTimestamp) ([]byte, error) {
	sig, err := tls.Marshal(sct.Signature)
	if err != nil {
		return nil, err
	}
	return json.Marshal(addChainResponse{SCTVersion: sct.SCTVersion, ID: sct.LogID.KeyID[:],
		Timestamp: sct.Timestamp, Extensions: sct.Extensions, Signature: sig})
}
