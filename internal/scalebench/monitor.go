package scalebench

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ctstage/ctstage/monitor"
	"github.com/ctstage/ctstage/sctverify"
)

// MonitorRun is `ctstage monitor`'s catch-up on the whole tree from an
// empty state: every entry read (get-entries), parsed, hashed into the
// compact range, and the root compared with the tree head's.
type MonitorRun struct {
	Entries  uint64  `json:"entries"`
	Elapsed  Millis  `json:"elapsed_ms"`
	PerSec   float64 `json:"entries_per_sec"`
	Parallel int     `json:"parallel"`
	Alerts   int     `json:"alerts"`
	// HeapMB are the process's heap in use (the log and the monitor share
	// it) at the start, at a quarter, half, three quarters and the end
	// of the catch-up, and its peak: flat is what the goal asks.
	HeapMB     []float64 `json:"heap_mb"`
	PeakHeapMB float64   `json:"peak_heap_mb"`
	LoadStart  string    `json:"load_start"`
	LoadEnd    string    `json:"load_end"`
}

type countSink struct{ alerts atomic.Int64 }

func (c *countSink) Emit(e monitor.Event) {
	if e.Alert != "" {
		c.alerts.Add(1)
	}
}

// monitorCatchUp runs the monitor from an empty state on the one log of
// list (v3 JSON), which holds size entries.
func (b *bench) monitorCatchUp(ctx context.Context, list []byte, size uint64) (*MonitorRun, error) {
	ll, err := sctverify.ParseLogList(list)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.cfg.DataDir, fmt.Sprintf("monitor-%d", size))
	defer os.RemoveAll(dir)
	sink := &countSink{}
	const parallel = 4
	m, err := monitor.New(monitor.Options{Logs: ll, StateDir: dir, Sink: sink, HTTPClient: b.hc, Parallel: parallel, SaveEvery: 100_000,
		Logger: b.log.With("phase", "monitor")})
	if err != nil {
		return nil, err
	}
	run := &MonitorRun{Parallel: parallel, LoadStart: loadAvg()}
	var peak atomic.Uint64
	heap := func() float64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for {
			p := peak.Load()
			if ms.HeapInuse <= p || peak.CompareAndSwap(p, ms.HeapInuse) {
				break
			}
		}
		return float64(ms.HeapInuse) / 1e6
	}
	run.HeapMB = append(run.HeapMB, heap())
	done := make(chan struct{})
	var sampler sync.WaitGroup
	start := time.Now()
	sampler.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				heap()
			}
		}
	})
	// The quarter marks come from the state the monitor saves.
	marks := []uint64{size / 4, size / 2, 3 * size / 4}
	sampler.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for len(marks) > 0 {
			select {
			case <-done:
				return
			case <-t.C:
				if readEnd(dir) >= marks[0] {
					run.HeapMB = append(run.HeapMB, heap())
					marks = marks[1:]
				}
			}
		}
	})
	stopProfile := b.profile("monitor", size)
	m.Once(ctx)
	stopProfile()
	run.Elapsed = Millis(time.Since(start))
	close(done)
	sampler.Wait()
	run.HeapMB = append(run.HeapMB, heap())
	run.PeakHeapMB = float64(peak.Load()) / 1e6
	run.Entries = readEnd(dir)
	run.PerSec = float64(run.Entries) / time.Duration(run.Elapsed).Seconds()
	run.Alerts = int(sink.alerts.Load())
	run.LoadEnd = loadAvg()
	if run.Entries < size || run.Alerts > 0 {
		return run, fmt.Errorf("the monitor read %d of %d entries with %d alerts", run.Entries, size, run.Alerts)
	}
	return run, nil
}

// readEnd is the good range end the monitor saved in dir (one log).
func readEnd(dir string) uint64 {
	des, _ := os.ReadDir(dir)
	for _, d := range des {
		if filepath.Ext(d.Name()) != ".json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, d.Name()))
		if err != nil {
			continue
		}
		var st struct {
			RangeEnd uint64 `json:"range_end"`
		}
		if json.Unmarshal(b, &st) == nil {
			return st.RangeEnd
		}
	}
	return 0
}

// CertspotterRun is SSLMate's certspotter catching up on the same tree
// from an empty state (it downloads every entry and recomputes the
// tree, as the monitor does), for comparison.
type CertspotterRun struct {
	Version string  `json:"version"`
	Entries uint64  `json:"entries"`
	Elapsed Millis  `json:"elapsed_ms"`
	PerSec  float64 `json:"entries_per_sec"`
}

// certspotterCatchUp runs the certspotter binary at bin on the shard until
// its state shows the whole tree verified.
func (b *bench) certspotterCatchUp(ctx context.Context, bin string, size uint64) (*CertspotterRun, error) {
	dir := filepath.Join(b.cfg.DataDir, fmt.Sprintf("certspotter-%d", size))
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(b.srv.LogList())
	if err != nil {
		return nil, err
	}
	list, watch := filepath.Join(dir, "list.json"), filepath.Join(dir, "watchlist")
	if err := os.WriteFile(list, raw, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(watch, []byte("nothing.example.invalid\n"), 0o644); err != nil {
		return nil, err
	}
	ver, _ := exec.CommandContext(ctx, bin, "-version").CombinedOutput()
	cmd := exec.CommandContext(ctx, bin, "-logs", list, "-state_dir", filepath.Join(dir, "state"), "-watchlist", watch, "-stdout")
	cmd.Env = append(os.Environ(), "CERTSPOTTER_CONFIG_DIR="+filepath.Join(dir, "config"))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	id := sha256.Sum256(b.pubKey)
	statePath := filepath.Join(dir, "state", "logs", base64.RawURLEncoding.EncodeToString(id[:]), "state.json")
	for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var st struct {
			VerifiedPosition struct {
				Size uint64 `json:"size"`
			} `json:"verified_position"`
		}
		if b, err := os.ReadFile(statePath); err == nil && json.Unmarshal(b, &st) == nil && st.VerifiedPosition.Size >= size {
			el := time.Since(start)
			return &CertspotterRun{Version: strings.TrimSpace(string(ver)), Entries: st.VerifiedPosition.Size, Elapsed: Millis(el),
				PerSec: float64(st.VerifiedPosition.Size) / el.Seconds()}, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("certspotter did not catch up within 30 minutes")
		}
	}
}
