package ctlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/trillian/types"

	"github.com/ctstage/ctstage/ctlog/faults"
)

// A shard is stalled when its sequencer has made no progress for longer
// than stallBound. The signal is the timestamp of the shard's newest signed
// tree root, which watchRoots and Ready read anyway (one indexed read per
// shard): Trillian's sequencer signs a new root on every pass that
// integrates entries, and on an idle tree once the root is sth_max_age old
// (Trillian's MaxRootDuration). A healthy shard's root is therefore never
// much older than sth_max_age, busy or idle, while a sequencer whose
// transactions fail (a storage fault, a missing DELETE privilege) signs
// nothing and its root only ages. Trillian's own counters
// (trillian_failed_signing_runs) count failed passes but are neither per
// tree nor reset on success, and counting queued SCTs would cost every
// add-chain a decode; the root's age needs neither.

// stallMargin is added to twice sth_max_age: room for a slow pass under load.
const stallMargin = 5 * time.Second

// stallBound is how long a shard may go without a new root before it counts
// as stalled.
func (c *Config) stallBound() time.Duration { return 2*c.STHMaxAge + stallMargin }

// sinceProgress is how long shard has gone without a new root at now:
// counted from the newest root, or from the start of Run when that is
// later, so that a root left old by downtime is no stall. Zero before Run.
func (s *Server) sinceProgress(root *types.LogRootV1, now time.Time) time.Duration {
	started := s.runStart.Load()
	if started == 0 {
		return 0
	}
	last := max(int64(root.TimestampNanos), started)
	return now.Sub(time.Unix(0, last))
}

// queueStallBound is how long a fresh SCT may go without a tree head
// signed after it before its shard counts as stalled: the sequencer
// integrates within about a second.
const queueStallBound = 10 * time.Second

// stalled reports whether shard sh with root is stalled at now, and for
// how long it has gone without progress. A shard that issued a fresh SCT
// (not a duplicate's) and has signed no tree head since is stalled once
// that SCT is queueStallBound old: a stall under load shows in seconds.
// An idle shard issues no SCTs, so only the slow bound (no tree head for
// 2 x sth_max_age + 5s) applies to it, and no false alarm comes from
// idleness. A shard under the no_integrate fault is stalled on purpose
// and never counts.
func (s *Server) stalled(sh *shard, root *types.LogRootV1, now time.Time) (bool, time.Duration) {
	f := s.byName[sh.cfg.Name]
	if _, ok := f.faults.Get(faults.NoIntegrate); ok {
		return false, 0
	}
	rootMS := int64(root.TimestampNanos / 1e6)
	if q := f.queued.Load(); q != 0 {
		if rootMS >= q {
			f.queued.CompareAndSwap(q, 0)
		} else if d := now.Sub(time.UnixMilli(q)); d > queueStallBound && s.runStart.Load() != 0 {
			return true, d
		}
	}
	d := s.sinceProgress(root, now)
	return d > s.opts.Config.stallBound(), d
}

// watchStall sets ctstage_log_stalled for sh, whose newest root is root,
// and logs once when it becomes stalled and once when it recovers; was is
// its state at the last call. It returns the new state.
func (s *Server) watchStall(sh *shard, root *types.LogRootV1, was bool) bool {
	stalled, d := s.stalled(sh, root, time.Now())
	if stalled != was {
		if stalled {
			s.log.Warn("shard stalled: its sequencer has signed no tree head; entries are not being integrated",
				"shard", sh.cfg.Name, "since", d.Round(time.Second), "bound", s.opts.Config.stallBound())
		} else {
			s.log.Info("shard recovered: its sequencer signs tree heads again", "shard", sh.cfg.Name, "tree_size", root.TreeSize)
		}
	}
	s.setStalled(sh.cfg.Name, stalled)
	return stalled
}

// setStalled sets ctstage_log_stalled for a shard of either kind.
func (s *Server) setStalled(shard string, stalled bool) {
	v := 0.0
	if stalled {
		v = 1
	}
	s.metrics.stalled.WithLabelValues(shard).Set(v)
}

// Ready reports whether every shard's tree answers and no shard is stalled:
// an RFC 6962 shard that has signed no tree head for 2 x sth_max_age + 5s
// while Run runs (see stallBound), or none for 10 s after a fresh SCT; a
// tiled shard with a submission waiting 10 s and no checkpoint published
// meanwhile (tiled.Log.Stalled). The error names each failing shard.
//
// A process without RoleSequencer does not count RFC 6962 stalls: its
// trees are another process's to integrate, and a frontend that takes
// submissions while the sequencer is away (an etcd outage) keeps its
// promise, which is integration within the MMD. Made unready, every
// frontend would leave the load balancer at once. The stall still shows
// in its log and in ctstage_log_stalled; the sequencers' own Ready
// reports it.
func (s *Server) Ready(ctx context.Context) error {
	var errs []error
	now := time.Now()
	for _, sh := range s.shards {
		root, err := s.latestRoot(ctx, sh)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", sh.cfg.Name, err))
			continue
		}
		if !s.opts.Role.has(RoleSequencer) {
			continue
		}
		if stalled, d := s.stalled(sh, root, now); stalled {
			errs = append(errs, fmt.Errorf("shard %s stalled: no new tree head for %s, entries are not being integrated",
				sh.cfg.Name, d.Round(time.Second)))
		}
	}
	for _, t := range s.tiled {
		if err := t.log.Ready(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tiled shard %s: %w", t.cfg.Name, err))
			continue
		}
		if stalled, d := t.log.Stalled(now, queueStallBound); stalled {
			errs = append(errs, fmt.Errorf("tiled shard %s stalled: a submission has waited %s and no checkpoint was published meanwhile",
				t.cfg.Name, d.Round(time.Second)))
		}
	}
	return errors.Join(errs...)
}

// watchTiledStall is watchStall for a tiled shard.
func (s *Server) watchTiledStall(t *tiledShard, was bool) bool {
	stalled, d := t.log.Stalled(time.Now(), queueStallBound)
	if stalled != was {
		if stalled {
			s.log.Warn("tiled shard stalled: a submission waits and no checkpoint is published; entries are not being integrated",
				"shard", t.cfg.Name, "since", d.Round(time.Second), "bound", queueStallBound)
		} else {
			s.log.Info("tiled shard recovered: checkpoints are published again", "shard", t.cfg.Name)
		}
	}
	s.setStalled(t.cfg.Name, stalled)
	return stalled
}
