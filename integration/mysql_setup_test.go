package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/lego"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// MySQLAdminEnv names the variable that gives TestMySQLSetup an
// administrative MySQL account, as "USER:PASS@HOST:PORT". Without it the
// test uses the mariadb (or mysql) client over the local socket as the
// user running it, root in .ci/run.
const MySQLAdminEnv = "CTSTAGE_TEST_MYSQL_ADMIN"

// TestMySQLSetup is what docs tell a DBA to do: it runs
// deployments/mysql/setup.sql as an administrator with a fresh database
// and user, then runs `ctstage serve` as that user only: a certificate
// through ACME (the acme_, ca_ and Trillian tables, created at the first
// start), its revocation, and a restart after which the account, the
// certificate, the revocation and the certificate's log entries are
// still there. A privilege missing from setup.sql fails it.
func TestMySQLSetup(t *testing.T) {
	admin := mysqlAdmin(t)
	suffix := randHex(t, 6)
	db, user, pass := "ctstage_setup_"+suffix, "ctstage_setup_"+suffix, randHex(t, 16)
	decoy := "ctstagexsetupx" + suffix // what `ctstage_setup_...` would match unescaped
	t.Cleanup(func() {
		admin.run(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'; DROP DATABASE IF EXISTS `%s`; DROP DATABASE IF EXISTS `%s`;", user, db, decoy))
		for _, d := range strings.Fields(admin.run(t, "SHOW DATABASES LIKE '"+db+`\_tiled\_%'`)) {
			if strings.HasPrefix(d, db+"_tiled_") {
				admin.run(t, "DROP DATABASE `"+d+"`")
			}
		}
	})
	script, err := os.ReadFile("../deployments/mysql/setup.sql")
	if err != nil {
		t.Fatal(err)
	}
	vars := fmt.Sprintf("SET @ctstage_db = '%s', @ctstage_user = '%s';\n", db, user)
	if out, err := admin.exec(vars + string(script)); err == nil || !strings.Contains(out, "set @ctstage_password") {
		t.Errorf("setup.sql without @ctstage_password: %v, want an error naming it\n%s", err, out)
	}
	if out := admin.run(t, "SHOW DATABASES LIKE '"+db+"'"); strings.Contains(out, db) {
		t.Errorf("setup.sql without @ctstage_password created the database")
	}
	vars += "SET @ctstage_password = '" + pass + "';\n"
	admin.run(t, vars+string(script))
	admin.run(t, vars+string(script)) // again: changes nothing
	admin.run(t, "CREATE DATABASE `"+decoy+"`")
	if out := admin.runAs(t, user, pass, "SHOW DATABASES"); strings.Contains(out, decoy) || !strings.Contains(out, db) {
		t.Errorf("%s sees these databases, want %s and not %s:\n%s", user, db, decoy, out)
	}

	spec := fmt.Sprintf("mysql://%s:%s@%s/%s", user, pass, admin.addr, db)
	st := startSetupStage(t, spec)
	c, u := st.acme.legoClient(t)
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(st.httpPort))); err != nil {
		t.Fatal(err)
	}
	res := obtain(t, c, certificate.ObtainRequest{Domains: []string{"setup.example.com"}, Bundle: true})
	st.checkEmbeddedSCTs(t, res.Certificate)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Certificate.Revoke(ctx, res.Certificate); err != nil {
		t.Fatalf("Revoke: %v\n%s", err, st.logs())
	}
	st.term(t)
	if _, err := os.Stat(filepath.Join(st.data, "trillian.db")); err == nil {
		t.Errorf("--data/trillian.db exists with --storage mysql")
	}

	st.server = startServerAt(t, st.addr, st.args...)
	cfg := lego.NewConfig(&legoUser{key: u.key})
	cfg.CADirURL, cfg.HTTPClient = st.acmeURL+"/directory", st.hc
	c2, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if acct, err := c2.Registration.ResolveAccountByKey(ctx); err != nil || acct.Status != "valid" {
		t.Fatalf("account after restart: %v, %v", acct, err)
	}
	got, err := c2.Certificate.Get(ctx, res.CertURL, true)
	if err != nil || !bytes.Equal(got.Certificate, res.Certificate) {
		t.Fatalf("certificate after restart: %v\n%s\nwant\n%s", err, got.Certificate, res.Certificate)
	}
	if err := c2.Certificate.Revoke(ctx, res.Certificate); err == nil {
		t.Errorf("second Revoke after restart succeeded, want alreadyRevoked")
	}
	st.verifyIncluded(t, res.Certificate)
}

// mysqlAdminClient runs SQL with a MySQL command-line client as an
// administrator.
type mysqlAdminClient struct {
	bin  string
	args []string // connection arguments
	env  []string // MYSQL_PWD
	addr string   // HOST:PORT of the same server for ctstage
}

