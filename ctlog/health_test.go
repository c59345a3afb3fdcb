package ctlog_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	tstorage "github.com/google/trillian/storage"
)

// failingWrites is a LogStorage whose read-write transactions, which only
// the sequencer uses once the tree exists, fail while fail is set. Reads
// and QueueLeaves (add-chain) still work, as with a MySQL user that lacks
// DELETE.
type failingWrites struct {
	tstorage.LogStorage
	fail atomic.Bool
}

func (f *failingWrites) ReadWriteTransaction(ctx context.Context, tree *trillian.Tree, fn tstorage.LogTXFunc) error {
	if f.fail.Load() {
		return errors.New("injected fault: read-write transaction refused")
	}
	return f.LogStorage.ReadWriteTransaction(ctx, tree, fn)
}

// lockedBuffer collects a server's logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *lockedBuffer) count(s string) int { return strings.Count(b.String(), s) }

// shortSTH is oneShard with a 1s sth_max_age: a shard is stalled after
// 2 x 1s + 5s without a new tree head.
const shortSTH = oneShard + `
  sth_max_age: 1s
`

const stallBound = 7 * time.Second

func TestHealthzStalledShard(t *testing.T) {
	t.Parallel()
	storage := &failingWrites{}
	logs := &lockedBuffer{}
	l := newTestLogWith(t, parseConfig(t, shortSTH), func(ls tstorage.LogStorage) tstorage.LogStorage {
		storage.LogStorage = ls
		return storage
	}, slog.New(slog.NewTextHandler(logs, nil)))
	if code, body := l.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz: %d %s", code, body)
	}

	storage.fail.Store(true)
	chain, err := l.ca.Leaf("stall.example.com", time.Now().AddDate(0, 1, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := l.post(t, "add-pre-chain", chainJSON(chain)); code != 200 {
		t.Fatalf("add-pre-chain with the sequencer failing: %d %s, want an SCT", code, body)
	}
	failed := time.Now()
	code, body := waitHealth(t, l, 503, stallBound+5*time.Second)
	if code != 503 || !strings.Contains(body, "shard test stalled") {
		t.Fatalf("healthz %s after the sequencer began failing: %d %q, want 503 naming shard test", time.Since(failed).Round(time.Second), code, body)
	}
	if d := time.Since(failed); d < stallBound-2*time.Second {
		t.Errorf("healthz 503 after %s, before the bound %s", d, stallBound)
	}
	waitGauge(t, l, 1)
	time.Sleep(2 * time.Second) // more passes fail: still one warning
	if n := logs.count("shard stalled"); n != 1 {
		t.Errorf("%d stall warnings, want 1\n%s", n, logs.String())
	}

	storage.fail.Store(false)
	if code, body := waitHealth(t, l, 200, 5*time.Second); code != 200 {
		t.Fatalf("healthz after the fault was lifted: %d %q, want 200", code, body)
	}
	waitTreeSize(t, l, 1)
	waitGauge(t, l, 0)
	if n := logs.count("shard recovered"); n != 1 {
		t.Errorf("%d recovery lines, want 1\n%s", n, logs.String())
	}
}

// An idle shard signs a fresh tree head every sth_max_age and is never
// stalled.
func TestHealthzIdleShardStaysReady(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, parseConfig(t, shortSTH))
	for end := time.Now().Add(stallBound + 3*time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if code, body := l.get(t, "/healthz"); code != 200 {
			t.Fatalf("idle shard: healthz %d %q, want 200", code, body)
		}
	}
	waitGauge(t, l, 0)
}

// waitHealth polls /healthz until it answers want or within has passed,
// and returns the last answer.
func waitHealth(t *testing.T, l *testLog, want int, within time.Duration) (int, string) {
	t.Helper()
	var code int
	var body string
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if code, body = l.get(t, "/healthz"); code == want {
			break
		}
	}
	return code, body
}

// waitGauge waits up to 3s (watchRoots polls every second) for
// ctstage_log_stalled{shard="test"} to be want.
func waitGauge(t *testing.T, l *testLog, want float64) {
	t.Helper()
	var v float64
	var err error
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if v, err = gather(l, "ctstage_log_stalled", map[string]string{"shard": "test"}); err == nil && v == want {
			return
		}
	}
	t.Errorf("ctstage_log_stalled{shard=test} = %v (%v), want %v", v, err, want)
}
