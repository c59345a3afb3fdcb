package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/testsupport/testca"
)

// stallConfig is one shard, "stall", that takes any NotAfter, with a 1s
// sth_max_age: a shard whose sequencer signs nothing is stalled after
// 2 x 1s + 5s.
const stallConfig = `
logs:
  sequencer_interval: 100ms
  sth_max_age: 1s
  operators:
  - name: Stall Operator
    shards:
    - name: stall
`

// TestMySQLWithoutDeleteStalls runs `ctstage serve` as a MySQL user set
// up by setup.sql without DELETE. add-chain still answers with an SCT,
// but the sequencer, which deletes from the Unsequenced queue, fails on
// every pass: /healthz must turn 503 and name the shard within the stall
// bound instead of answering 200 while nothing is integrated.
func TestMySQLWithoutDeleteStalls(t *testing.T) {
	admin := mysqlAdmin(t)
	script, err := os.ReadFile("../deployments/mysql/setup.sql")
	if err != nil {
		t.Fatal(err)
	}
	const grant = "SELECT, INSERT, UPDATE, DELETE, CREATE"
	if !strings.Contains(string(script), grant) {
		t.Fatalf("setup.sql no longer grants %q: update this test", grant)
	}
	noDelete := strings.Replace(string(script), grant, "SELECT, INSERT, UPDATE, CREATE", 1)
	spec := setupMySQL(t, admin, "ctstage_stall_", noDelete)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte(stallConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, root := newCA(t)
	s := startServer(t, "--data", filepath.Join(dir, "data"), "--storage", spec, "--config", cfg, "--extra-roots", root)
	submitStall(t, s, ca)

	submitted := time.Now()
	var code int
	var body string
	for time.Since(submitted) < 20*time.Second {
		code, body = healthz(t, s)
		if code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "shard stall stalled") {
		t.Fatalf("/healthz %s after add-pre-chain with a sequencer that cannot DELETE: %d %q, want 503 naming shard stall\n%s",
			time.Since(submitted).Round(time.Second), code, body, tail(s.stderr.String(), 4000))
	}
	if !strings.Contains(s.stderr.String(), "shard stalled") {
		t.Errorf("no stall warning in the log\n%s", tail(s.stderr.String(), 4000))
	}
}

// submitStall posts one precertificate chain from ca to the shard "stall" and
// wants an SCT.
func submitStall(t *testing.T, s *server, ca *testca.CA) {
	t.Helper()
	chain, err := ca.Leaf("stall.example.com", time.Now().AddDate(0, 1, 0), true)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := http.Post("http://"+s.addr+"/stall/ct/v1/add-pre-chain", "application/json", strings.NewReader(string(mustJSON(t, map[string]any{"chain": chain}))))
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	if b, _ := io.ReadAll(rsp.Body); rsp.StatusCode != http.StatusOK {
		t.Fatalf("add-pre-chain: %d %s", rsp.StatusCode, b)
	}
}

func healthz(t *testing.T, s *server) (int, string) {
	t.Helper()
	rsp, err := http.Get("http://" + s.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return rsp.StatusCode, string(b)
}

// tiledStallConfig is two tiled shards: "tstall", whose integration the
// test stops, and "tidle", which stays idle.
const tiledStallConfig = `
logs:
  operators:
  - name: Stall Operator
    shards:
    - {name: tstall, type: tiled}
    - {name: tidle, type: tiled}
`

// TestTiledStallFromQueueAge stops a tiled shard's integration for real
// (the test holds the fcntl lock Tessera's POSIX sequencer takes on
// .state/treeState.lock, as a second process on the same directory
// would) while a submission waits: /healthz turns 503 naming that shard
// (and not the idle one) within seconds of the submission, from its
// queue age, and recovers once the lock is let go and the submission
// gets its SCT.
func TestTiledStallFromQueueAge(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte(tiledStallConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, root := newCA(t)
	data := filepath.Join(dir, "data")
	s := startServer(t, "--data", data, "--config", cfg, "--extra-roots", root)
	if code, body := healthz(t, s); code != http.StatusOK {
		t.Fatalf("/healthz of an idle stage: %d %s", code, body)
	}
	lock, err := os.OpenFile(filepath.Join(data, "tiled", "tstall", ".state", "treeState.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	flock := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(lock.Fd(), syscall.F_SETLKW, &flock); err != nil {
		t.Fatal(err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			flock.Type = syscall.F_UNLCK
			if err := syscall.FcntlFlock(lock.Fd(), syscall.F_SETLK, &flock); err != nil {
				t.Error(err)
			}
		}
	}
	defer unlock() // before the server is stopped: its shutdown integrates

	chain, err := ca.Leaf("tstall.example.com", time.Now().AddDate(0, 1, 0), false)
	if err != nil {
		t.Fatal(err)
	}
	added := make(chan int, 1)
	submitted := time.Now()
	go func() {
		c := &http.Client{Timeout: 90 * time.Second}
		rsp, err := c.Post("http://"+s.addr+"/tstall/ct/v1/add-chain", "application/json", strings.NewReader(string(mustJSON(t, map[string]any{"chain": chain}))))
		if err != nil {
			added <- 0
			return
		}
		rsp.Body.Close()
		added <- rsp.StatusCode
	}()
	var code int
	var body string
	for time.Since(submitted) < 30*time.Second {
		if code, body = healthz(t, s); code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	took := time.Since(submitted)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "tiled shard tstall stalled") || strings.Contains(body, "tidle") {
		t.Fatalf("/healthz %s after a submission to a shard that cannot integrate: %d %q, want 503 naming tstall only\n%s",
			took.Round(time.Second), code, body, tail(s.stderr.String(), 4000))
	}
	t.Logf("stall reported %s after the submission", took.Round(100*time.Millisecond))
	// The watch loop, once a second, logs it and sets the metric.
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(s.stderr.String(), "tiled shard stalled"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no stall warning in the log\n%s", tail(s.stderr.String(), 4000))
			break
		}
	}

	unlock()
	if got := <-added; got != http.StatusOK {
		t.Fatalf("the waiting submission got %d once the lock was let go", got)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		code, body = healthz(t, s)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d %q after the stall ended", code, body)
		}
	}
}
