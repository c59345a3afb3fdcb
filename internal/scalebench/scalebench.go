// Package scalebench measures how a ctstage log behaves as its tree grows: it
// runs one ctlog shard in-process on a storage backend, served over loopback
// HTTP, grows the shard's tree to each of a list of sizes by bulk loading,
// and at each size measures, in this order:
//
//   - bytes on disk per entry (SQLite: database file + WAL; MySQL: data and
//     index length of the database's tables);
//   - get-proof-by-hash latency for random existing leaves against the
//     current STH, every proof verified against the STH's root hash;
//   - get-entries throughput, reading sequential ranges from random starts
//     and following partial answers;
//   - add-pre-chain throughput with [loadgen.Run] (the tree grows by what
//     it accepts).
//
// Bulk loading queues precertificate entries straight into Trillian's
// LogStorage (QueueLeaves, in large batches), bypassing ctfe's chain
// validation and SCT signing but not the real sequencer, which integrates
// them with a raised batch size. The entries are what ctfe would store for
// add-pre-chain: a MerkleTreeLeaf of a distinct, validly signed
// precertificate of realistic size (nine DNS names, AIA, CRL DP, policy, an
// RSA 2048 subject key) under the load-test CA the log accepts, with the
// PrecertChainEntry as extra data; see leafGen.
package scalebench

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/google/trillian"
	tstorage "github.com/google/trillian/storage"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/internal/config"
	"github.com/ctstage/ctstage/internal/loadgen"
	"github.com/ctstage/ctstage/storage"
)

// Config says where to run and what to measure. Zero fields take the
// defaults named in their comments.
type Config struct {
	// DataDir receives everything: the SQLite database, the shard's key and
	// the load-test CA. It must be empty or absent, so that every run starts
	// from an empty tree. Required.
	DataDir string
	// Storage is "sqlite" (default) or "mysql://USER:PASS@HOST:PORT/DB";
	// a missing MySQL database is created, and it must not hold a tree
	// named "scale" already.
	Storage string
	// Sizes are the tree sizes at which to measure, ascending. Required.
	Sizes []uint64

	// AddClients are loadgen's concurrent submitters. Default 64.
	AddClients int
	// AddDuration bounds each add-pre-chain measurement. Default 10s.
	AddDuration time.Duration
	// AddMax is how many precertificates loadgen prepares for each add
	// measurement, an upper bound on the submissions. Default 40000.
	AddMax int

	// ProofSamples is how many random leaves get-proof-by-hash is asked
	// about at each size. Default 2000.
	ProofSamples int
	// ProofClients are concurrent proof requesters. Default 4.
	ProofClients int

	// EntriesDuration is how long get-entries is read at each size.
	// Default 10s.
	EntriesDuration time.Duration
	// EntriesClients are concurrent readers. Default 4.
	EntriesClients int
	// EntriesReader is ReaderCTGo (default) or ReaderRaw.
	EntriesReader string
	// EntriesRun is the length of each sequential range a reader fetches
	// from a random start, in as many requests as the log's partial answers
	// need. Default 10000 (or the tree size, if smaller).
	EntriesRun int

	// BulkBatch is how many leaves one QueueLeaves call of the bulk load
	// carries. Default 4096.
	BulkBatch int
	// BulkBacklog bounds the leaves queued but not yet integrated during
	// the bulk load. Default 65536.
	BulkBacklog int
	// Monitor runs `ctstage monitor`'s catch-up (package monitor) on the
	// whole tree at each size, after get-entries.
	Monitor bool
	// Certspotter, when set, is the path of a certspotter binary run on
	// the whole tree at each size after the monitor, for comparison.
	Certspotter string
	// Stock, when set, is a directory holding the stock stack's binaries
	// (Trillian's trillian_log_server and ct-go's ct_server). At each size
	// they are started on the shard's own MySQL database and get-entries
	// is measured against them right after ctstage's, with the same
	// readers. MySQL storage only.
	Stock string
	// SequencerBatchSize is the shard's sequencer batch size (ctlog's
	// sequencer_batch_size) for the whole run. Default 16384.
	SequencerBatchSize int

	// ProfileDir, when set, receives a CPU profile of each phase
	// (<phase>-<tree size>.pprof).
	ProfileDir string

	// Logger receives progress messages. Default: discard.
	Logger *slog.Logger
}

