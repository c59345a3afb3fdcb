package tiled

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
)

// antispam is a persistent tessera.Antispam on a SQL database (SQLite
// beside the POSIX tiles, or the shard's MySQL database): a table from
// each entry's identity hash to the index it was first given, filled by a
// follower that reads the integrated entry bundles. With it a duplicate
// submitted after a restart gets its original index, and so its original
// SCT; Tessera's in-memory dedup, in front of it, answers duplicates of
// entries the follower has not read yet.
//
// Tessera's own persistent antispam for POSIX is on BadgerDB; this one
// keeps ctstage on the databases it already has, and is the same code on
// both backends.
type antispam struct {
	db           *sql.DB
	insertIgnore string // "INSERT OR IGNORE" (SQLite) or "INSERT IGNORE" (MySQL)
	log          *slog.Logger
	// pushback is set while the follower is more than pushbackAfter
	// entries behind the integrated tree: adds get tessera.ErrPushback
	// until it catches up, as Tessera's own antispam does.
	pushback atomic.Bool
	// mu serialises follower steps: Tessera's follower goroutine and the
	// catch-up at start.
	mu sync.Mutex
	f  *follower
	// lookup is the decorator's one query, prepared once.
	lookup *sql.Stmt
	// next is how many entries the index covers. The follower is the only
	// writer, so the database is read at open and after a failed step.
	next atomic.Uint64
	// seen, on SQLite only, answers most lookups without a query
	// (seen.go); stopLoad ends its loading, loading is done once it ended.
	seen     *seenFilter
	stopLoad context.CancelFunc
	loading  sync.WaitGroup
}

const (
	// insertRows is how many rows one INSERT of the follower holds.
	insertRows      = 256
	antispamBatch   = 4096
	pushbackAfter   = 1 << 16
	followInterval  = 200 * time.Millisecond
	antispamTable   = "ctstage_antispam"
	antispamNextRow = "ctstage_antispam_next"
)

// antispamSchema is the index's tables, for SQLite and MySQL.
func antispamSchema(mysql bool) []string {
	if mysql {
		return []string{
			"CREATE TABLE IF NOT EXISTS " + antispamTable + " (hash BINARY(32) NOT NULL PRIMARY KEY, idx BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
			"CREATE TABLE IF NOT EXISTS " + antispamNextRow + " (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, next BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
		}
	}
	return []string{
		"CREATE TABLE IF NOT EXISTS " + antispamTable + " (hash BLOB NOT NULL PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID",
		"CREATE TABLE IF NOT EXISTS " + antispamNextRow + " (id INTEGER NOT NULL PRIMARY KEY, next INTEGER NOT NULL)",
	}
}

// newAntispam runs on db, whose tables antispamSchema made.
func newAntispam(ctx context.Context, db *sql.DB, mysql bool, log *slog.Logger) (*antispam, error) {
	a := &antispam{db: db, insertIgnore: "INSERT OR IGNORE", log: log}
	if mysql {
		a.insertIgnore = "INSERT IGNORE"
	}
	if err := a.loadNext(ctx); err != nil {
		return nil, fmt.Errorf("couldn't read the antispam index: %w", err)
	}
	var err error
	if a.lookup, err = db.PrepareContext(ctx, "SELECT idx FROM "+antispamTable+" WHERE hash = ?"); err != nil {
		return nil, fmt.Errorf("couldn't prepare the antispam lookup: %w", err)
	}
	if !mysql {
		a.seen = newSeenFilter()
		var lctx context.Context
		lctx, a.stopLoad = context.WithCancel(context.WithoutCancel(ctx))
		a.loading.Go(func() {
			if err := a.seen.load(lctx, db); err != nil && lctx.Err() == nil {
				log.Warn("couldn't load the antispam filter; every submission queries the index", "err", err)
			}
		})
	}
	return a, nil
}

// close stops what newAntispam started; the database stays open.
func (a *antispam) close() error {
	if a.stopLoad != nil {
		a.stopLoad()
	}
	a.loading.Wait()
	return a.lookup.Close()
}

// loadNext reads how many entries the index covers.
func (a *antispam) loadNext(ctx context.Context) error {
	var next uint64
	err := a.db.QueryRowContext(ctx, "SELECT next FROM "+antispamNextRow+" WHERE id = 0").Scan(&next)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	a.next.Store(next)
	return nil
}

