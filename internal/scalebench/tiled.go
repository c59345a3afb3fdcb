package scalebench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/ctonly"

	"github.com/ctstage/ctstage/ctlog/tiled"
)

// RunTiled is Run for a tiled (Static CT API) log on Tessera's POSIX
// backend, the embedded default's: it grows the log to each of cfg.Sizes
// by appending generated precertificate entries straight to Tessera
// (tiled.Log.BulkAppend: no chain verification, no SCT, many appends in
// flight), waits for a checkpoint of that size, and measures the bytes
// on disk and, with cfg.Monitor, the monitor's catch-up from the data
// tiles. The entries are those Run queues for add-pre-chain.
func RunTiled(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Storage != "sqlite" {
		return nil, fmt.Errorf("%w: the tiled benchmark runs on the POSIX backend only", ErrConfig)
	}
	caDir := filepath.Join(cfg.DataDir, "loadtest-ca")
	issuer, signer, chain, err := makeCA(caDir)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + lis.Addr().String()
	notAfter := time.Now().AddDate(0, 0, 90).UTC().Truncate(time.Second)
	gen, err := newLeafGen(issuer, signer, chain, notAfter)
	if err != nil {
		lis.Close()
		return nil, err
	}
	root := gen.chain[len(gen.chain)-1].Data
	l, err := tiled.New(ctx, tiled.Options{
		Origin: lis.Addr().String() + "/" + ShardName,
		Dir:    filepath.Join(cfg.DataDir, "tiled", ShardName),
		Key:    key,
		Roots:  [][]byte{root},
		Logger: cfg.Logger.With("component", "tiled"),
		Name:   ShardName,
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	defer l.Close(context.WithoutCancel(ctx))
	mux := http.NewServeMux()
	mux.Handle("/"+ShardName+"/", http.StripPrefix("/"+ShardName, l.Handler()))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	var served sync.WaitGroup
	served.Go(func() { hs.Serve(lis) })
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		served.Wait()
	}()

	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, log: cfg.Logger, issuer: issuer, chain: chain, pubKey: spki,
		logURL:   base + "/" + ShardName + "/",
		hc:       newHTTPClient(),
		notAfter: notAfter, gen: gen}
	list, err := tiledLogList(b.logURL, spki)
	if err != nil {
		return nil, err
	}
	rep := newReport(cfg)
	rep.Storage = "tiled (Tessera POSIX)"
	for _, size := range cfg.Sizes {
		bl, err := b.growTiled(ctx, l, size)
		if bl != nil {
			rep.Bulk = append(rep.Bulk, *bl)
		}
		if err != nil {
			return rep, fmt.Errorf("bulk load to %d: %w", size, err)
		}
		s := Size{Size: size}
		if s.Disk, err = dirBytes(filepath.Join(cfg.DataDir, "tiled", ShardName), size); err != nil {
			return rep, err
		}
		if cfg.Monitor {
			if s.Monitor, err = b.monitorCatchUp(ctx, list, size); err != nil {
				rep.Sizes = append(rep.Sizes, s)
				return rep, fmt.Errorf("monitor catch-up at %d: %w", size, err)
			}
		}
		rep.Sizes = append(rep.Sizes, s)
	}
	return rep, nil
}

// tiledLogList is a v3 log list of the one tiled log.
func tiledLogList(url string, spki []byte) ([]byte, error) {
	id := sha256.Sum256(spki)
	return json.Marshal(map[string]any{
		"version": "3", "log_list_timestamp": time.Now().UTC().Format(time.RFC3339),
		"operators": []any{map[string]any{
			"name": "ctstage scale benchmark", "email": []string{}, "logs": []any{},
			"tiled_logs": []any{map[string]any{
				"description": "scale (tiled)", "log_id": id[:], "key": spki, "mmd": 60,
				"submission_url": url, "monitoring_url": url,
				"state": map[string]any{"usable": map[string]any{"timestamp": time.Now().UTC().Format(time.RFC3339)}},
			}},
		}},
	})
}

// tiledInFlight is how many appends the bulk load keeps in flight:
// Tessera sequences batches of up to 256.
const tiledInFlight = 4096

// growTiled appends entries until the log's checkpoint reaches target.
func (b *bench) growTiled(ctx context.Context, l *tiled.Log, target uint64) (*BulkLoad, error) {
	start, _, err := l.Head(ctx)
	if err != nil {
		return nil, err
	}
	if start >= target {
		return nil, nil
	}
	bl := &BulkLoad{From: start, To: target, LoadStart: loadAvg()}
	defer b.profile("bulk", target)()
	b.log.Info("bulk load", "from", start, "to", target)
	var issuers [][]byte
	var fps [][32]byte
	for _, c := range b.gen.chain {
		issuers = append(issuers, c.Data)
		fps = append(fps, sha256.Sum256(c.Data))
	}
	t0 := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Uint64
	next.Store(b.next)
	var leafBytes, extraBytes, sampled atomic.Int64
	var wg sync.WaitGroup
	for range tiledInFlight {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= b.next+(target-start) {
					return
				}
				e, err := b.gen.make(i, uint64(time.Now().UnixMilli()))
				if err != nil {
					cancel(err)
					return
				}
				ce := &ctonly.Entry{Timestamp: uint64(time.Now().UnixMilli()), IsPrecert: true,
					Certificate: e.tbs, Precertificate: e.precert, IssuerKeyHash: b.gen.issuerKeyHash[:], FingerprintsChain: fps}
				if sampled.Add(1) <= 1000 {
					leafBytes.Add(int64(len(e.leaf.LeafValue)))
					extraBytes.Add(int64(len(e.leaf.ExtraData)))
				}
				for {
					_, err = l.BulkAppend(ctx, ce, issuers)
					if !errors.Is(err, tessera.ErrPushback) {
						break
					}
					sleep(ctx, 10*time.Millisecond)
				}
				if err != nil {
					cancel(fmt.Errorf("append %d: %w", i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	b.next += target - start
	bl.Queued = Millis(time.Since(t0))
	if err := context.Cause(ctx); err != nil {
		return bl, err
	}
	for lastLog := time.Now(); ; {
		size, _, err := l.Head(ctx)
		if err == nil && size >= target {
			break
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			b.log.Info("waiting for the checkpoint", "size", size, "to", target)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return bl, err
		}
	}
	bl.Elapsed = Millis(time.Since(t0))
	bl.PerSec = float64(target-start) / time.Since(t0).Seconds()
	if n := min(sampled.Load(), 1000); n > 0 {
		bl.LeafBytes, bl.ExtraBytes = float64(leafBytes.Load())/float64(n), float64(extraBytes.Load())/float64(n)
	}
	bl.LoadEnd = loadAvg()
	return bl, nil
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string, size uint64) (Disk, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return Disk{Bytes: n, PerEntry: float64(n) / float64(size), What: "files under the log's directory (tiles, issuers, antispam index, Tessera's state)"}, err
}