// ShardName is the name of the one shard the benchmark runs.
const ShardName = "scale"

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Storage == "" {
		c.Storage = "sqlite"
	}
	def(&c.AddClients, 64)
	defD(&c.AddDuration, 10*time.Second)
	def(&c.AddMax, 40000)
	def(&c.ProofSamples, 2000)
	def(&c.ProofClients, 4)
	defD(&c.EntriesDuration, 10*time.Second)
	def(&c.EntriesClients, 4)
	def(&c.EntriesRun, 10000)
	if c.EntriesReader == "" {
		c.EntriesReader = ReaderCTGo
	}
	def(&c.BulkBatch, 4096)
	def(&c.BulkBacklog, 65536)
	def(&c.SequencerBatchSize, 16384)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrConfig reports a Config that Run cannot use.
var ErrConfig = errors.New("invalid scale benchmark config")

func (c Config) check() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: DataDir is required", ErrConfig)
	}
	if len(c.Sizes) == 0 || c.Sizes[0] == 0 || !slices.IsSorted(c.Sizes) {
		return fmt.Errorf("%w: Sizes must be positive and ascending", ErrConfig)
	}
	des, err := os.ReadDir(c.DataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(des) > 0 {
		return fmt.Errorf("%w: %s is not empty; every run starts from an empty tree", ErrConfig, c.DataDir)
	}
	if r := c.EntriesReader; r != "" && r != ReaderCTGo && r != ReaderRaw {
		return fmt.Errorf("%w: get-entries reader %q: want %q or %q", ErrConfig, r, ReaderCTGo, ReaderRaw)
	}
	if c.Stock != "" && !strings.HasPrefix(c.Storage, "mysql://") {
		return fmt.Errorf("%w: the stock stack reads MySQL only; give a mysql:// storage", ErrConfig)
	}
	return nil
}

// bench is one run: the log, its storage and the clients.
type bench struct {
	cfg      Config
	log      *slog.Logger
	store    *storage.Backend
	srv      *ctlog.Server
	tree     *trillian.Tree
	logURL   string
	pubKey   []byte
	lc       *client.LogClient
	hc       *http.Client
	gen      *leafGen
	issuer   *x509.Certificate
	chain    []*x509.Certificate
	notAfter time.Time
	next     uint64 // index of the next bulk entry, for its name
	stock    *stockStack
}

// Run grows the tree to each of cfg.Sizes and measures there. It returns
// the report so far together with an error when a step fails.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	caDir := filepath.Join(cfg.DataDir, "loadtest-ca")
	issuer, signer, chain, err := makeCA(caDir)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(cfg.Storage, "mysql://") {
		if err := createMySQLDatabase(ctx, cfg.Storage); err != nil {
			return nil, err
		}
	}
	store, err := storage.Open(ctx, cfg.Storage, cfg.DataDir, nil)
	if err != nil {
		return nil, err
	}
	defer store.Close()

	lcfg, err := config.Parse(fmt.Appendf(nil, `
logs:
  sequencer_batch_size: %d
  operators:
  - name: ctstage scale benchmark
    shards:
    - name: %s
`, cfg.SequencerBatchSize, ShardName), time.Now())
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	baseURL := "http://" + lis.Addr().String()
	srv, err := ctlog.New(ctx, ctlog.Options{
		DataDir:      cfg.DataDir,
		Config:       lcfg.Logs,
		LogStorage:   store.Log,
		AdminStorage: store.Admin,
		RootFiles:    []string{filepath.Join(caDir, loadgen.CARootFile)},
		BaseURL:      baseURL,
		Logger:       cfg.Logger.With("component", "ctlog"),
		Registerer:   prometheus.NewRegistry(),
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var served sync.WaitGroup
	served.Go(func() { hs.Serve(lis) })
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	var ran sync.WaitGroup
	ran.Go(func() { srv.Run(runCtx) })
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		served.Wait()
		stopRun()
		ran.Wait()
	}()

	b := &bench{cfg: cfg, log: cfg.Logger, store: store, srv: srv, issuer: issuer, chain: chain,
		notAfter: time.Now().AddDate(0, 0, 90).UTC().Truncate(time.Second)}
	if err := b.setup(ctx, baseURL); err != nil {
		return nil, err
	}
	defer func() {
		if b.stock != nil {
			b.stock.stop()
		}
	}()
	if b.gen, err = newLeafGen(issuer, signer, chain, b.notAfter); err != nil {
		return nil, err
	}
	rep := newReport(cfg)
	for _, size := range cfg.Sizes {
		bl, err := b.grow(ctx, size)
		if bl != nil {
			rep.Bulk = append(rep.Bulk, *bl)
		}
		if err != nil {
			return rep, fmt.Errorf("bulk load to %d: %w", size, err)
		}
		cp, err := b.measure(ctx, signer)
		if cp != nil {
			rep.Sizes = append(rep.Sizes, *cp)
		}
		if err != nil {
			return rep, fmt.Errorf("measuring at %d: %w", size, err)
		}
	}
	return rep, nil
}

