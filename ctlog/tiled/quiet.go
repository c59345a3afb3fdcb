package tiled

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
)

// Tessera's NewAppender starts two loops of its own that read the tree's
// size for its OpenTelemetry metrics: every 100 ms (integrationStats) and
// every 200 ms per follower (followerStats), hard-coded. ctstage exports
// no OpenTelemetry, so those reads feed nothing, yet they were most of an
// idle shard's cost: a file read each on POSIX, a query each on MySQL,
// for every tiled shard of every process (docs/benchmarks.md). quietDriver
// hands Tessera a LogReader whose IntegratedSize and NextIndex are cached
// for statsTTL; everything else goes through. ctstage's own readers of the
// size (the antispam follower) use the driver's reader, through unquiet.
type quietDriver struct{ d appendLifecycle }

// appendLifecycle is what tessera.NewAppender asks of a driver (every
// Tessera driver has it).
type appendLifecycle interface {
	Appender(context.Context, *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error)
}

// statsTTL is how stale the size that Tessera's metrics loops read may be.
const statsTTL = 5 * time.Second

// quiet wraps a Tessera driver; it must have Tessera's append lifecycle,
// as every Tessera driver does.
func quiet(d tessera.Driver) (tessera.Driver, error) {
	q, ok := d.(appendLifecycle)
	if !ok {
		return nil, fmt.Errorf("tessera driver %T has no Appender lifecycle", d)
	}
	return &quietDriver{d: q}, nil
}

// Appender is Tessera's driver lifecycle (tessera.NewAppender calls it).
func (q *quietDriver) Appender(ctx context.Context, opts *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	a, r, err := q.d.Appender(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	return a, &quietReader{LogReader: r}, nil
}

// quietReader caches the sizes for statsTTL.
type quietReader struct {
	tessera.LogReader

	mu               sync.Mutex
	integrated, next cachedSize
}

type cachedSize struct {
	n  uint64
	at time.Time
}

func (r *quietReader) IntegratedSize(ctx context.Context) (uint64, error) {
	return r.cached(ctx, &r.integrated, r.LogReader.IntegratedSize)
}

func (r *quietReader) NextIndex(ctx context.Context) (uint64, error) {
	return r.cached(ctx, &r.next, r.LogReader.NextIndex)
}

func (r *quietReader) cached(ctx context.Context, c *cachedSize, read func(context.Context) (uint64, error)) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < statsTTL {
		return c.n, nil
	}
	n, err := read(ctx)
	if err != nil {
		return 0, err
	}
	*c = cachedSize{n, time.Now()}
	return n, nil
}

// unquiet is the driver's own reader behind a quietReader, for readers
// that need the size as it is now.
func unquiet(lr tessera.LogReader) tessera.LogReader {
	if q, ok := lr.(*quietReader); ok {
		return q.LogReader
	}
	return lr
}
