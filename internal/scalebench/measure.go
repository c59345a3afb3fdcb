package scalebench

import (
	"bytes"
	"context"
	"crypto"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctstage/ctstage/internal/loadgen"
	"github.com/ctstage/ctstage/storage"
)

func numWorkers() int { return runtime.GOMAXPROCS(0) }

// measure takes the measurements at the tree's current size.
func (b *bench) measure(ctx context.Context, signer crypto.Signer) (*Size, error) {
	sth, err := b.sth(ctx)
	if err != nil {
		return nil, err
	}
	s := &Size{Size: sth.TreeSize}
	b.log.Info("measuring", "tree_size", sth.TreeSize)
	if s.Disk, err = b.disk(ctx, sth.TreeSize); err != nil {
		return s, fmt.Errorf("disk usage: %w", err)
	}
	if s.Proofs, err = b.proofs(ctx, sth); err != nil {
		return s, fmt.Errorf("get-proof-by-hash: %w", err)
	}
	if s.Entries, err = b.entries(ctx, b.lc, b.logURL, "entries", sth.TreeSize); err != nil {
		return s, fmt.Errorf("get-entries: %w", err)
	}
	if b.cfg.Stock != "" {
		if b.stock == nil {
			if b.stock, err = b.startStock(ctx); err != nil {
				return s, err
			}
		}
		e, err := b.entries(ctx, b.stock.lc, b.stock.url, "stock-entries", sth.TreeSize)
		if err != nil {
			return s, fmt.Errorf("get-entries from the stock stack: %w", err)
		}
		s.StockEntries = &e
	}
	if b.cfg.Monitor {
		list, err := json.Marshal(b.srv.LogList())
		if err != nil {
			return s, err
		}
		if s.Monitor, err = b.monitorCatchUp(ctx, list, sth.TreeSize); err != nil {
			return s, fmt.Errorf("monitor catch-up: %w", err)
		}
	}
	if b.cfg.Certspotter != "" {
		if s.Certspotter, err = b.certspotterCatchUp(ctx, b.cfg.Certspotter, sth.TreeSize); err != nil {
			return s, fmt.Errorf("certspotter catch-up: %w", err)
		}
	}
	if s.Add, err = b.add(ctx, signer, sth.TreeSize); err != nil {
		return s, fmt.Errorf("add-pre-chain: %w", err)
	}
	return s, nil
}

// disk measures the bytes the storage uses.
func (b *bench) disk(ctx context.Context, size uint64) (Disk, error) {
	var d Disk
	if b.store.Kind == "mysql" {
		n, err := mysqlBytes(ctx, b.cfg.Storage)
		if err != nil {
			return d, err
		}
		d.Bytes = n
		d.What = "information_schema data_length+index_length after ANALYZE TABLE"
	} else {
		for i, suffix := range []string{"", "-wal"} {
			fi, err := os.Stat(filepath.Join(b.cfg.DataDir, storage.SQLiteFile+suffix))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return d, err
			}
			d.Bytes += fi.Size()
			if i == 1 {
				d.WALBytes = fi.Size()
			}
		}
		d.What = storage.SQLiteFile + " + WAL"
	}
	d.PerEntry = float64(d.Bytes) / float64(max(size, 1))
	return d, nil
}

// mysqlConfig is the go-sql-driver config of a mysql:// spec.
func mysqlConfig(spec string) (*mysql.Config, error) {
	dsn, err := storage.MySQLDSN(spec)
	if err != nil {
		return nil, err
	}
	return mysql.ParseDSN(dsn)
}

// createMySQLDatabase creates the database of a mysql:// spec if missing.
func createMySQLDatabase(ctx context.Context, spec string) error {
	mc, err := mysqlConfig(spec)
	if err != nil {
		return err
	}
	name := mc.DBName
	if name == "" || strings.ContainsAny(name, "`") {
		return fmt.Errorf("%w: bad database name %q", ErrConfig, name)
	}
	mc.DBName = ""
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"`"); err != nil {
		return fmt.Errorf("couldn't create MySQL database %s: %w", name, err)
	}
	return nil
}

