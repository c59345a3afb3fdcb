// Package tiled is a Static CT API log (c2sp.org/static-ct-api v1.1.0) on
// Tessera: RFC 6962 add-chain and add-pre-chain whose SCTs carry the
// leaf_index extension and are returned only once a published checkpoint
// covers the entry, and the read path (checkpoint, tiles, data tiles,
// issuers) served through Tessera's log reader.
//
// A log lives on Tessera's POSIX backend in a directory, or on its MySQL
// backend in a database of its own. Beside Tessera's data each keeps the
// log's identity (origin and log ID, which bind the tiles to the key), the
// issuers, and a persistent antispam index (antispam.go) so that a
// duplicate gets its original SCT across restarts.
package tiled

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/ctonly"
	"golang.org/x/crypto/cryptobyte"
)

// Options configure a Log.
type Options struct {
	// Origin is the submission prefix without scheme or trailing slash,
	// e.g. "127.0.0.1:6962/testflumetiles2027h1": the checkpoint's first
	// line and its signature's key name. It is recorded when the log is
	// created; a log opened again keeps the origin it was created with
	// (see Log.Origin).
	Origin string
	// Dir holds the log on Tessera's POSIX backend: the tiles, the
	// checkpoint and the issuers (the monitoring URL layout), and beside
	// them the identity files, the antispam index (.antispam.db) and
	// Tessera's own state (.state), which are never served. Unused when
	// DB is set.
	Dir string
	// DB, when set, is a MySQL database of the log's own that holds it on
	// Tessera's MySQL backend, with the identity, issuers and antispam
	// index in tables beside Tessera's. The caller closes it after Close.
	DB *sql.DB
	// Existing says the caller knows this log was created before: a
	// storage with no log in it is then an error (the storage was reset
	// or changed), not a new log.
	Existing bool
	// Key is the log's ECDSA P-256 key.
	Key *ecdsa.PrivateKey
	// Roots are the accepted roots, DER.
	Roots [][]byte
	// NotAfterStart and NotAfterLimit bound the NotAfter of accepted
	// certificates, [start, limit); both zero takes any.
	NotAfterStart, NotAfterLimit time.Time
	// RepublishInterval is how old the checkpoint of a log that does not
	// grow may get before it is signed afresh, as ctfe re-signs an idle
	// tree's STH and Sunlight signs a checkpoint every period: monitors
	// tell a quiet log from a frozen one by it. 0 never re-signs; less
	// than the checkpoint interval is the interval. Tessera's MySQL
	// backend re-signs every interval whatever this says.
	RepublishInterval time.Duration
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
	// Unavailable, when set, says whether an error of the log's storage is
	// an outage of it (see storage.Backend.Unavailable): such a request is
	// answered 503 with Retry-After, which clients retry, instead of 500.
	Unavailable func(ctx context.Context, err error) bool
}

// Checkpoint intervals: how often a new checkpoint is published, which
// bounds the SCT latency; Tessera refuses less than 100ms on POSIX and 1s
// on MySQL. The pacer (pace.go) lines the batches up with the interval.
const (
	posixCheckpointInterval = 100 * time.Millisecond
	// batchMaxAge is how long an entry may wait for others before its
	// batch is sequenced; a batch holds at most batchMaxSize. A full
	// batch is sequenced at once, before the interval is out (pace.go):
	// were the last batch of a hand-off full, Tessera would skip its
	// checkpoint and wait a whole interval more (256 clients got 1,557
	// SCTs/s with batches of 256, 2,380 with 4,096; docs/benchmarks.md).
	batchMaxAge             = 10 * time.Millisecond
	batchMaxSize            = 4096
	mysqlCheckpointInterval = time.Second
)

// Log is one running tiled log.
type Log struct {
	opts     Options
	logID    [32]byte
	store    store
	chains   *chainVerifier
	add      func(context.Context, *ctonly.Entry) tessera.IndexFuture
	reader   tessera.LogReader
	awaiter  *awaiter
	pacer    *pacer
	shutdown func(context.Context) error
	cancel   context.CancelFunc
	metrics  *metrics
	// published caches the size of the newest checkpoint read, which only
	// grows: a tile within it needs no new read.
	published atomic.Uint64
	// stored holds the fingerprints of the issuers stored, which need no
	// second write.
	stored sync.Map
	// faults are the hooks of injected faults (faults.go), forks the
	// split view's (fork.go).
	faults faultState
	forks  forkState
	// waits are the submissions waiting to be sequenced and published,
	// by when they began (Stalled).
	waits waitSet
	// grew is when the published size last grew (Unix nanoseconds).
	grew atomic.Int64
}

