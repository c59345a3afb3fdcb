package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/serve"
)

// TestCAUnderLogFaults: the CA on the default topology copes with its
// logs' faults as a real one must. One log unavailable, or slower than
// the per-log timeout, costs the issuance at most that timeout and the
// certificate gets its SCTs from the others; with every log of one
// operator down, issuance fails cleanly, naming the logs, and an ACME
// order goes invalid rather than hanging or answering 500; a readonly log
// is never submitted to.
func TestCAUnderLogFaults(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := serve.Start(ctx, serve.Options{DataDir: dir, Storage: "sqlite", Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0"},
		CA:   serve.CAOptions{MgmtAddr: "127.0.0.1:0", NoFinalSubmission: true},
		ACME: serve.ACMEOptions{Addr: "127.0.0.1:0", AlwaysValid: true}})
	if err != nil {
		t.Fatal(err)
	}
	fs := &faultStage{Stage: st, dir: dir}
	t.Cleanup(func() { fs.stop(t) })
	// The shards that take a 90-day certificate issued now.
	na := time.Now().AddDate(0, 0, 90).UTC()
	half := fmt.Sprintf("%dh%d", na.Year(), 1+int(na.Month()-1)/6)
	flume, tube, tubeTiles := "testflume"+half, "testtube"+half, "testtubetiles"+half
	issue := func(t *testing.T, name string) ([]string, time.Duration, error) {
		t.Helper()
		start := time.Now()
		iss, err := fs.CA.Issue(context.Background(), caRequest(t, name))
		if err != nil {
			return nil, time.Since(start), err
		}
		var urls []string
		for _, s := range iss.SCTs {
			urls = append(urls, s.Log.URL)
		}
		return urls, time.Since(start), nil
	}
	from := func(urls []string, shard string) bool {
		for _, u := range urls {
			if strings.HasSuffix(u, "/"+shard+"/") {
				return true
			}
		}
		return false
	}

	t.Run("OneUnavailable", func(t *testing.T) {
		fs.set(t, flume, "faults", `{"kind":"unavailable"}`)
		defer fs.clear(t, flume)
		for i := range 4 {
			urls, took, err := issue(t, fmt.Sprintf("u%d.example.com", i))
			if err != nil {
				t.Fatalf("issuance with %s unavailable: %v", flume, err)
			}
			if from(urls, flume) || took > 6*time.Second {
				t.Errorf("SCTs from %v in %v", urls, took)
			}
		}
	})
	t.Run("DelayOverTheDeadline", func(t *testing.T) {
		fs.set(t, tube, "faults", `{"kind":"delay","min_ms":8000}`)
		defer fs.clear(t, tube)
		for i := range 2 {
			urls, took, err := issue(t, fmt.Sprintf("d%d.example.com", i))
			if err != nil {
				t.Fatalf("issuance with %s slow: %v", tube, err)
			}
			// The per-log timeout is 5 s: a slow log costs at most that.
			if from(urls, tube) || took > 7*time.Second {
				t.Errorf("SCTs from %v in %v", urls, took)
			}
		}
	})
	t.Run("TooManyDown", func(t *testing.T) {
		fs.set(t, tube, "faults", `{"kind":"unavailable","status":500}`)
		fs.set(t, tubeTiles, "faults", `{"kind":"drop"}`)
		defer fs.clear(t, tube)
		defer fs.clear(t, tubeTiles)
		_, took, err := issue(t, "down.example.com")
		if err == nil {
			t.Fatal("issued with every log of one operator down")
		}
		for _, want := range []string{"Testtube " + na.Format("2006") + "-0", "status", "transport"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the failure does not name %q: %v", want, err)
			}
		}
		if took > 11*time.Second {
			t.Errorf("the failure took %v", took)
		}
		// ACME: the order goes invalid, promptly.
		b, err := os.ReadFile(filepath.Join(dir, "ca", "root.pem"))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(b)
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		c, err := newFlowClient(hc, fs.ACMEURL+"/directory")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.flow()
		if err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("ACME flow with operator B down: %v, want an invalid order", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("the ACME flow took %v", d)
		}
	})
	// neverFrom puts flume in state, issues six certificates (named with
	// prefix) and wants none of their SCTs from it; flume is usable after.
	neverFrom := func(t *testing.T, state, prefix string) {
		t.Helper()
		fs.set(t, flume, "state", `{"state":"`+state+`"}`)
		defer fs.set(t, flume, "state", `{"state":"usable"}`)
		for i := range 6 {
			urls, _, err := issue(t, fmt.Sprintf("%s%d.example.com", prefix, i))
			if err != nil {
				t.Fatalf("issuance with %s %s: %v", flume, state, err)
			}
			if from(urls, flume) {
				t.Errorf("SCTs %v: the CA used %s %s", urls, state, flume)
			}
		}
	}
	// Issuance safety (Chrome's log-state guidance): a qualified log is
	// used only when the usable ones cannot meet the policy.
	t.Run("QualifiedLast", func(t *testing.T) {
		neverFrom(t, "qualified", "q")
		// Both RFC 6962 logs qualified: Apple's RFC 6962 rule can only be
		// met by one of them, which the CA then takes.
		fs.set(t, flume, "state", `{"state":"qualified"}`)
		defer fs.set(t, flume, "state", `{"state":"usable"}`)
		fs.set(t, tube, "state", `{"state":"qualified"}`)
		defer fs.set(t, tube, "state", `{"state":"usable"}`)
		urls, _, err := issue(t, "q-both.example.com")
		if err != nil {
			t.Fatalf("issuance with both RFC 6962 logs qualified: %v", err)
		}
		if !from(urls, flume) && !from(urls, tube) {
			t.Errorf("SCTs %v: no RFC 6962 SCT", urls)
		}
	})
	t.Run("ReadOnly", func(t *testing.T) { neverFrom(t, "readonly", "r") })
}

// TestCAFollowsLogListFile: a CA given --log-list reads it again every
// --log-list-refresh, as a CA following a published list does. The
// stage's own log list file is the CA's list here, and the state changes
// reach the CA only through that file: with operator B's logs pending
// (which still take submissions, but a CA must not use) issuance fails,
// and once they are usable again it succeeds.
func TestCAFollowsLogListFile(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := serve.Start(ctx, serve.Options{DataDir: dir, Storage: "sqlite", Logger: testLogger(),
		Logs: serve.LogOptions{Addr: "127.0.0.1:0"},
		CA: serve.CAOptions{MgmtAddr: "127.0.0.1:0", NoFinalSubmission: true,
			LogList: filepath.Join(dir, serve.LogListFile), LogListRefresh: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	fs := &faultStage{Stage: st, dir: dir}
	t.Cleanup(func() { fs.stop(t) })
	na := time.Now().AddDate(0, 0, 90).UTC()
	half := fmt.Sprintf("%dh%d", na.Year(), 1+int(na.Month()-1)/6)
	operatorB := []string{"testtube" + half, "testtubetiles" + half}
	until := func(t *testing.T, issued bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			_, err := fs.CA.Issue(context.Background(), caRequest(t, "follow.example.com"))
			if (err == nil) == issued {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s after the log list changed, issuance still gives %v", err)
			}
		}
	}
	until(t, true)
	for _, shard := range operatorB {
		fs.set(t, shard, "state", `{"state":"pending"}`)
	}
	until(t, false)
	for _, shard := range operatorB {
		fs.set(t, shard, "state", `{"state":"usable"}`)
	}
	until(t, true)
}
