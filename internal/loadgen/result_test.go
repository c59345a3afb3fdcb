package loadgen

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func ms(vs ...int) []time.Duration {
	ds := make([]time.Duration, len(vs))
	for i, v := range vs {
		ds[i] = time.Duration(v) * time.Millisecond
	}
	return ds
}

func TestPercentile(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one p50", ms(7), 50, 7 * time.Millisecond},
		{"one p99", ms(7), 99, 7 * time.Millisecond},
		{"two p50 is the lower", ms(1, 2), 50, 1 * time.Millisecond},
		{"two p51 is the upper", ms(1, 2), 51, 2 * time.Millisecond},
		{"odd p50 is the median", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"1..100 p50", ms(hundred...), 50, 50 * time.Millisecond},
		{"1..100 p99", ms(hundred...), 99, 99 * time.Millisecond},
		{"1..100 p99.5", ms(hundred...), 99.5, 100 * time.Millisecond},
		{"1..100 max", ms(hundred...), 100, 100 * time.Millisecond},
		{"tiny p is the min", ms(3, 4, 5), 0.001, 3 * time.Millisecond},
		{"ten p99 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"negatives", ms(-5, -1, 2), 50, -1 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.ds, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.ds, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	got := summarize(ms(9, 1, 5, 3, 7))
	want := Summary{N: 5, P50: Millis(5 * time.Millisecond), P99: Millis(9 * time.Millisecond), Max: Millis(9 * time.Millisecond)}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
}

func TestCountsAreBounded(t *testing.T) {
	c := Counts{}
	for i := range maxErrorKinds + 5 {
		c.add(fmt.Sprint("error ", i), 1)
	}
	c.add("error 0", 2)
	if len(c) != maxErrorKinds+1 || c[otherErrors] != 5 || c["error 0"] != 3 {
		t.Errorf("counts = %v, want %d kinds, 5 others, 3 of error 0", c, maxErrorKinds)
	}
}

func TestResultJSONAndReport(t *testing.T) {
	r := &Result{
		LogURL: "http://log/", Clients: 2, Submitted: 3, Accepted: 2, Failed: 1,
		Errors:  Counts{"HTTP 400: Bad Request": 1},
		Elapsed: Millis(1500 * time.Millisecond), AcceptedPerSec: 1.333,
		Latency: Summary{N: 2, P50: Millis(1234567 * time.Nanosecond)},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"elapsed_ms":1500`, `"p50_ms":1.235`, `"errors":{"HTTP 400: Bad Request":1}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	for _, want := range []string{"accepted 2 (1.3/s), failed 1", "p50 1.2ms", "     1  HTTP 400: Bad Request"} {
		if !strings.Contains(r.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, r)
		}
	}
}

func TestSetServerCPU(t *testing.T) {
	ms := func(f float64) Millis { return Millis(f * float64(time.Millisecond)) }
	for _, tc := range []struct {
		name                  string
		cpu, idle             Millis
		elapsed               time.Duration
		accepted              int
		wantPer, wantOverIdle Millis
	}{
		// 2 s of load at 1,000 accepted: 900 ms of CPU, of which 2 s at
		// 50 ms/s were the process's idle.
		{"idle subtracted", ms(900), ms(50), 2 * time.Second, 1000, ms(0.9), ms(0.8)},
		{"no idle sample", ms(900), 0, 2 * time.Second, 1000, ms(0.9), 0},
		{"idle above the load's CPU", ms(50), ms(50), 2 * time.Second, 10, ms(5), 0},
		{"nothing accepted", ms(900), ms(50), 2 * time.Second, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Accepted: tc.accepted}
			r.setServerCPU(tc.cpu, tc.idle, tc.elapsed)
			if r.ServerCPU != tc.cpu || r.ServerIdleCPU != tc.idle {
				t.Errorf("ServerCPU %v, ServerIdleCPU %v; want %v, %v", r.ServerCPU, r.ServerIdleCPU, tc.cpu, tc.idle)
			}
			if r.ServerCPUPerAccepted != tc.wantPer || r.ServerCPUPerAcceptedOverIdle != tc.wantOverIdle {
				t.Errorf("per accepted %v, over idle %v; want %v, %v",
					r.ServerCPUPerAccepted, r.ServerCPUPerAcceptedOverIdle, tc.wantPer, tc.wantOverIdle)
			}
		})
	}
}
