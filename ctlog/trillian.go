package ctlog

import (
	"context"
	"fmt"
	"net"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// trillianServer is Trillian's log server, admin server and sequencer in
// this process. The log and admin servers speak gRPC over an in-memory
// connection (bufconn), so ctfe uses them exactly as it would a remote
// Trillian, without a socket.
type trillianServer struct {
	grpc      *grpc.Server
	lis       *bufconn.Listener
	conn      *grpc.ClientConn
	log       trillian.TrillianLogClient
	admin     trillian.TrillianAdminClient
	sequencer *log.OperationManager
	served    chan struct{}
}

func newTrillianServer(ls tstorage.LogStorage, as tstorage.AdminStorage, mf monitoring.MetricFactory, cfg Config) (*trillianServer, error) {
	registry := extension.Registry{
		AdminStorage:  as,
		LogStorage:    ls,
		QuotaManager:  quota.Noop(),
		MetricFactory: mf,
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(interceptor.ErrorWrapper), grpc.MaxRecvMsgSize(64<<20))
	trillian.RegisterTrillianAdminServer(g, admin.New(registry, []trillian.TreeType{trillian.TreeType_LOG}))
	trillian.RegisterTrillianLogServer(g, server.NewTrillianLogRPCServer(registry, clock.System))

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
		admin:  trillian.NewTrillianAdminClient(conn),
		served: make(chan struct{}),
	}
	t.sequencer = log.NewOperationManager(log.OperationInfo{
		Registry:    registry,
		BatchSize:   cfg.SequencerBatchSize,
		TimeSource:  clock.System,
		RunInterval: cfg.SequencerInterval,
		NumWorkers:  len(cfg.Shards()),
		Timeout:     30 * time.Second,
	}, log.NewSequencerManager(registry, 0))
	go func() {
		defer close(t.served)
		g.Serve(lis)
	}()
	return t, nil
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