// newHTTPClient is the benchmark's client: connections kept for 64
// concurrent requests to one host.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// makeCA writes a new load-test CA into dir and loads it.
func makeCA(dir string) (*x509.Certificate, crypto.Signer, []*x509.Certificate, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, nil, err
	}
	if err := loadgen.WriteCA(dir, time.Now()); err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't make the load-test CA: %w", err)
	}
	return loadgen.LoadCA(dir)
}

// setup finds the shard's tree, URL and key, and waits for it to answer.
func (b *bench) setup(ctx context.Context, baseURL string) error {
	trees, err := tstorage.ListTrees(ctx, b.store.Admin, false)
	if err != nil {
		return err
	}
	for _, t := range trees {
		if t.DisplayName == ShardName {
			b.tree = t
		}
	}
	if b.tree == nil {
		return errors.New("the shard's tree is not in storage")
	}
	ll := b.srv.LogList()
	if len(ll.Operators) != 1 || len(ll.Operators[0].Logs) != 1 {
		return errors.New("the log list does not hold exactly one log")
	}
	l := ll.Operators[0].Logs[0]
	b.logURL, b.pubKey = l.URL, l.Key
	if !strings.HasPrefix(b.logURL, baseURL) {
		return fmt.Errorf("log URL %s is not under %s", b.logURL, baseURL)
	}
	b.hc = newHTTPClient()
	if b.lc, err = b.newClient(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := b.lc.GetSTH(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the log does not answer get-sth: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newClient is a ct-go client of the shard that checks STH signatures.
func (b *bench) newClient() (*client.LogClient, error) {
	return client.New(b.logURL, b.hc, jsonclient.Options{PublicKeyDER: b.pubKey, UserAgent: "ctstage-bench-scale"})
}

// sth is the shard's latest STH, its signature verified.
func (b *bench) sth(ctx context.Context) (*ct.SignedTreeHead, error) {
	return b.lc.GetSTH(ctx)
}

// grow bulk-loads the tree to size; nil when it is that large already.
func (b *bench) grow(ctx context.Context, target uint64) (*BulkLoad, error) {
	sth, err := b.sth(ctx)
	if err != nil {
		return nil, err
	}
	start := sth.TreeSize
	if start >= target {
		return nil, nil
	}
	n := target - start
	bl := &BulkLoad{From: start, To: target, LoadStart: loadAvg()}
	defer b.profile("bulk", target)()
	b.log.Info("bulk load", "from", start, "to", target)
	t0 := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) {
		if err != nil {
			cancel(err)
		}
	}

	var size atomic.Uint64 // latest observed tree size
	size.Store(start)
	var polled sync.WaitGroup
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled.Go(func() {
		lastLog := time.Now()
		for pollCtx.Err() == nil {
			if sth, err := b.sth(pollCtx); err == nil {
				size.Store(sth.TreeSize)
			}
			if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				b.log.Info("bulk loading", "tree_size", size.Load(), "to", target, "loadavg", loadAvg())
			}
			sleep(pollCtx, 50*time.Millisecond)
		}
	})
	defer func() { stopPoll(); polled.Wait() }()

	batches := make(chan []*trillian.LogLeaf, 4)
	var gens sync.WaitGroup
	var offset atomic.Uint64
	batch := uint64(b.cfg.BulkBatch)
	var leafBytes, extraBytes, sampled atomic.Int64
	for range max(1, numWorkers()) {
		gens.Go(func() {
			for {
				off := offset.Add(batch) - batch
				if off >= n || ctx.Err() != nil {
					return
				}
				cnt := min(batch, n-off)
				leaves := make([]*trillian.LogLeaf, cnt)
				ts := uint64(time.Now().UnixMilli())
				for j := range cnt {
					e, err := b.gen.make(b.next+off+j, ts)
					if err != nil {
						fail(err)
						return
					}
					leaves[j] = e.leaf
					if off == 0 && j < 100 {
						sampled.Add(1)
						leafBytes.Add(int64(len(e.leaf.LeafValue)))
						extraBytes.Add(int64(len(e.leaf.ExtraData)))
					}
				}
				select {
				case batches <- leaves:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() { gens.Wait(); close(batches) }()

	var queued atomic.Uint64
	queued.Store(start)
	var writers sync.WaitGroup
	for range 2 {
		writers.Go(func() {
			for leaves := range batches {
				for queued.Load() > size.Load()+uint64(b.cfg.BulkBacklog) && ctx.Err() == nil {
					sleep(ctx, 10*time.Millisecond)
				}
				if ctx.Err() != nil {
					continue // drain
				}
				queued.Add(uint64(len(leaves)))
				fail(b.queue(ctx, leaves))
			}
		})
	}
	writers.Wait()
	if err := context.Cause(ctx); err != nil {
		return bl, err
	}
	bl.Queued = Millis(time.Since(t0))
	// Wait for the sequencer, failing when it makes no progress for a minute.
	last, lastChange := size.Load(), time.Now()
	for size.Load() < target {
		if s := size.Load(); s != last {
			last, lastChange = s, time.Now()
		}
		if time.Since(lastChange) > time.Minute {
			return bl, fmt.Errorf("the tree stopped growing at %d", last)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return bl, err
		}
	}
	b.next += n
	bl.Elapsed = Millis(time.Since(t0))
	bl.PerSec = float64(n) / time.Since(t0).Seconds()
	bl.LoadEnd = loadAvg()
	bl.LeafBytes = float64(leafBytes.Load()) / float64(max(sampled.Load(), 1))
	bl.ExtraBytes = float64(extraBytes.Load()) / float64(max(sampled.Load(), 1))
	b.log.Info("bulk loaded", "to", size.Load(), "took", time.Since(t0).Round(time.Millisecond), "per_sec", int(bl.PerSec))
	return bl, nil
}

// queue queues leaves through the LogStorage, refusing any that are not new.
func (b *bench) queue(ctx context.Context, leaves []*trillian.LogLeaf) error {
	rsp, err := b.store.Log.QueueLeaves(ctx, b.tree, leaves, time.Now())
	if err != nil {
		return fmt.Errorf("QueueLeaves: %w", err)
	}
	if len(rsp) != len(leaves) {
		return fmt.Errorf("QueueLeaves answered %d leaves for %d", len(rsp), len(leaves))
	}
	for _, q := range rsp {
		if s := q.GetStatus(); s != nil && codes.Code(s.Code) != codes.OK {
			return fmt.Errorf("QueueLeaves: a bulk leaf was not queued: %v", status.FromProto(s).Err())
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// profile starts a CPU profile of a phase when Config.ProfileDir is set,
// and returns the function that stops it.
func (b *bench) profile(phase string, size uint64) func() {
	if b.cfg.ProfileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(b.cfg.ProfileDir, fmt.Sprintf("%s-%d.pprof", phase, size)))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		b.log.Warn("no CPU profile", "phase", phase, "err", err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// loadAvg is the first three fields of /proc/loadavg, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
