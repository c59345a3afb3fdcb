package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
