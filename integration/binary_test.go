package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ctstageBinary builds cmd/ctstage once per test run.
func ctstageBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ctstage-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ctstage")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/ctstage").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// isolationArgs keep a test's `ctstage serve` off the fixed default ports
// of the management, ACME and DNS listeners, which another process (a
// developer's own ctstage, a parallel test) may hold.
var isolationArgs = []string{"--mgmt-addr=", "--acme-addr=", "--dns-addr=", "--dns-mgmt-addr="}

// server is a `ctstage serve` process.
type server struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	done   chan error
}

func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{addr: addr, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(ctstageBinary(t), append(append([]string{"serve", "--log-addr", addr}, isolationArgs...), args...)...)
	s.cmd.Stderr = &syncWriter{w: s.stderr}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	s.waitHealthy(t)
	return s
}

func (s *server) waitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("ctstage serve exited: %v\n%s", err, s.stderr)
		default:
		}
		rsp, err := http.Get("http://" + s.addr + "/healthz")
		if err == nil {
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ctstage serve not healthy after 90 s\n%s", s.stderr)
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// TestServeBinary runs the binary as a user would: the files under --data,
// the log list, metrics, a request log line, and a clean exit on SIGTERM.
func TestServeBinary(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, "--data", data)

	b, err := os.ReadFile(filepath.Join(data, "log_list.json"))
	if err != nil {
		t.Fatal(err)
	}
	ll, err := loglist3.NewFromJSON(b)
	if err != nil {
		t.Fatalf("log_list.json: %v", err)
	}
	if n := len(ll.Operators); n != 2 {
		t.Errorf("log_list.json: %d operators", n)
	}
	keys, _ := filepath.Glob(filepath.Join(data, "logs", "*.key"))
	if len(keys) < 6 {
		t.Errorf("%d shard keys under --data/logs, want at least 6", len(keys))
	}
	for _, k := range append(keys, mustGlob(t, filepath.Join(data, "ca", "*.key"))...) {
		fi, err := os.Stat(k)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", k, fi.Mode().Perm(), err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "ca", "root.pem")); err != nil {
		t.Error(err)
	}
	rsp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	for _, m := range []string{"ctstage_log_tree_size{", "ctstage_log_sth_age_seconds{", "ctstage_log_info{"} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// A second process on the same --data is refused.
	out, err := exec.Command(ctstageBinary(t), append([]string{"serve", "--data", data, "--log-addr", "127.0.0.1:0"}, isolationArgs...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Errorf("second serve on the same --data: %v\n%s", err, out)
	}

	s.term(t)
	logs := s.stderr.String()
	if !strings.Contains(logs, "msg=request") || !strings.Contains(logs, "path=/metrics") {
		t.Errorf("no request log line for /metrics:\n%s", logs)
	}
	if strings.Contains(logs, "key") && strings.Contains(logs, "PRIVATE") {
		t.Errorf("a private key appeared in the logs")
	}
}

func mustGlob(t testing.TB, pattern string) []string {
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestServeUsage checks exit codes and messages for bad invocations.
func TestServeUsage(t *testing.T) {
	bin := ctstageBinary(t)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("not a directory"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"NoCommand", nil, 2, "usage"},
		{"UnknownCommand", []string{"frobnicate"}, 2, "unknown command"},
		{"UnknownFlag", []string{"serve", "--bogus"}, 2, "bogus"},
		{"ExtraArgs", []string{"serve", "extra"}, 2, "unexpected"},
		{"BadStorage", []string{"serve", "--data", t.TempDir(), "--log-addr", "127.0.0.1:0", "--storage", "postgres://x"}, 1, "storage"},
		{"BadMySQLSpec", []string{"serve", "--data", t.TempDir(), "--log-addr", "127.0.0.1:0", "--storage", "mysql://nohost"}, 1, "mysql://USER:PASS@HOST:PORT/DB"},
		{"MissingConfig", []string{"serve", "--data", t.TempDir(), "--config", "/nonexistent.yaml"}, 1, "config"},
		{"MissingExtraRoots", []string{"serve", "--data", t.TempDir(), "--log-addr", "127.0.0.1:0", "--extra-roots", "/nonexistent.pem"}, 1, "extra-roots"},
		{"DataIsAFile", []string{"serve", "--data", file, "--log-addr", "127.0.0.1:0"}, 1, "data"},
		{"BadLogLevel", []string{"serve", "--log-level", "loud"}, 2, "log-level"},
		{"DebugAddrNotLoopback", []string{"serve", "--data", t.TempDir(), "--debug-addr", "0.0.0.0:0"}, 2, "--debug-addr-on-any-interface-unsafe"},
		{"DNSAddrNotLoopback", []string{"serve", "--data", t.TempDir(), "--log-addr", "127.0.0.1:0", "--dns-addr", "0.0.0.0:0"}, 1, "--dns-addr 0.0.0.0:0"},
		{"MgmtAddrNotLoopback", []string{"serve", "--data", t.TempDir(), "--log-addr", "127.0.0.1:0", "--mgmt-addr", "0.0.0.0:0"}, 1, "--mgmt-addr 0.0.0.0:0"},
		{"Help", []string{"serve", "-h"}, 0, "-extra-roots"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, tc.args...).CombinedOutput()
			code := exitCode(t, err)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(tc.want)) {
				t.Errorf("output does not mention %q:\n%s", tc.want, out)
			}
		})
	}
}

// term stops the process with SIGTERM and expects a clean exit.
func (s *server) term(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, tail(s.stderr.String(), 2000))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after SIGTERM")
	}
}

// exitCode is the exit status carried by err from exec's Run or Output: 0
// for nil; a command that could not run at all fails the test.
func exitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}
