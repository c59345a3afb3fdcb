package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured. Its JSON form is what `ctstage bench
// --json` prints; durations are in milliseconds there.
type Result struct {
	LogURL     string  `json:"log_url"`
	Clients    int     `json:"clients"`
	TargetRate float64 `json:"target_rate,omitempty"` // submissions/s; 0: as fast as possible

	Planned        int       `json:"planned"`          // precertificates generated (Config.Total)
	Submitted      int       `json:"submitted"`        // submissions attempted
	Accepted       int       `json:"accepted"`         // submissions that returned an SCT
	Failed         int       `json:"failed"`           // Submitted-Accepted, plus NotIntegrated and InvalidSCTs
	Errors         Counts    `json:"errors,omitempty"` // failures by message
	Retries        int64     `json:"retries"`          // requests ct-go's client retried (503, 429, transport errors)
	Started        time.Time `json:"started"`          // the first submission
	Elapsed        Millis    `json:"elapsed_ms"`       // first submission to last answer
	AcceptedPerSec float64   `json:"accepted_per_sec"` // Accepted / Elapsed
	Latency        Summary   `json:"latency"`          // of accepted submissions, retries included

	MergeDelay    Summary `json:"merge_delay"`    // first STH that includes the entry, minus the SCT's timestamp
	Integrated    int     `json:"integrated"`     // accepted entries found in the log
	NotIntegrated int     `json:"not_integrated"` // accepted entries not found within MergeWait
	StartSize     uint64  `json:"start_tree_size"`
	EndSize       uint64  `json:"end_tree_size"`
	STHs          int     `json:"sths_observed"` // distinct STHs seen
	STHErrors     int     `json:"sth_errors"`    // failed get-sth polls

	SCTsVerified int `json:"scts_verified"` // SCT signatures checked against LogPublicKey
	InvalidSCTs  int `json:"invalid_scts"`  // of those, how many failed

	// Tiled is set for a Static CT API log: no STH is polled and there is
	// no merge delay (the SCT comes after the checkpoint); InclusionProven
	// entries were proven at their leaf_index from the tiles.
	Tiled           bool `json:"tiled,omitempty"`
	InclusionProven int  `json:"inclusion_proven,omitempty"`

	// ServerCPU is the CPU time (user+system) the server process of
	// Config.ServerPID used from the first submission to the last answer,
	// and ServerCPUPerAccepted that divided by Accepted; zero without it.
	ServerCPU            Millis `json:"server_cpu_ms,omitempty"`
	ServerCPUPerAccepted Millis `json:"server_cpu_per_accepted_ms,omitempty"`
	// ServerIdleCPU is the server's CPU per second of wall time before
	// the load, with nothing submitted (Config.ServerIdle), and
	// ServerCPUPerAcceptedOverIdle the CPU per accepted submission above
	// that: ServerCPU less ServerIdleCPU for Elapsed, over Accepted. The
	// difference between the two per-submission figures is the idle cost
	// of the process spread over the submissions, which depends on the
	// rate and on how many other shards the process runs.
	ServerIdleCPU                Millis `json:"server_idle_cpu_ms_per_s,omitempty"`
	ServerCPUPerAcceptedOverIdle Millis `json:"server_cpu_per_accepted_over_idle_ms,omitempty"`
}

// setServerCPU records the server's CPU during the load, given its idle
// rate (CPU per second) before.
func (r *Result) setServerCPU(cpu, idle Millis, elapsed time.Duration) {
	r.ServerCPU, r.ServerIdleCPU = cpu, idle
	if r.Accepted == 0 {
		return
	}
	r.ServerCPUPerAccepted = cpu / Millis(r.Accepted)
	if idle > 0 {
		over := cpu - Millis(float64(idle)*elapsed.Seconds())
		r.ServerCPUPerAcceptedOverIdle = max(over, 0) / Millis(r.Accepted)
	}
}

// OK reports whether the run had at least one accepted submission and no
// failure of any kind.
func (r *Result) OK() bool { return r.Accepted > 0 && r.Failed == 0 }

// Counts counts failures by message.
type Counts map[string]int

// maxErrorKinds bounds Counts, in case messages carry per-request details.
const maxErrorKinds = 20

const otherErrors = "other errors"

func (c Counts) add(msg string, n int) {
	if _, ok := c[msg]; !ok && len(c) >= maxErrorKinds {
		msg = otherErrors
	}
	c[msg] += n
}

