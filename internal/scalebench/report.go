package scalebench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/ctstage/ctstage/internal/loadgen"
)

// Millis is a duration that JSON shows in milliseconds.
type Millis = loadgen.Millis

// Report is what a run measured. Its JSON form is what `ctstage
// bench-scale --json` prints; durations are in milliseconds there.
type Report struct {
	Storage   string     `json:"storage"`
	CPUs      int        `json:"cpus"`
	GoVersion string     `json:"go_version"`
	Config    RunConfig  `json:"config"`
	Bulk      []BulkLoad `json:"bulk_loads"`
	Sizes     []Size     `json:"sizes"`
}

// RunConfig is the part of Config that shapes the figures.
type RunConfig struct {
	AddClients         int    `json:"add_clients"`
	AddDuration        Millis `json:"add_duration_ms"`
	ProofClients       int    `json:"proof_clients"`
	EntriesClients     int    `json:"entries_clients"`
	EntriesDuration    Millis `json:"entries_duration_ms"`
	BulkBatch          int    `json:"bulk_batch"`
	SequencerBatchSize int    `json:"sequencer_batch_size"`
}

func newReport(cfg Config) *Report {
	return &Report{
		Storage: redact(cfg.Storage), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		Config: RunConfig{
			AddClients: cfg.AddClients, AddDuration: Millis(cfg.AddDuration),
			ProofClients: cfg.ProofClients, EntriesClients: cfg.EntriesClients,
			EntriesDuration: Millis(cfg.EntriesDuration), BulkBatch: cfg.BulkBatch,
			SequencerBatchSize: cfg.SequencerBatchSize,
		},
	}
}

// redact hides the password of a mysql:// spec.
func redact(spec string) string {
	at := strings.LastIndex(spec, "@")
	colon := strings.Index(spec, "://")
	if at < 0 || colon < 0 {
		return spec
	}
	user := spec[colon+3 : at]
	if i := strings.Index(user, ":"); i >= 0 {
		user = user[:i] + ":xxx"
	}
	return spec[:colon+3] + user + spec[at:]
}

// BulkLoad is one growth of the tree by bulk loading: from first
// QueueLeaves to the first STH of size To.
type BulkLoad struct {
	From       uint64  `json:"from"`
	To         uint64  `json:"to"`
	Queued     Millis  `json:"queued_ms"`  // until the last QueueLeaves returned
	Elapsed    Millis  `json:"elapsed_ms"` // until an STH of size To
	PerSec     float64 `json:"entries_per_sec"`
	LeafBytes  float64 `json:"leaf_bytes"`  // mean MerkleTreeLeaf size of the first entries
	ExtraBytes float64 `json:"extra_bytes"` // mean extra data size of the first entries
	LoadStart  string  `json:"loadavg_start"`
	LoadEnd    string  `json:"loadavg_end"`
}

// Size is what was measured at one tree size.
type Size struct {
	Size    uint64  `json:"tree_size"`
	Disk    Disk    `json:"disk"`
	Proofs  Proofs  `json:"get_proof_by_hash"`
	Entries Entries `json:"get_entries"`
	// StockEntries is get-entries from the stock Trillian + ct_server
	// stack on the same database, when Config.Stock asked.
	StockEntries *Entries `json:"stock_get_entries,omitempty"`
	// Monitor is the monitor's catch-up, when Config.Monitor asked.
	Monitor *MonitorRun `json:"monitor,omitempty"`
	// Certspotter is certspotter's catch-up, when Config.Certspotter
	// names its binary.
	Certspotter *CertspotterRun `json:"certspotter,omitempty"`
	Add         Add             `json:"add_pre_chain"`
}

// Disk is the storage's size.
type Disk struct {
	Bytes    int64   `json:"bytes"`
	WALBytes int64   `json:"wal_bytes,omitempty"` // of Bytes, the SQLite WAL
	PerEntry float64 `json:"bytes_per_entry"`
	What     string  `json:"what"`
}

// Proofs is the get-proof-by-hash measurement.
type Proofs struct {
	Clients   int             `json:"clients"`
	Latency   loadgen.Summary `json:"latency"`
	PerSec    float64         `json:"per_sec"`
	Verified  int             `json:"verified"`
	Invalid   int             `json:"invalid"`
	LoadStart string          `json:"loadavg_start"`
	LoadEnd   string          `json:"loadavg_end"`
}

// Entries is the get-entries measurement.
type Entries struct {
	Clients    int     `json:"clients"`
	Run        uint64  `json:"run"` // length of each sequential range
	Reader     string  `json:"reader"`
	Entries    int64   `json:"entries"`
	Requests   int64   `json:"requests"`
	Elapsed    Millis  `json:"elapsed_ms"`
	PerSec     float64 `json:"entries_per_sec"`
	PerRequest float64 `json:"entries_per_request"`
	MBPerSec   float64 `json:"mb_per_sec"` // of leaf_input + extra_data, decoded (raw reader: of the JSON answers)
	LoadStart  string  `json:"loadavg_start"`
	LoadEnd    string  `json:"loadavg_end"`
}

