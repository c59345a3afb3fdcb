package ctlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/certificate-transparency-go/trillian/ctfe"
	"github.com/google/trillian"
	tstorage "github.com/google/trillian/storage"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/election2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ctstage/ctstage/ctlog/faults"
)

// Options configure a Server.
type Options struct {
	// DataDir holds the shards' states (DataDir/logs/<shard>.state.json)
	// and, unless KeysDir is set, their keys.
	DataDir string
	// KeysDir holds the shards' keys (KeysDir/logs/<shard>.key, mode
	// 0600) and the markers binding them to their trees: every process
	// of a scale-out deployment reads the same ones. Default DataDir.
	KeysDir string
	// Role is what this process does with the shards; zero is
	// RoleFrontend|RoleSequencer.
	Role Role
	// Election, when set, elects one sequencer per tree among the
	// processes with RoleSequencer (Trillian's election2); nil
	// sequences every tree in this process.
	Election election2.Factory
	// Lock, when set, serializes the provisioning of keys and trees
	// among the processes on one storage (see storage.Backend.Lock).
	Lock func(ctx context.Context, purpose string) (unlock func(), err error)
	// Config is the topology and tuning; see DefaultConfig.
	Config Config
	// LogStorage and AdminStorage back the Trillian trees (see package
	// storage). The caller closes them after Close.
	LogStorage   tstorage.LogStorage
	AdminStorage tstorage.AdminStorage
	// TiledDB, when set, opens the MySQL database of a tiled shard (see
	// storage.Backend.Database); the shard closes it. When nil, tiled
	// shards keep their tiles under DataDir/tiled/<shard>.
	TiledDB func(ctx context.Context, shard string) (*sql.DB, error)
	// RootFiles are PEM files of the roots every shard accepts: the staging
	// roots and any --extra-roots.
	RootFiles []string
	// BaseURL is where the logs are reached, e.g. "http://127.0.0.1:6962";
	// each shard's URL in the log list is BaseURL/<shard>/.
	BaseURL string
	// Logger receives the logs' structured logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics (ctstage_log_*, Trillian's trillian_*,
	// ctfe's ctfe_*); nil registers none.
	Registerer prometheus.Registerer
	// Unavailable, when set, says whether an error of the storage is an
	// outage of it (storage.Backend.Unavailable). Trillian's log server
	// then answers Unavailable, which ctfe turns into 503 (with the
	// front end's Retry-After), and tiled shards answer 503 too: writes
	// during a database outage are retried by clients, not failed.
	Unavailable func(ctx context.Context, err error) bool
}

// Role is a process's part in a deployment of several processes.
type Role uint8

const (
	// RoleFrontend serves the shards' HTTP APIs: the RFC 6962 handlers
	// (ctfe on Trillian's log server) and the tiled shards.
	RoleFrontend Role = 1 << iota
	// RoleSequencer integrates queued entries into the RFC 6962 trees and
	// signs their roots: Trillian's sequencer, behind Options.Election.
	RoleSequencer
)

func (r Role) has(x Role) bool { return r == 0 || r&x != 0 }

// Server runs the shards of one ctstage: Trillian in-process and one ctfe
// personality per shard.
type Server struct {
	opts     Options
	log      *slog.Logger
	trillian *trillianServer
	shards   []*shard
	tiled    []*tiledShard
	// fronts are every shard's state and faults, in config order.
	fronts  []*front
	byName  map[string]*front
	metrics *metrics
	hits    *prometheus.CounterVec

	listeners sync.Mutex
	onChange  []func()
	handler   http.Handler
	created   time.Time
	// runStart is when Run began, in Unix nanoseconds; 0 before.
	runStart atomic.Int64

	closeOnce sync.Once
}