// mysqlAdmin finds an administrator's connection (MySQLAdminEnv, else the
// local socket), or skips (fails under CI=true) when there is none.
func mysqlAdmin(t *testing.T) *mysqlAdminClient {
	t.Helper()
	a := &mysqlAdminClient{}
	for _, name := range []string{"mariadb", "mysql"} {
		if p, err := exec.LookPath(name); err == nil {
			a.bin = p
			break
		}
	}
	if a.bin == "" {
		testenv.Unavailable(t, "no mariadb or mysql client (apt-get install -y mariadb-client)")
	}
	if dsn := os.Getenv(MySQLAdminEnv); dsn != "" {
		u, err := url.Parse("mysql://" + dsn)
		if err != nil || u.Port() == "" {
			t.Fatalf("%s=%q: want USER:PASS@HOST:PORT", MySQLAdminEnv, dsn)
		}
		pass, _ := u.User.Password()
		a.args = []string{"--protocol=tcp", "--host=" + u.Hostname(), "--port=" + u.Port(), "--user=" + u.User.Username()}
		a.env = []string{"MYSQL_PWD=" + pass}
		a.addr = u.Host
	}
	grants, err := a.exec("SHOW GRANTS")
	if err != nil || !strings.Contains(grants, "ON *.*") || !strings.Contains(grants, "WITH GRANT OPTION") {
		testenv.Unavailable(t, "no MySQL administrator (root over the local socket with %s, or %s=USER:PASS@HOST:PORT): %v\n%s",
			filepath.Base(a.bin), MySQLAdminEnv, err, grants)
	}
	if a.addr == "" {
		port := strings.TrimSpace(a.run(t, "SELECT @@port"))
		a.addr = net.JoinHostPort("127.0.0.1", port)
	}
	return a
}

// exec runs sql and returns the client's output (tab-separated, no
// column names) and error.
func (a *mysqlAdminClient) exec(sql string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, append(append(slices.Clone(a.args), "--batch", "--skip-column-names"), args...)...)
	cmd.Env = append(os.Environ(), a.env...)
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// run runs sql and fails the test on an error.
func (a *mysqlAdminClient) run(t testing.TB, sql string) string {
	t.Helper()
	out, err := a.exec(sql)
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(a.bin), err, out)
	}
	return out
}

// runAs runs sql as user over TCP, as ctstage connects.
func (a *mysqlAdminClient) runAs(t testing.TB, user, pass, sql string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(a.addr)
	b := &mysqlAdminClient{bin: a.bin, args: []string{"--protocol=tcp", "--host=" + host, "--port=" + port, "--user=" + user}, env: []string{"MYSQL_PWD=" + pass}}
	return b.run(t, sql)
}

// setupStage is a `ctstage serve` process on fixed addresses, so that it
// can be restarted with the same arguments and URLs.
type setupStage struct {
	*clientStage
	acme *acmeStage // for lego
	addr string
	args []string
}

func startSetupStage(t *testing.T, spec string) *setupStage {
	t.Helper()
	cs := &clientStage{data: t.TempDir(), httpPort: freePort(t),
		oneKind: "on MySQL a tiled shard publishes a checkpoint at most once a second (the floor of Tessera's MySQL backend), " +
			"so the CA's race, which adds a log after 500 ms, often ends on two RFC 6962 SCTs"}
	acmeAddr := restartableAddr(t)
	st := &setupStage{clientStage: cs, addr: restartableAddr(t)}
	st.args = append(slices.Clone(isolationArgs), "--data", cs.data, "--storage", spec,
		"--acme-addr", acmeAddr, "--va-http-port", strconv.Itoa(cs.httpPort))
	cs.server = startServerAt(t, st.addr, st.args...)
	cs.acmeURL = "https://" + acmeAddr
	st.acme = binaryACMEStage(t, cs)
	cs.hc = st.acme.httpClient()
	return st
}

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// setupMySQL runs script (setup.sql or a variant of it) as admin for a
// new database and user named prefix plus a random suffix, both dropped
// when the test ends, and returns the user's --storage spec.
func setupMySQL(t *testing.T, admin *mysqlAdminClient, prefix, script string) string {
	t.Helper()
	suffix := randHex(t, 6)
	db, user, pass := prefix+suffix, prefix+suffix, randHex(t, 16)
	t.Cleanup(func() {
		admin.run(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'; DROP DATABASE IF EXISTS `%s`;", user, db))
	})
	admin.run(t, fmt.Sprintf("SET @ctstage_db = '%s', @ctstage_user = '%s', @ctstage_password = '%s';\n", db, user, pass)+script)
	return fmt.Sprintf("mysql://%s:%s@%s/%s", user, pass, admin.addr, db)
}
