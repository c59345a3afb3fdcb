package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"
)

// TestRouteKlog: klog goes to the logger of the latest RouteKlog, Info
// demoted to Debug, and a second RouteKlog while klog is in use from
// other goroutines does not race (run under -race in .ci/run).
func TestRouteKlog(t *testing.T) {
	var a, b bytes.Buffer
	RouteKlog(slog.New(slog.NewTextHandler(&a, &slog.HandlerOptions{Level: slog.LevelInfo})))
	klog.ErrorS(nil, "to a")
	klog.InfoS("chatter")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				klog.V(2).InfoS("quiet")
			}
		})
	}
	RouteKlog(slog.New(slog.NewTextHandler(&b, nil)))
	wg.Wait()
	klog.ErrorS(nil, "to b")
	klog.Flush()
	if !strings.Contains(a.String(), "to a") || strings.Contains(a.String(), "to b") {
		t.Errorf("first logger got %q", a.String())
	}
	if strings.Contains(a.String(), "chatter") {
		t.Errorf("klog Info was not demoted to Debug: %q", a.String())
	}
	if !strings.Contains(b.String(), "to b") {
		t.Errorf("second logger got %q", b.String())
	}
}