// New opens (or creates) the log in opts.Dir or opts.DB and starts its
// sequencer. A log is bound to its storage: one whose tiles were made with
// another key, or whose tiles vanished, is refused rather than forked.
func New(ctx context.Context, opts Options) (l *Log, err error) {
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
	logID := sha256.Sum256(spki)
	chains, err := newChainVerifier(opts.Roots)
	if err != nil {
		return nil, err
	}
	var st store
	interval := posixCheckpointInterval
	if opts.DB != nil {
		st, err = openMySQLStore(ctx, opts.DB, &opts)
		interval = mysqlCheckpointInterval
	} else {
		st, err = openDirStore(ctx, opts.Dir, &opts)
	}
	if err != nil {
		return nil, err
	}
	// The background tasks of the appender live until Close. What New
	// started is stopped again, in reverse, when it fails.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var shutdown func(context.Context) error
	defer func() {
		if err == nil {
			return
		}
		if shutdown != nil {
			shutdown(ctx)
		}
		cancel()
		st.close()
	}()
	if opts.Origin, err = bindIdentity(ctx, st, opts.Origin, logID, opts.Existing); err != nil {
		return nil, err
	}
	signer, err := newCheckpointSigner(opts.Origin, opts.Key, opts.Now)
	if err != nil {
		return nil, err
	}
	signed := make(chan struct{}, 1)
	signer.signed = signed
	driver, err := st.driver(bg)
	if err == nil {
		driver, err = quiet(driver)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't open Tessera's storage: %w", err)
	}
	as := st.antispam()
	ao := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCTLayout().
		WithBatching(batchMaxSize, batchMaxAge).
		WithCheckpointInterval(interval).
		WithAntispam(1<<16, as)
	if r := opts.RepublishInterval; r > 0 {
		ao.WithCheckpointRepublishInterval(max(r, interval))
	}
	appender, shutdown, reader, err := tessera.NewAppender(bg, driver, ao)
	if err != nil {
		return nil, fmt.Errorf("couldn't start Tessera: %w", err)
	}
	// Index what the last run integrated before taking submissions, so
	// that a duplicate of it gets its original SCT.
	if _, err := as.f.catchUp(ctx, reader); err != nil {
		return nil, fmt.Errorf("couldn't bring the antispam index up to date: %w", err)
	}
	l = &Log{
		opts: opts, logID: logID, store: st, chains: chains,
		add: tessera.NewCertificateTransparencyAppender(appender), reader: unquiet(reader),
		shutdown: shutdown, cancel: cancel,
	}
	if l.metrics, err = l.newMetrics(opts.Registerer, opts.Name); err != nil {
		return nil, fmt.Errorf("couldn't register the metrics: %w", err)
	}
	l.pacer = newPacer(interval, batchMaxAge, func() (time.Time, error) {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		return st.published(ctx)
	})
	l.awaiter = newAwaiter(l, signed)
	go l.awaiter.run(bg)
	return l, nil
}

// bindIdentity checks the log ID stored with the log against logID, and
// returns the stored origin; for a new log it records newOrigin.
func bindIdentity(ctx context.Context, st store, newOrigin string, logID [32]byte, existing bool) (string, error) {
	origin, id, err := st.identity(ctx)
	switch {
	case errors.Is(err, fs.ErrNotExist) && existing:
		return "", errors.New("this log was created before, but its storage holds no log (was the storage reset or changed?); refusing to start a new tree under the same key")
	case errors.Is(err, fs.ErrNotExist):
		return newOrigin, st.create(ctx, newOrigin, logID)
	case err != nil:
		return "", err
	case id != fmt.Sprintf("%x", logID):
		return "", fmt.Errorf("the log's tiles were made with another key (log ID %s); refusing to fork the log", id)
	}
	switch why, err := st.vanished(ctx); {
	case err != nil:
		return "", err
	case why != "":
		return "", errors.New(why + " while its key remained; refusing to start a new tree under the same key")
	}
	return origin, nil
}

