// Package testenv gives tests the outside services they need, with the
// project's rule for a missing one: skip loudly on a developer's machine,
// fail under CI=true.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // MySQL driver
)

// MySQLEnv names the variable that points tests at a MySQL server, as
// "USER:PASS@HOST:PORT". The user needs rights to create and drop
// databases named ctstage_test_*. Default: ctstage:ctstage@127.0.0.1:3306,
// which .ci/run creates.
const MySQLEnv = "CTSTAGE_TEST_MYSQL"

// CI reports whether the tests run in CI, where nothing may be skipped.
func CI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test loudly, or fails it under CI=true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("CI=true and %s", msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", t.Name(), msg)
	t.Skip(msg)
}

// MySQL creates a fresh, empty database for the test and returns a
// --storage spec for it ("mysql://USER:PASS@HOST:PORT/DB"). The database,
// and the tiled shards' databases named after it (DB_tiled_*), are
// dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	server := os.Getenv(MySQLEnv)
	if server == "" {
		server = "ctstage:ctstage@127.0.0.1:3306"
	}
	return Database(t, server)
}

// Database is MySQL on server ("USER[:PASS]@HOST:PORT"), e.g. a
// MariaDB.Server.
func Database(t testing.TB, server string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", server[:len(server)-len(hostPart(server))]+"tcp("+hostPart(server)+")/")
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		Unavailable(t, "no MySQL at %s (set %s; .ci/run creates the user): %v", server, MySQLEnv, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "ctstage_test_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("couldn't create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		db.Exec("DROP DATABASE " + name)
		rows, err := db.Query("SHOW DATABASES LIKE '" + name + `\_tiled\_%'`)
		if err != nil {
			return
		}
		var derived []string
		for rows.Next() {
			var d string
			if rows.Scan(&d) == nil {
				derived = append(derived, d)
			}
		}
		rows.Close()
		for _, d := range derived {
			db.Exec("DROP DATABASE `" + d + "`")
		}
	})
	return "mysql://" + server + "/" + name
}

// hostPart returns HOST:PORT of USER:PASS@HOST:PORT.
func hostPart(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			return s[i+1:]
		}
	}
	return s
}

// Etcd is an etcd server that a test started on loopback, in a
// directory of its own, so that the test can stop and start it.
type Etcd struct {
	// Endpoint is its client URL, e.g. "http://127.0.0.1:23790".
	Endpoint string

	t          testing.TB
	dir        string
	client     string
	peer       string
	cmd        *exec.Cmd
	exited     chan struct{}
	stopped    bool
	stdoutPath string
}

// StartEtcd starts Debian's etcd (etcd-server, /usr/bin/etcd, or
// $CTSTAGE_TEST_ETCD) on two free loopback ports; it stops when the test
// ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	bin := os.Getenv("CTSTAGE_TEST_ETCD")
	if bin == "" {
		bin = "etcd"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		Unavailable(t, "no etcd binary (apt-get install -y etcd-server, or set CTSTAGE_TEST_ETCD): %v", err)
	}
	ports := freePorts(t, 2)
	e := &Etcd{t: t, dir: t.TempDir(),
		client: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		peer:   fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	e.Endpoint = e.client
	e.stdoutPath = filepath.Join(e.dir, "etcd.log")
	e.start(path)
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(e.stdoutPath); err == nil && len(b) > 0 {
				t.Logf("etcd's log (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
			}
		}
	})
	return e
}

