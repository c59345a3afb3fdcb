package loadgen

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ctstage/ctstage/sctverify"
)

// checkTiled is measureMerge for a Static CT API log, which returns an SCT
// only once a published checkpoint covers the entry: there is no merge
// delay to measure, and what is checked instead is that every SCT carries
// a leaf_index within the checkpoint read after the load (its signature
// verified), and that the entries of VerifySample of them (1,000 when 0,
// evenly spread) are proven at their leaf_index from the tiles.
func (r *runner) checkTiled(ctx context.Context, res *Result) error {
	l, err := sctverify.NewLog(r.cfg.LogURL, r.cfg.MonitoringURL, r.cfg.LogPublicKey, true)
	if err != nil {
		return fmt.Errorf("a tiled log needs its public key (give --log-list) to check the checkpoint: %w", err)
	}
	v := &sctverify.Verifier{HTTPClient: r.hc}
	cp, _, err := v.Checkpoint(ctx, l)
	if err != nil {
		return err
	}
	res.EndSize = cp.TreeSize
	var accepted []int
	for i, o := range r.out {
		if o.sct == nil {
			continue
		}
		idx, err := sctverify.LeafIndex(o.sct.Extensions)
		switch {
		case err != nil:
			res.NotIntegrated++
			res.Errors.add("SCT without a valid leaf_index", 1)
		case idx >= cp.TreeSize:
			res.NotIntegrated++
			res.Errors.add("leaf_index beyond the checkpoint read after the load", 1)
		default:
			accepted = append(accepted, i)
		}
	}
	sample := accepted
	if n := cmp.Or(r.cfg.VerifySample, tiledProofs); n < len(accepted) {
		sample = make([]int, n)
		for k := range sample {
			sample[k] = accepted[k*len(accepted)/n]
		}
	}
	proven := map[int]bool{}
	for _, i := range sample {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sct := r.out[i].sct
		h, err := r.pcs[i].leafHash(sct)
		if err != nil {
			return err
		}
		idx, _ := sctverify.LeafIndex(sct.Extensions)
		if err := v.ProveTiledInclusion(ctx, l, cp, idx, h); err != nil {
			res.NotIntegrated++
			res.Errors.add("entry not at its leaf_index in the tiles", 1)
			continue
		}
		proven[i] = true
	}
	res.Integrated = len(accepted) - (len(sample) - len(proven))
	res.InclusionProven = len(proven)
	return nil
}

// tiledProofs is how many entries checkTiled proves from the tiles when
// Config.VerifySample is 0.
const tiledProofs = 1000

// processCPU reads the user and system CPU time a process has used so
// far, from /proc/PID/stat (Linux), in clock ticks of 10 ms.
// idleCPU samples the CPU of process pid for d and returns it per second
// of wall time; 0 when d is negative.
func idleCPU(ctx context.Context, pid int, d time.Duration) (Millis, error) {
	if d < 0 {
		return 0, nil
	}
	c0, err := processCPU(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	c1, err := processCPU(pid)
	if err != nil {
		return 0, err
	}
	return Millis(float64(c1-c0) / time.Since(t0).Seconds()), nil
}

func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("couldn't read the server's CPU time: %w", err)
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	// Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