// New starts Trillian on opts.Storage, finds or creates every shard's tree
// and key, and sets up the RFC 6962 handlers. Call Run to integrate entries
// and Close to stop.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if len(opts.RootFiles) == 0 {
		return nil, errors.New("ctlog: no accepted roots")
	}
	if opts.KeysDir == "" {
		opts.KeysDir = opts.DataDir
	}
	mf := metricFactory{reg: opts.Registerer, prefix: "trillian_"}
	ts, err := newTrillianServer(opts.LogStorage, opts.AdminStorage, mf, opts.Config, opts.Election, opts.Unavailable)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, trillian: ts, metrics: newMetrics(opts.Registerer), created: time.Now(),
		byName: map[string]*front{}, hits: faults.NewHits(opts.Registerer)}
	setCtfeGetEntries(maxGetEntries(opts.Config))
	if opts.Lock != nil {
		// One process at a time creates keys and trees, so that processes
		// starting together on an empty database agree on them.
		unlock, err := opts.Lock(ctx, "shards")
		if err != nil {
			s.Close()
			return nil, err
		}
		defer unlock()
	}
	var roots [][]byte
	for _, sc := range opts.Config.Shards() {
		if sc.Tiled() && !opts.Role.has(RoleFrontend) {
			continue // a tiled shard has no sequencer of its own to run
		}
		if sc.Tiled() {
			if roots == nil {
				if roots, err = rootsDER(opts.RootFiles); err != nil {
					s.Close()
					return nil, err
				}
			}
			tsh, err := newTiledShard(ctx, sc, &opts, roots)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.log.Info("tiled shard ready", "shard", sc.Name, "operator", sc.Operator, "origin", tsh.origin,
				"log_id", fmt.Sprintf("%x", tsh.logID), "not_after_start", sc.NotAfterStart, "not_after_limit", sc.NotAfterLimit)
			s.tiled = append(s.tiled, tsh)
			if err := s.addFront(sc, tsh.logID, tsh.created, nil, tsh); err != nil {
				s.Close()
				return nil, err
			}
			continue
		}
		sh, err := newShard(ctx, ts, sc, opts.Config, opts.KeysDir, opts.RootFiles, metricFactory{reg: opts.Registerer, prefix: "ctfe_"})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.metrics.info.WithLabelValues(sc.Name, strconv.FormatInt(sh.tree.TreeId, 10), sc.Operator).Set(1)
		s.log.Info("shard ready", "shard", sc.Name, "operator", sc.Operator, "tree_id", sh.tree.TreeId,
			"log_id", fmt.Sprintf("%x", sh.logID), "not_after_start", sc.NotAfterStart, "not_after_limit", sc.NotAfterLimit)
		s.shards = append(s.shards, sh)
		if err := s.addFront(sc, sh.logID, sh.tree.CreateTime.AsTime(), sh, nil); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.handler = s.newMux()
	return s, nil
}

// addFront sets up a shard's state (from --data/logs/<shard>.state.json,
// or the config) and its faults (from the config).
func (s *Server) addFront(sc ShardOf, logID [32]byte, created time.Time, sh *shard, tsh *tiledShard) error {
	st, err := loadState(s.opts.DataDir, sc.Shard, created)
	if err != nil {
		return fmt.Errorf("shard %s: couldn't read its state: %w", sc.Name, err)
	}
	f := &front{name: sc.Name, operator: sc.Operator, tiled: sc.Tiled(), logID: logID, state: st,
		faults: faults.NewSet(sc.Tiled()), rfc: sh, tl: tsh}
	f.mw = &faults.Middleware{Shard: sc.Name, Set: f.faults, Endpoint: f.endpoint, Logger: s.log, Hits: s.hits}
	if sh != nil {
		f.refused = func(ep string) { s.metrics.submissions.WithLabelValues(sc.Name, ep, "rejected").Inc() }
		f.mw.Views = rfcViews{s: s, f: f}
		sh.clock = &skewClock{f: f}
		for _, h := range sh.instance.Handlers {
			h.Info.TimeSource = sh.clock
		}
	} else {
		f.refused = func(ep string) { tsh.log.CountSubmission(ep, "rejected") }
		f.mw.Views = tiledViews{f: f}
	}
	now := time.Now()
	for _, flt := range sc.Faults {
		if err := f.faults.Add(flt, now); err != nil {
			return fmt.Errorf("shard %s: %w", sc.Name, err)
		}
	}
	if len(sc.Faults) > 0 {
		s.applyFaults(f)
		s.log.Warn("shard starts with faults from the config", "shard", sc.Name, "faults", len(sc.Faults))
	}
	f.faults.OnChange(func() { s.applyFaults(f); s.changed() })
	s.fronts = append(s.fronts, f)
	s.byName[sc.Name] = f
	return nil
}

// OnChange registers fn to run after a shard's state or faults changed
// (the log list changed with them).
func (s *Server) OnChange(fn func()) {
	s.listeners.Lock()
	s.onChange = append(s.onChange, fn)
	s.listeners.Unlock()
}