// Add is the add-pre-chain measurement.
type Add struct {
	Result    *loadgen.Result `json:"result"`
	LoadStart string          `json:"loadavg_start"`
	LoadEnd   string          `json:"loadavg_end"`
}

// String is the compact human-readable report.
func (r *Report) String() string {
	var b strings.Builder
	r.WriteReport(&b)
	return b.String()
}

// WriteReport writes the compact human-readable report to w.
func (r *Report) WriteReport(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "storage %s, %d CPUs, %s; sequencer batch %d, bulk batch %d\n",
		r.Storage, r.CPUs, r.GoVersion, r.Config.SequencerBatchSize, r.Config.BulkBatch)
	for _, l := range r.Bulk {
		fmt.Fprintf(&b, "bulk load %d -> %d: %s (queued in %s), %.0f entries/s; entry %.0f B leaf + %.0f B extra; load %s -> %s\n",
			l.From, l.To, round(l.Elapsed), round(l.Queued), l.PerSec, l.LeafBytes, l.ExtraBytes, l.LoadStart, l.LoadEnd)
	}
	for _, s := range r.Sizes {
		fmt.Fprintf(&b, "at %d entries:\n", s.Size)
		fmt.Fprintf(&b, "  disk               %.1f MB, %.0f B/entry (%s; WAL %.1f MB)\n",
			float64(s.Disk.Bytes)/1e6, s.Disk.PerEntry, s.Disk.What, float64(s.Disk.WALBytes)/1e6)
		p := s.Proofs
		if p.Clients > 0 {
			fmt.Fprintf(&b, "  get-proof-by-hash  %d proofs, %d clients: p50 %s p99 %s max %s, %.0f/s; %d verified; load %s -> %s\n",
				p.Latency.N, p.Clients, round(p.Latency.P50), round(p.Latency.P99), round(p.Latency.Max), p.PerSec, p.Verified, p.LoadStart, p.LoadEnd)
		}
		e := s.Entries
		if e.Clients > 0 {
			fmt.Fprintf(&b, "  get-entries        %d %s clients, ranges of %d: %.0f entries/s (%.1f MB/s), %d entries in %d requests (%.0f per answer) in %s; load %s -> %s\n",
				e.Clients, e.Reader, e.Run, e.PerSec, e.MBPerSec, e.Entries, e.Requests, e.PerRequest, round(e.Elapsed), e.LoadStart, e.LoadEnd)
		}
		if st := s.StockEntries; st != nil {
			ratio := 0.0
			if st.PerSec > 0 {
				ratio = e.PerSec / st.PerSec
			}
			fmt.Fprintf(&b, "  stock get-entries  %d %s clients, ranges of %d: %.0f entries/s (%.1f MB/s), %d entries in %d requests in %s; ctstage %.2fx; load %s -> %s\n",
				st.Clients, st.Reader, st.Run, st.PerSec, st.MBPerSec, st.Entries, st.Requests, round(st.Elapsed), ratio, st.LoadStart, st.LoadEnd)
		}
		if m := s.Monitor; m != nil {
			par := "parallel get-entries"
			if strings.HasPrefix(r.Storage, "tiled") {
				par = "data tiles parsed at once"
			}
			fmt.Fprintf(&b, "  monitor catch-up   %d entries in %s: %.0f entries/s (%d %s, root recomputed); heap in use %v MB, peak %.0f MB; load %s -> %s\n",
				m.Entries, round(m.Elapsed), m.PerSec, m.Parallel, par, mbs(m.HeapMB), m.PeakHeapMB, m.LoadStart, m.LoadEnd)
		}
		if c := s.Certspotter; c != nil {
			fmt.Fprintf(&b, "  certspotter        %d entries in %s: %.0f entries/s (%s)\n", c.Entries, round(c.Elapsed), c.PerSec, c.Version)
		}
		if a := s.Add.Result; a != nil {
			fmt.Fprintf(&b, "  add-pre-chain      %d clients: %.0f/s (%d accepted, %d failed, %s); latency p50 %s p99 %s; merge delay p50 %s p99 %s; tree %d -> %d; load %s -> %s\n",
				a.Clients, a.AcceptedPerSec, a.Accepted, a.Failed, round(a.Elapsed), round(a.Latency.P50), round(a.Latency.P99),
				round(a.MergeDelay.P50), round(a.MergeDelay.P99), a.StartSize, a.EndSize, s.Add.LoadStart, s.Add.LoadEnd)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func round(m Millis) time.Duration {
	d := time.Duration(m)
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

func mbs(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}