// mysqlBytes is the data and index length of every table of the database,
// after ANALYZE TABLE refreshed InnoDB's statistics.
func mysqlBytes(ctx context.Context, spec string) (int64, error) {
	mc, err := mysqlConfig(spec)
	if err != nil {
		return 0, err
	}
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
	if err != nil {
		return 0, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		r, err := db.QueryContext(ctx, "ANALYZE TABLE `"+t+"`")
		if err != nil {
			return 0, err
		}
		r.Close()
	}
	var n sql.NullInt64
	err = db.QueryRowContext(ctx,
		"SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n)
	return n.Int64, err
}

// proofs asks get-proof-by-hash about random leaves, times the answers and
// verifies every proof against the STH.
func (b *bench) proofs(ctx context.Context, sth *ct.SignedTreeHead) (Proofs, error) {
	size := sth.TreeSize
	n := min(uint64(b.cfg.ProofSamples), size)
	p := Proofs{Clients: b.cfg.ProofClients}
	idx := make([]uint64, n)
	for i := range idx {
		idx[i] = rand.Uint64N(size)
	}
	hashes := make([][]byte, n)
	// Off the clock: the leaf hashes, from the entries the log serves.
	err := b.parallel(ctx, int(n), b.cfg.ProofClients, func(ctx context.Context, i int) error {
		rsp, err := b.lc.GetRawEntries(ctx, int64(idx[i]), int64(idx[i]))
		if err != nil {
			return err
		}
		if len(rsp.Entries) != 1 {
			return fmt.Errorf("get-entries %d: %d entries", idx[i], len(rsp.Entries))
		}
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(rsp.Entries[0].LeafInput)
		return nil
	})
	if err != nil {
		return p, err
	}
	p.LoadStart = loadAvg()
	stop := b.profile("proofs", size)
	lat := make([]time.Duration, n)
	rsps := make([]*ct.GetProofByHashResponse, n)
	t0 := time.Now()
	err = b.parallel(ctx, int(n), b.cfg.ProofClients, func(ctx context.Context, i int) error {
		t := time.Now()
		rsp, err := b.lc.GetProofByHash(ctx, hashes[i], size)
		lat[i] = time.Since(t)
		rsps[i] = rsp
		return err
	})
	elapsed := time.Since(t0)
	stop()
	p.LoadEnd = loadAvg()
	if err != nil {
		return p, err
	}
	p.Latency = summarize(lat)
	p.PerSec = float64(n) / elapsed.Seconds()
	for i, rsp := range rsps {
		err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rsp.LeafIndex), size, hashes[i], rsp.AuditPath, sth.SHA256RootHash[:])
		if err == nil && uint64(rsp.LeafIndex) != idx[i] {
			err = fmt.Errorf("leaf %d: proof for index %d", idx[i], rsp.LeafIndex)
		}
		if err != nil {
			p.Invalid++
			b.log.Error("invalid inclusion proof", "index", idx[i], "err", err)
			continue
		}
		p.Verified++
	}
	if p.Invalid > 0 {
		return p, fmt.Errorf("%d of %d inclusion proofs are invalid", p.Invalid, n)
	}
	return p, nil
}

// parallel runs f(0..n-1) on the given number of goroutines and returns the
// first error.
func (b *bench) parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// entries reads sequential ranges of get-entries from random starts for
// EntriesDuration with EntriesClients readers, from the log at logURL
// through lc (or, with the raw reader, plain HTTP); phase names its
// profile.
func (b *bench) entries(ctx context.Context, lc *client.LogClient, logURL, phase string, size uint64) (Entries, error) {
	run := min(uint64(b.cfg.EntriesRun), size)
	e := Entries{Clients: b.cfg.EntriesClients, Run: run, Reader: b.cfg.EntriesReader, LoadStart: loadAvg()}
	defer b.profile(phase, size)()
	var entries, requests, bytes atomic.Int64
	deadline := time.Now().Add(b.cfg.EntriesDuration)
	t0 := time.Now()
	err := b.parallel(ctx, b.cfg.EntriesClients, b.cfg.EntriesClients, func(ctx context.Context, _ int) error {
		var raw rawReader
		for time.Now().Before(deadline) {
			start := rand.Uint64N(size - run + 1)
			end := start + run // exclusive
			for pos := start; pos < end && time.Now().Before(deadline); {
				var got uint64
				var nb int
				if b.cfg.EntriesReader == ReaderRaw {
					n, body, err := raw.get(ctx, b.hc, logURL, pos, end-1)
					if err != nil {
						return err
					}
					got, nb = n, body
				} else {
					rsp, err := lc.GetRawEntries(ctx, int64(pos), int64(end-1))
					if err != nil {
						return err
					}
					got = uint64(len(rsp.Entries))
					if got > 0 {
						// A sample of correctness: the first entry parses as
						// a precertificate entry.
						if _, err := ct.LogEntryFromLeaf(int64(pos), &rsp.Entries[0]); err != nil {
							return fmt.Errorf("entry %d: %w", pos, err)
						}
					}
					for _, le := range rsp.Entries {
						nb += len(le.LeafInput) + len(le.ExtraData)
					}
				}
				if got == 0 || got > end-pos {
					return fmt.Errorf("get-entries [%d, %d]: %d entries", pos, end-1, got)
				}
				entries.Add(int64(got))
				requests.Add(1)
				bytes.Add(int64(nb))
				pos += got
			}
		}
		return nil
	})
	elapsed := time.Since(t0)
	e.LoadEnd = loadAvg()
	e.Entries, e.Requests = entries.Load(), requests.Load()
	e.Elapsed = Millis(elapsed)
	e.PerSec = float64(e.Entries) / elapsed.Seconds()
	if e.Requests > 0 {
		e.PerRequest = float64(e.Entries) / float64(e.Requests)
		e.MBPerSec = float64(bytes.Load()) / 1e6 / elapsed.Seconds()
	}
	return e, err
}