// Decorator answers an entry seen before with its first index.
func (a *antispam) Decorator() func(tessera.AddFn) tessera.AddFn {
	return func(next tessera.AddFn) tessera.AddFn {
		return func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
			if a.pushback.Load() {
				return func() (tessera.Index, error) { return tessera.Index{}, tessera.ErrPushbackAntispam }
			}
			if a.seen != nil && !a.seen.mayHave(e.Identity()) {
				return next(ctx, e)
			}
			var idx uint64
			switch err := a.lookup.QueryRowContext(ctx, e.Identity()).Scan(&idx); {
			case err == nil:
				return func() (tessera.Index, error) { return tessera.Index{Index: idx, IsDup: true}, nil }
			case !errors.Is(err, sql.ErrNoRows):
				return func() (tessera.Index, error) {
					return tessera.Index{}, fmt.Errorf("couldn't read the antispam index: %w", err)
				}
			}
			return next(ctx, e)
		}
	}
}

// Follower returns the follower that fills the index; hasher turns an
// entry bundle into its entries' identity hashes.
func (a *antispam) Follower(hasher func([]byte) ([][]byte, error)) tessera.Follower {
	a.f = &follower{a: a, hasher: hasher}
	return a.f
}

type follower struct {
	a      *antispam
	hasher func([]byte) ([][]byte, error)
}

func (f *follower) Name() string { return "ctstage SQL antispam" }

// Follow indexes the log's entries until ctx ends.
func (f *follower) Follow(ctx context.Context, lr tessera.LogReader) {
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		if _, err := f.catchUp(ctx, lr); err != nil && ctx.Err() == nil {
			f.a.log.Warn("tiled antispam follower", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// EntriesProcessed is how many entries the index covers.
func (f *follower) EntriesProcessed(context.Context) (uint64, error) { return f.a.next.Load(), nil }

// catchUp indexes every integrated entry not yet indexed and returns the
// size reached.
func (f *follower) catchUp(ctx context.Context, lr tessera.LogReader) (uint64, error) {
	lr = unquiet(lr) // the size now, not the one cached for Tessera's metrics
	f.a.mu.Lock()
	defer f.a.mu.Unlock()
	for {
		next := f.a.next.Load()
		size, err := lr.IntegratedSize(ctx)
		if errors.Is(err, fs.ErrNotExist) {
			return next, nil // no tree yet
		}
		if err != nil {
			return next, err
		}
		f.a.pushback.Store(size > next+pushbackAfter)
		if next >= size {
			return next, nil
		}
		// A step ends at the tree's size or at a tile boundary: a
		// partial entry bundle exists only at the widths the log's
		// batches left, of which the integrated size is one.
		to := size
		if lim := (next + antispamBatch) / entriesPerTile * entriesPerTile; lim < size {
			to = lim
		}
		if err := f.step(ctx, lr, next, to); err != nil {
			// What the database holds is known again on the next round.
			if lerr := f.a.loadNext(ctx); lerr != nil {
				err = errors.Join(err, lerr)
			}
			return next, err
		}
	}
}

// step indexes entries [from, to) in one transaction.
func (f *follower) step(ctx context.Context, lr tessera.LogReader, from, to uint64) error {
	var hashes [][]byte
	for b := from / entriesPerTile; b*entriesPerTile < to; b++ {
		bundle, err := lr.ReadEntryBundle(ctx, b, uint8(widthAt(dataLevel, b, to)%entriesPerTile))
		if err != nil {
			return fmt.Errorf("couldn't read entry bundle %d: %w", b, err)
		}
		hs, err := f.hasher(bundle)
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", b, err)
		}
		lo, hi := max(from, b*entriesPerTile)-b*entriesPerTile, min(to, (b+1)*entriesPerTile)-b*entriesPerTile
		if uint64(len(hs)) < hi {
			return fmt.Errorf("entry bundle %d holds %d entries, want at least %d", b, len(hs), hi)
		}
		hashes = append(hashes, hs[lo:hi]...)
	}
	tx, err := f.a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Rows go insertRows to a statement: one row each was half the
	// follower's cost, in database/sql's and the driver's per-call work.
	args := make([]any, 0, 2*insertRows)
	for at := 0; at < len(hashes); at += insertRows {
		chunk := hashes[at:min(at+insertRows, len(hashes))]
		args = args[:0]
		for i, h := range chunk {
			args = append(args, h, from+uint64(at+i))
		}
		q := f.a.insertIgnore + " INTO " + antispamTable + " (hash, idx) VALUES (?, ?)" + strings.Repeat(", (?, ?)", len(chunk)-1)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	res, err := tx.ExecContext(ctx, "UPDATE "+antispamNextRow+" SET next = ? WHERE id = 0 AND next = ?", to, from)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+antispamNextRow+" (id, next) VALUES (0, ?)", to); err != nil {
			return fmt.Errorf("the antispam index moved under this follower: %w", err)
		}
	}
	if f.a.seen != nil {
		// Before the commit: a lookup that finds the row must find it
		// in the filter too (one that stays uncommitted only costs a
		// query).
		f.a.seen.add(hashes...)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	f.a.next.Store(to)
	return nil
}

// entriesPerTile is the width of a full tile (c2sp.org/tlog-tiles).
const entriesPerTile = 256