func (e *Etcd) start(path string) {
	e.t.Helper()
	out, err := os.OpenFile(e.stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(path, "--name", "test", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.client, "--advertise-client-urls", e.client,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "test="+e.peer, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		e.t.Fatalf("couldn't start etcd: %v", err)
	}
	out.Close()
	e.cmd, e.exited, e.stopped = cmd, make(chan struct{}), false
	go func() { cmd.Wait(); close(e.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rsp, err := http.Get(e.client + "/health")
		if err == nil {
			body, _ := io.ReadAll(rsp.Body)
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK && strings.Contains(string(body), "true") {
				return
			}
		}
		select {
		case <-e.exited:
			e.t.Fatalf("etcd exited at start; its log is in %s", e.stdoutPath)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd at %s not healthy after 20 s: %v", e.client, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills etcd (SIGKILL: an outage, not a shutdown). Its data stays.
func (e *Etcd) Stop() {
	if e.stopped {
		return
	}
	e.cmd.Process.Kill()
	<-e.exited
	e.stopped = true
}

// Restart starts a stopped etcd again on the same ports and data.
func (e *Etcd) Restart() {
	e.t.Helper()
	if !e.stopped {
		e.t.Fatal("etcd is running")
	}
	e.start(e.cmd.Path)
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// MariaDB is a private MariaDB server that a test started on a free
// loopback port, in a directory of its own, so that the test can stop and
// start it without touching the shared server that MySQL uses.
type MariaDB struct {
	// Server is "root@127.0.0.1:PORT" (no password), the form of
	// CTSTAGE_TEST_MYSQL.
	Server string

	t       testing.TB
	dir     string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

// StartMariaDB initialises a data directory with Debian's
// mariadb-install-db and starts /usr/sbin/mariadbd on it (or
// $CTSTAGE_TEST_MARIADBD); it stops when the test ends.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	bin := os.Getenv("CTSTAGE_TEST_MARIADBD")
	if bin == "" {
		bin = "/usr/sbin/mariadbd"
	}
	install, err := exec.LookPath("mariadb-install-db")
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		Unavailable(t, "no MariaDB server to run privately (apt-get install -y mariadb-server, or set CTSTAGE_TEST_MARIADBD): %v", err)
	}
	m := &MariaDB{t: t, dir: t.TempDir(), port: freePorts(t, 1)[0]}
	m.Server = fmt.Sprintf("root@127.0.0.1:%d", m.port)
	cmd := exec.Command(install, "--no-defaults", "--datadir="+filepath.Join(m.dir, "data"), "--user="+currentUser(),
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	m.start(bin)
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(m.dir, "error.log")); err == nil && len(b) > 0 {
				t.Logf("the private MariaDB's log (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
			}
		}
	})
	return m
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if os.Geteuid() == 0 {
		return "root"
	}
	return fmt.Sprint(os.Geteuid())
}

func (m *MariaDB) start(bin string) {
	m.t.Helper()
	cmd := exec.Command(bin, "--no-defaults", "--datadir="+filepath.Join(m.dir, "data"), "--user="+currentUser(),
		fmt.Sprintf("--port=%d", m.port), "--bind-address=127.0.0.1",
		"--socket="+filepath.Join(m.dir, "mysqld.sock"), "--pid-file="+filepath.Join(m.dir, "mysqld.pid"),
		"--log-error="+filepath.Join(m.dir, "error.log"), "--skip-log-bin", "--innodb-buffer-pool-size=128M",
		"--max-connections=500")
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("couldn't start %s: %v", bin, err)
	}
	m.cmd, m.exited, m.stopped = cmd, make(chan struct{}), false
	go func() { cmd.Wait(); close(m.exited) }()
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port))
	if err != nil {
		m.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second) // crash recovery after a kill
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-m.exited:
			m.t.Fatalf("the private MariaDB exited at start; its log is %s", filepath.Join(m.dir, "error.log"))
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the private MariaDB on port %d not ready after 60 s: %v", m.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: an outage, not a shutdown; InnoDB
// recovers its committed transactions at the next start). Its data stays.
func (m *MariaDB) Stop() {
	if m.stopped {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.stopped = true
}

// Restart starts a stopped server again on the same port and data.
func (m *MariaDB) Restart() {
	m.t.Helper()
	if !m.stopped {
		m.t.Fatal("the private MariaDB is running")
	}
	m.start(m.cmd.Path)
}

// Chromium is the path of Debian's chromium (or $CTSTAGE_TEST_CHROMIUM)
// for headless browser tests.
func Chromium(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("CTSTAGE_TEST_CHROMIUM")
	if bin == "" {
		bin = "chromium"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		Unavailable(t, "no chromium (apt-get install -y chromium, or set CTSTAGE_TEST_CHROMIUM): %v", err)
	}
	return path
}