// Readers of get-entries (Config.EntriesReader).
const (
	// ReaderCTGo is ct-go's client: every answer decoded, as a monitor
	// built on it reads.
	ReaderCTGo = "ct-go"
	// ReaderRaw reads each answer's bytes and counts its entries, so
	// that the figure is the log's and not the client's: decoding the
	// JSON costs more CPU than serving it.
	ReaderRaw = "raw"
)

// rawReader is one reader's state for ReaderRaw.
type rawReader struct {
	buf  bytes.Buffer
	seen int
}

// rawCheckEvery is how often the raw reader decodes an answer in full
// and checks its count and first entry.
const rawCheckEvery = 50

var leafInputKey = []byte(`"leaf_input"`)

// get fetches get-entries [start, end] and returns how many entries the
// answer holds and its size in bytes.
func (r *rawReader) get(ctx context.Context, hc *http.Client, logURL string, start, end uint64) (uint64, int, error) {
	u := fmt.Sprintf("%s/ct/v1/get-entries?start=%d&end=%d", strings.TrimSuffix(logURL, "/"), start, end)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	rsp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer rsp.Body.Close()
	r.buf.Reset()
	if _, err := r.buf.ReadFrom(rsp.Body); err != nil {
		return 0, 0, err
	}
	body := r.buf.Bytes()
	if rsp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("get-entries [%d, %d]: %s: %.200s", start, end, rsp.Status, body)
	}
	if !bytes.HasPrefix(body, []byte(`{"entries":[`)) {
		return 0, 0, fmt.Errorf("get-entries [%d, %d]: not a get-entries answer: %.200s", start, end, body)
	}
	n := uint64(bytes.Count(body, leafInputKey))
	if r.seen++; r.seen%rawCheckEvery == 1 {
		var full ct.GetEntriesResponse
		if err := json.Unmarshal(body, &full); err != nil {
			return 0, 0, fmt.Errorf("get-entries [%d, %d]: %w", start, end, err)
		}
		if uint64(len(full.Entries)) != n {
			return 0, 0, fmt.Errorf("get-entries [%d, %d]: %d entries decoded, %d counted", start, end, len(full.Entries), n)
		}
		if n > 0 {
			if _, err := ct.LogEntryFromLeaf(int64(start), &full.Entries[0]); err != nil {
				return 0, 0, fmt.Errorf("entry %d: %w", start, err)
			}
		}
	}
	return n, len(body), nil
}

// add measures add-pre-chain with loadgen.
func (b *bench) add(ctx context.Context, signer crypto.Signer, size uint64) (Add, error) {
	a := Add{LoadStart: loadAvg()}
	defer b.profile("add", size)()
	res, err := loadgen.Run(ctx, loadgen.Config{
		LogURL:       b.logURL,
		LogPublicKey: b.pubKey,
		VerifySample: 200,
		Issuer:       b.issuer,
		IssuerSigner: signer,
		Chain:        b.chain,
		NotAfter:     b.notAfter,
		Clients:      b.cfg.AddClients,
		Total:        b.cfg.AddMax,
		Duration:     b.cfg.AddDuration,
		Logger:       b.log.With("phase", "add-pre-chain"),
	})
	a.LoadEnd = loadAvg()
	a.Result = res
	if err != nil {
		return a, err
	}
	if !res.OK() {
		return a, fmt.Errorf("add-pre-chain failures:\n%s", res)
	}
	return a, nil
}

// summarize is the nearest-rank p50/p99/max of ds (sorted in place).
func summarize(ds []time.Duration) loadgen.Summary {
	slices.Sort(ds)
	pct := func(p float64) loadgen.Millis {
		if len(ds) == 0 {
			return 0
		}
		r := int(math.Ceil(p / 100 * float64(len(ds))))
		return loadgen.Millis(ds[min(max(r, 1), len(ds))-1])
	}
	return loadgen.Summary{N: len(ds), P50: pct(50), P99: pct(99), Max: pct(100)}
}
