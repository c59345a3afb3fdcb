package dashboard

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkPages renders each page over an index of 100,000 entries
// (scripts/bench-dashboard.sh measures them over HTTP on real logs,
// the certificate's page included).
func BenchmarkPages(b *testing.B) {
	d, err := New(Options{Logs: &fakeLogs{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	si := &shardIndex{}
	d.index.shards["s"], d.index.order = si, []string{"s"}
	now := time.Now()
	for i := range 100_000 {
		d.index.add(si, &record{Shard: "s", Index: uint64(i), Timestamp: now, IntegratedBy: now.Add(time.Second),
			Names: []string{fmt.Sprintf("b%d.%x.loadgen.ctstage.test", i, i/1000)}, Serial: fmt.Sprintf("%x", 0x10000+i),
			Issuer: "CN=(STAGING) ctstage Artificial Apricot R3", SHA256: fmt.Sprintf("%064x", i)})
	}
	h := d.Handler()
	for _, path := range []string{"/", "/shard/s", "/shard/s?page=2000", "/search?q=loadgen.ctstage.test",
		"/search?q=b99999.63.loadgen.ctstage.test", "/search?q=1869f", "/search?q=" + fmt.Sprintf("%064x", 99_999), "/faults"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d", path, w.Code)
				}
			}
		})
	}
}