// Origin is the log's origin, fixed when it was created.
func (l *Log) Origin() string { return l.opts.Origin }

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
	return errors.Join(err, l.store.close())
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
	for i, iss := range v.issuers {
		if _, ok := l.stored.Load(v.fingerprint[i]); ok {
			continue
		}
		if err := l.store.putIssuer(ctx, v.fingerprint[i], iss); err != nil {
			return nil, fmt.Errorf("couldn't store an issuer: %w", err)
		}
		l.stored.Store(v.fingerprint[i], true)
	}
	start := time.Now()
	defer l.waits.add(start)()
	if !l.holding() {
		if err := l.pacer.wait(ctx); err != nil {
			return nil, fmt.Errorf("couldn't sequence the entry: %w", err)
		}
	}
	e := v.entry(uint64(l.opts.Now().Add(l.skew()).UnixMilli()))
	idx, err := l.add(ctx, e)()
	if err == nil && !l.holding() {
		// Under a hold (no_publish) the SCT comes once the entry is
		// sequenced: the checkpoint readers see does not advance.
		err = l.awaiter.await(ctx, idx.Index)
	}
	if err != nil {
		if errors.Is(err, tessera.ErrPushback) {
			return nil, err
		}
		return nil, fmt.Errorf("couldn't sequence the entry: %w", err)
	}
	if idx.IsDup {
		if l.holding() {
			// The original may not be published yet: wait for it.
			if err := l.awaiter.await(ctx, idx.Index); err != nil {
				return nil, fmt.Errorf("couldn't sequence the entry: %w", err)
			}
		}
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

// timestampAt reads the timestamp of entry idx from its data tile.
func (l *Log) timestampAt(ctx context.Context, idx uint64) (uint64, error) {
	size, err := l.publishedSize(ctx, idx+1)
	if err != nil {
		return 0, err
	}
	if idx >= size {
		return 0, fmt.Errorf("entry %d is beyond the published tree of size %d", idx, size)
	}
	bundle, err := l.readTile(ctx, dataLevel, idx/entriesPerTile, widthAt(dataLevel, idx/entriesPerTile, size))
	if err != nil {
		return 0, fmt.Errorf("couldn't read the data tile of entry %d: %w", idx, err)
	}
	ts, _, err := bundleEntries(bundle)
	if err != nil {
		return 0, err
	}
	return ts[idx%entriesPerTile], nil
}

// publishedSize is the size of the published checkpoint, read again only
// when the size known is below need.
func (l *Log) publishedSize(ctx context.Context, need uint64) (uint64, error) {
	if n := l.published.Load(); n >= need {
		return n, nil
	}
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return 0, fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	return l.notePublished(cp)
}

// notePublished records the size of a checkpoint just read.
func (l *Log) notePublished(cp []byte) (uint64, error) {
	size, err := checkpointSize(cp, l.opts.Origin)
	if err != nil {
		return 0, err
	}
	if size > l.published.Load() {
		now := time.Now()
		l.faults.remember(cp, size, now)
		l.grew.Store(now.UnixNano())
	}
	for {
		old := l.published.Load()
		if size <= old || l.published.CompareAndSwap(old, size) {
			return size, nil
		}
	}
}

// dataLevel stands for the data tiles in readTile.
const dataLevel = ^uint64(0)

// hashLevel is the level of the hashes a tile of level covers: 0 for the
// data tiles, whose entries are the level-0 leaves.
func hashLevel(level uint64) uint64 {
	if level == dataLevel {
		return 0
	}
	return level
}

// widthAt is how many entries of tile n of level a tree of size holds:
// at most a full tile, 0 when none.
func widthAt(level, n, size uint64) uint64 {
	nodes := size >> (8 * hashLevel(level))
	if nodes <= n*entriesPerTile {
		return 0
	}
	return min(nodes-n*entriesPerTile, entriesPerTile)
}

// readTile reads tile n of level (or the data tile, for dataLevel) with
// exactly width entries. Tessera's backends may hand back a wider tile
// than asked for (its MySQL backend keeps one row per tile, which grows);
// the spec's tile of width W holds exactly W entries, so it is cut.
func (l *Log) readTile(ctx context.Context, level, n, width uint64) ([]byte, error) {
	b, err := l.readStored(ctx, level, n, width)
	if errors.Is(err, fs.ErrNotExist) && width < entriesPerTile {
		// Tessera writes a partial tile only at the widths its batches
		// end at: a width between two of them is cut from the published
		// one, when that is wider.
		if w := widthAt(level, n, l.published.Load()); w > width {
			b, err = l.readStored(ctx, level, n, w)
		}
	}
	if err != nil {
		return nil, err
	}
	if level == dataLevel {
		_, ends, err := bundleEntries(b)
		if err != nil {
			return nil, err
		}
		if uint64(len(ends)) < width {
			return nil, fmt.Errorf("data tile %d holds %d entries, want %d", n, len(ends), width)
		}
		return b[:ends[width-1]], nil
	}
	if uint64(len(b)) < width*sha256.Size {
		return nil, fmt.Errorf("tile %d/%d holds %d bytes, want %d", level, n, len(b), width*sha256.Size)
	}
	return b[:width*sha256.Size], nil
}

// readStored reads the tile as Tessera stored it, at least width wide.
func (l *Log) readStored(ctx context.Context, level, n, width uint64) ([]byte, error) {
	p := uint8(0)
	if width < entriesPerTile {
		p = uint8(width)
	}
	if level == dataLevel {
		return l.reader.ReadEntryBundle(ctx, n, p)
	}
	return l.reader.ReadTile(ctx, level, n, p)
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

// BulkAppend sequences e as it stands, with no chain verification and no
// SCT, stores the issuers (DER) it names the first time they come, and
// returns its index once sequenced, without waiting for a checkpoint. It
// is for benchmarks that grow a log to a large size fast
// (internal/scalebench); the log's HTTP API never calls it.
func (l *Log) BulkAppend(ctx context.Context, e *ctonly.Entry, issuers [][]byte) (uint64, error) {
	for _, iss := range issuers {
		fp := sha256.Sum256(iss)
		if _, ok := l.stored.Load(fp); ok {
			continue
		}
		if err := l.store.putIssuer(ctx, fp, iss); err != nil {
			return 0, fmt.Errorf("couldn't store an issuer: %w", err)
		}
		l.stored.Store(fp, true)
	}
	idx, err := l.add(ctx, e)()
	return idx.Index, err
}
