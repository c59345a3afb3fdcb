package httpserver

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestInFlightLimit: beyond MaxInFlight requests at once, a request is
// answered 503 with Retry-After at once; once one finishes, the next is
// served.
func TestInFlightLimit(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered.Done()
			<-release
		}
		io.WriteString(w, "ok")
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(h, Limits{MaxInFlight: 2}, slog.New(slog.DiscardHandler))
	go srv.Serve(Listener(lis, Limits{}))
	defer srv.Close()
	base := "http://" + lis.Addr().String()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if rsp, err := http.Get(base + "/block"); err == nil {
				rsp.Body.Close()
			}
		})
	}
	entered.Wait()
	start := time.Now()
	rsp, err := http.Get(base + "/other")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	ra, _ := strconv.Atoi(rsp.Header.Get("Retry-After"))
	if rsp.StatusCode != http.StatusServiceUnavailable || ra < 1 || ra > 3 {
		t.Errorf("third request in flight: %d, Retry-After %q; want 503 with 1-3 s", rsp.StatusCode, rsp.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refusal took %s: it must not wait for a slot", d)
	}
	close(release)
	wg.Wait()
	rsp, err = http.Get(base + "/other")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		t.Errorf("after the slots freed: %d", rsp.StatusCode)
	}
}