// Millis is a duration that JSON shows in milliseconds.
type Millis time.Duration

// MarshalJSON writes the duration in milliseconds, to the microsecond.
func (m Millis) MarshalJSON() ([]byte, error) {
	return json.Marshal(math.Round(float64(m)/1e3) / 1e3)
}

func (m Millis) String() string { return time.Duration(m).String() }

// Summary is a distribution's percentiles by the nearest-rank method.
type Summary struct {
	N   int    `json:"n"`
	P50 Millis `json:"p50_ms"`
	P99 Millis `json:"p99_ms"`
	Max Millis `json:"max_ms"`
}

// summarize sorts ds and summarizes them.
func summarize(ds []time.Duration) Summary {
	slices.Sort(ds)
	return Summary{
		N:   len(ds),
		P50: Millis(percentile(ds, 50)),
		P99: Millis(percentile(ds, 99)),
		Max: Millis(percentile(ds, 100)),
	}
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted:
// the smallest value with at least p% of the values at or below it. It is 0
// for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// String is the short human-readable report.
func (r *Result) String() string {
	var b strings.Builder
	r.WriteReport(&b)
	return b.String()
}

// WriteReport writes the short human-readable report to w.
func (r *Result) WriteReport(w io.Writer) error {
	pace := "as fast as possible"
	if r.TargetRate > 0 {
		pace = fmt.Sprintf("target %.0f/s", r.TargetRate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "log %s, %d clients, %s\n", r.LogURL, r.Clients, pace)
	fmt.Fprintf(&b, "submitted %d of %d in %s: accepted %d (%.1f/s), failed %d, retried %d\n",
		r.Submitted, r.Planned, round(r.Elapsed), r.Accepted, r.AcceptedPerSec, r.Failed, r.Retries)
	if !r.Started.IsZero() {
		// To the millisecond, so that loads run side by side can be put
		// on one time line (scripts/bench-scaleout.sh).
		end := r.Started.Add(time.Duration(r.Elapsed))
		fmt.Fprintf(&b, "load from %s to %s UTC\n", r.Started.Format("15:04:05.000"), end.Format("15:04:05.000"))
	}
	fmt.Fprintf(&b, "latency      p50 %-9s p99 %-9s max %s\n", round(r.Latency.P50), round(r.Latency.P99), round(r.Latency.Max))
	if r.Tiled {
		fmt.Fprintf(&b, "tiled log: every SCT after its checkpoint; %d of %d accepted within the checkpoint of %d, %d proven from the tiles\n",
			r.Integrated, r.Accepted, r.EndSize, r.InclusionProven)
	} else {
		fmt.Fprintf(&b, "merge delay  p50 %-9s p99 %-9s max %s\n", round(r.MergeDelay.P50), round(r.MergeDelay.P99), round(r.MergeDelay.Max))
		fmt.Fprintf(&b, "integrated %d of %d accepted; tree %d -> %d; %d STHs observed",
			r.Integrated, r.Accepted, r.StartSize, r.EndSize, r.STHs)
		if r.STHErrors > 0 {
			fmt.Fprintf(&b, ", %d get-sth errors", r.STHErrors)
		}
		b.WriteString("\n")
	}
	if r.ServerCPU > 0 {
		fmt.Fprintf(&b, "server CPU %s, %s per accepted submission\n", round(r.ServerCPU), round(r.ServerCPUPerAccepted))
		if r.ServerIdleCPU > 0 {
			fmt.Fprintf(&b, "server idle %s of CPU per second before the load; above it, %s per accepted submission\n",
				round(r.ServerIdleCPU), round(r.ServerCPUPerAcceptedOverIdle))
		}
	}
	if r.SCTsVerified > 0 {
		fmt.Fprintf(&b, "SCT signatures: %d verified, %d invalid\n", r.SCTsVerified, r.InvalidSCTs)
	} else {
		b.WriteString("SCT signatures: not verified (no log public key)\n")
	}
	keys := slices.SortedFunc(maps.Keys(r.Errors), func(a, b string) int {
		return cmp.Or(cmp.Compare(r.Errors[b], r.Errors[a]), cmp.Compare(a, b))
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "  %6d  %s\n", r.Errors[k], k)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func round(m Millis) time.Duration {
	d := time.Duration(m)
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
