package ctlog

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/extension"
	"github.com/google/trillian/log"
	"github.com/google/trillian/monitoring"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/server"
	"github.com/google/trillian/server/admin"
	"github.com/google/trillian/server/interceptor"
	tstorage "github.com/google/trillian/storage"
	"github.com/google/trillian/util/clock"
	"github.com/google/trillian/util/election"
	"github.com/google/trillian/util/election2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// trillianServer is Trillian's log server, admin server and sequencer in
// this process. The log and admin servers speak gRPC over an in-memory
// connection (bufconn), so ctfe uses them exactly as it would a remote
// Trillian, without a socket.
type trillianServer struct {
	grpc *grpc.Server
	lis  *bufconn.Listener
	conn *grpc.ClientConn
	log  trillian.TrillianLogClient
	// direct is the log server itself, for the read path that skips
	// gRPC (serveEntries).
	direct    *server.TrillianLogRPCServer
	admin     trillian.TrillianAdminClient
	sequencer *log.OperationManager
	held      *heldSequencer
	served    chan struct{}
}

// heldSequencer is Trillian's sequencer with holds per tree (the
// no_integrate fault): a held tree's pass integrates only the leaves
// queued longer ago than its hold's delay (none, for a hold without
// one), so the entries wait while the tree's root is still signed
// afresh every sth_max_age, as a log that takes entries and does not
// integrate them shows.
type heldSequencer struct {
	registry extension.Registry
	normal   log.Operation
	mu       sync.RWMutex
	held     map[int64]log.Operation

	// queued, when the storage has it (SQLite: this process is its only
	// writer), tells whether leaves were queued since a pass: a tree
	// whose last pass integrated nothing is not passed again until then,
	// or until idleRecheck has gone by (the pass also signs a fresh root
	// every sth_max_age). Six idle RFC 6962 shards were otherwise sixty
	// write transactions a second, most of an idle server's CPU.
	queued      interface{ QueueGeneration(tree int64) uint64 }
	idleRecheck time.Duration
	idle        sync.Map // tree ID -> idlePass
}

// idlePass is a pass that integrated nothing: the queue's generation
// before it, and when it ran.
type idlePass struct {
	gen uint64
	at  time.Time
}

// forever stands for a hold without a delay: no leaf is that old.
const forever = 100 * 365 * 24 * time.Hour

func (h *heldSequencer) ExecutePass(ctx context.Context, logID int64, info *log.OperationInfo) (int, error) {
	h.mu.RLock()
	op := h.held[logID]
	h.mu.RUnlock()
	if op != nil {
		// A hold's pass integrates what has waited long enough: time,
		// not the queue, decides.
		return op.ExecutePass(ctx, logID, info)
	}
	if h.queued == nil {
		return h.normal.ExecutePass(ctx, logID, info)
	}
	gen := h.queued.QueueGeneration(logID)
	if v, ok := h.idle.Load(logID); ok {
		if p := v.(idlePass); p.gen == gen && time.Since(p.at) < h.idleRecheck {
			return 0, nil
		}
	}
	now := time.Now()
	n, err := h.normal.ExecutePass(ctx, logID, info)
	if err == nil && n == 0 {
		h.idle.Store(logID, idlePass{gen: gen, at: now})
	} else {
		h.idle.Delete(logID)
	}
	return n, err
}

// hold makes tree's passes integrate only leaves queued more than after
// ago; 0 is never.
func (t *trillianServer) hold(tree int64, after time.Duration) {
	if after <= 0 {
		after = forever
	}
	t.held.mu.Lock()
	t.held.held[tree] = log.NewSequencerManager(t.held.registry, after)
	t.held.mu.Unlock()
}

// release ends a hold: the next pass integrates what waits.
func (t *trillianServer) release(tree int64) {
	t.held.mu.Lock()
	delete(t.held.held, tree)
	t.held.mu.Unlock()
}

func newTrillianServer(ls tstorage.LogStorage, as tstorage.AdminStorage, mf monitoring.MetricFactory, cfg Config, el election2.Factory,
	unavailable func(context.Context, error) bool) (*trillianServer, error) {
	registry := extension.Registry{
		AdminStorage:    as,
		LogStorage:      ls,
		QuotaManager:    quota.Noop(),
		MetricFactory:   mf,
		ElectionFactory: el, // nil: master of every tree
	}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(outageInterceptor(unavailable), interceptor.ErrorWrapper), grpc.MaxRecvMsgSize(64<<20))
	trillian.RegisterTrillianAdminServer(g, admin.New(registry, []trillian.TreeType{trillian.TreeType_LOG}))
	direct := server.NewTrillianLogRPCServer(registry, clock.System)
	trillian.RegisterTrillianLogServer(g, direct)

	lis := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///trillian",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("couldn't connect to the in-process Trillian: %w", err)
	}
	t := &trillianServer{
		grpc:   g,
		lis:    lis,
		conn:   conn,
		log:    trillian.NewTrillianLogClient(conn),
		direct: direct,
		admin:  trillian.NewTrillianAdminClient(conn),
		served: make(chan struct{}),
	}
	t.held = &heldSequencer{registry: registry, normal: log.NewSequencerManager(registry, 0), held: map[int64]log.Operation{},
		idleRecheck: min(time.Second, cfg.STHMaxAge/10)}
	if q, ok := ls.(interface{ QueueGeneration(int64) uint64 }); ok {
		t.held.queued = q
	}
	t.sequencer = log.NewOperationManager(log.OperationInfo{
		Registry:    registry,
		BatchSize:   cfg.SequencerBatchSize,
		TimeSource:  clock.System,
		RunInterval: cfg.SequencerInterval,
		NumWorkers:  len(cfg.Shards()),
		Timeout:     30 * time.Second,
		// Used only with an election: Trillian's log signer's defaults
		// (hold a tree a minute, plus up to two of jitter, then resign so
		// that mastership moves), with a short pause before campaigning.
		ElectionConfig: election.RunnerConfig{
			PreElectionPause:   time.Second,
			MasterHoldInterval: time.Minute,
			MasterHoldJitter:   2 * time.Minute,
			TimeSource:         clock.System,
		},
	}, t.held)
	go func() {
		defer close(t.served)
		g.Serve(lis)
	}()
	return t, nil
}

// outageInterceptor answers codes.Unavailable for an error that
// unavailable says is the storage's outage. Trillian's MySQL storage
// returns the driver's errors (connection refused, invalid connection)
// as they come, which gRPC would send as Unknown and ctfe answer 500.
func outageInterceptor(unavailable func(context.Context, error) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		rsp, err := handler(ctx, req)
		if err != nil && unavailable != nil && status.Code(err) != codes.Unavailable && unavailable(ctx, err) {
			return rsp, status.Error(codes.Unavailable, "storage unavailable: "+err.Error())
		}
		return rsp, err
	}
}

// runSequencer integrates queued leaves and signs roots until ctx ends.
func (t *trillianServer) runSequencer(ctx context.Context) {
	t.sequencer.OperationLoop(ctx)
}

// close stops the gRPC server after in-flight calls finish.
func (t *trillianServer) close() {
	t.conn.Close()
	t.grpc.GracefulStop()
	<-t.served
}