func (s *Server) changed() {
	s.listeners.Lock()
	fns := append([]func(){}, s.onChange...)
	s.listeners.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// ctfeLimit guards ctfe.MaxGetEntriesAllowed against servers made
// concurrently in one process (parallel tests).
var ctfeLimit sync.Mutex

// setCtfeGetEntries sets ctfe's get-entries limit to m. It is a
// process-wide variable that ctfe's handlers read without a lock (and
// align ranges to), so it is written only when a config needs another
// value, before this server serves: two servers in one process with
// different limits share it, and the last one made wins.
func setCtfeGetEntries(m int64) {
	ctfeLimit.Lock()
	defer ctfeLimit.Unlock()
	if m != ctfe.MaxGetEntriesAllowed {
		ctfe.MaxGetEntriesAllowed = m
	}
}

// maxGetEntries is the largest per-shard limit: ctfe's limit is global, and
// the front end cuts each request down to its shard's own limit.
func maxGetEntries(cfg Config) int64 {
	var m int64
	for _, s := range cfg.Shards() {
		m = max(m, s.MaxGetEntries)
	}
	return m
}

// Handler serves every shard under /<shard>/ct/v1/, the log list at
// /log.v3.json and readiness at /healthz.
func (s *Server) Handler() http.Handler { return s.handler }

// Run integrates queued entries and keeps the metrics current until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.runStart.CompareAndSwap(0, time.Now().UnixNano())
	g, ctx := errgroup.WithContext(ctx)
	if s.opts.Role.has(RoleSequencer) {
		g.Go(func() error { s.trillian.runSequencer(ctx); return nil })
	}
	g.Go(func() error { s.watchRoots(ctx); return nil })
	return g.Wait()
}

// Close stops the tiled shards (publishing what they took) and
// Trillian. Stop serving HTTP and let Run return first.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, t := range s.tiled {
			if err := t.close(ctx); err != nil {
				s.log.Warn("couldn't close a tiled shard", "shard", t.cfg.Name, "err", err)
			}
		}
		s.trillian.close()
	})
}

// watchRoots updates the tree size, STH age, integration delay and stall
// metrics every second.
func (s *Server) watchRoots(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	sizes := make([]uint64, len(s.shards))
	seen := make([]bool, len(s.shards)) // the first poll only sets the baseline
	stalled := make([]bool, len(s.shards))
	tstalled := make([]bool, len(s.tiled))
	for {
		for i, sh := range s.shards {
			root, err := s.latestRoot(ctx, sh)
			if err != nil {
				continue
			}
			s.byName[sh.cfg.Name].rememberHead(signedHead{size: root.TreeSize, root: root.RootHash, ts: root.TimestampNanos / 1e6})
			s.metrics.treeSize.WithLabelValues(sh.cfg.Name).Set(float64(root.TreeSize))
			age := time.Since(time.Unix(0, int64(root.TimestampNanos)))
			s.metrics.sthAge.WithLabelValues(sh.cfg.Name).Set(age.Seconds())
			stalled[i] = s.watchStall(sh, root, stalled[i])
			if seen[i] && root.TreeSize > sizes[i] {
				s.sampleMergeDelay(ctx, sh, sizes[i], root.TreeSize)
			}
			sizes[i], seen[i] = root.TreeSize, true
		}
		for i, t := range s.tiled {
			tstalled[i] = s.watchTiledStall(t, tstalled[i])
		}
		now := time.Now()
		for _, f := range s.fronts {
			s.watchFreeze(ctx, f, now)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleMergeDelay observes the integration delay of up to 16 entries spread
// over [from, to), from the queue and integration times Trillian keeps.
func (s *Server) sampleMergeDelay(ctx context.Context, sh *shard, from, to uint64) {
	const samples = 16
	step := max(1, (to-from)/samples)
	for i := from; i < to; i += step {
		leaves, err := s.leaves(ctx, sh, i, 1)
		if err != nil {
			return
		}
		l := leaves[0]
		d := l.IntegrateTimestamp.AsTime().Sub(l.QueueTimestamp.AsTime())
		s.metrics.mergeDelay.WithLabelValues(sh.cfg.Name).Observe(d.Seconds())
	}
}

func (s *Server) latestRoot(ctx context.Context, sh *shard) (*types.LogRootV1, error) {
	rsp, err := s.trillian.log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: sh.tree.TreeId})
	if err != nil {
		return nil, err
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(rsp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return nil, err
	}
	return &root, nil
}
