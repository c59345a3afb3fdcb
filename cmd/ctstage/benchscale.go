package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ctstage/ctstage/internal/logging"
	"github.com/ctstage/ctstage/internal/scalebench"
)

// benchScaleCmd grows one in-process log to large sizes by bulk loading and
// measures add-pre-chain, get-proof-by-hash, get-entries and disk use at
// each size; see package scalebench.
func benchScaleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg scalebench.Config
	fs.StringVar(&cfg.DataDir, "data", "", "empty (or absent) directory for the log's database, key and load-test CA (required)")
	fs.StringVar(&cfg.Storage, "storage", "sqlite", `"sqlite" or "mysql://USER:PASS@HOST:PORT/DB" (a missing database is created)`)
	entries := fs.Uint64("entries", 1000000, "the largest tree size to grow to and measure at")
	at := fs.String("at", "10000", "comma-separated smaller tree sizes to measure at first")
	fs.IntVar(&cfg.AddClients, "clients", 64, "concurrent add-pre-chain clients")
	fs.DurationVar(&cfg.AddDuration, "add-duration", 0, "length of each add-pre-chain measurement (default 10s)")
	fs.IntVar(&cfg.AddMax, "add-max", 0, "precertificates prepared for each add-pre-chain measurement, an upper bound on submissions (default 40000)")
	fs.IntVar(&cfg.ProofSamples, "proofs", 0, "random leaves asked about with get-proof-by-hash at each size (default 2000)")
	fs.IntVar(&cfg.ProofClients, "proof-clients", 0, "concurrent get-proof-by-hash clients (default 4)")
	fs.DurationVar(&cfg.EntriesDuration, "entries-duration", 0, "length of each get-entries measurement (default 10s)")
	fs.IntVar(&cfg.EntriesClients, "entries-clients", 0, "concurrent get-entries readers (default 4)")
	fs.StringVar(&cfg.EntriesReader, "entries-reader", "ct-go", `get-entries readers: "ct-go" (ct-go's client, every answer decoded) or "raw" (bytes read and entries counted, one answer in 50 decoded)`)
	fs.IntVar(&cfg.BulkBatch, "bulk-batch", 0, "leaves per QueueLeaves call of the bulk load (default 4096)")
	fs.IntVar(&cfg.SequencerBatchSize, "sequencer-batch", 0, "the shard's sequencer batch size (default 16384)")
	fs.StringVar(&cfg.ProfileDir, "cpuprofile-dir", "", "write a CPU profile of each phase to this directory")
	fs.BoolVar(&cfg.Monitor, "monitor", false, "also time ctstage monitor's catch-up on the whole tree at each size (root recomputed)")
	fs.StringVar(&cfg.Certspotter, "certspotter", "", "path of a certspotter binary: also time its catch-up on the whole tree at each size")
	fs.StringVar(&cfg.Stock, "stock", "", "directory with the stock stack's trillian_log_server and ct_server: also measure get-entries through them on the same MySQL database (scripts/bench-compare.sh)")
	tiledLog := fs.Bool("tiled", false, "grow a tiled (Static CT API) log on Tessera's POSIX backend instead, and measure its disk use and, with --monitor, the monitor's catch-up")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "bench-scale:", err)
		return exitUsage
	}
	cfg.Logger = log
	if cfg.DataDir == "" {
		fmt.Fprintln(stderr, "bench-scale: --data is required")
		return exitUsage
	}
	for _, f := range strings.Split(*at, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil || n == 0 {
			fmt.Fprintf(stderr, "bench-scale: --at %q: want positive tree sizes\n", *at)
			return exitUsage
		}
		if n < *entries {
			cfg.Sizes = append(cfg.Sizes, n)
		}
	}
	if *entries == 0 {
		fmt.Fprintln(stderr, "bench-scale: --entries must be positive")
		return exitUsage
	}
	cfg.Sizes = append(cfg.Sizes, *entries)
	slices.Sort(cfg.Sizes)
	cfg.Sizes = slices.Compact(cfg.Sizes)
	logging.RouteKlog(log.With("component", "trillian"))

	run := scalebench.Run
	if *tiledLog {
		run = scalebench.RunTiled
	}
	rep, err := run(ctx, cfg)
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(rep)
		} else {
			rep.WriteReport(stdout)
		}
	}
	if err != nil {
		log.Error("bench-scale failed", "err", err)
		return exitFail
	}
	return exitOK
}
