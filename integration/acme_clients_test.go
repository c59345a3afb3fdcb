package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	"github.com/google/certificate-transparency-go/loglist3"
	cttls "github.com/google/certificate-transparency-go/tls"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/sctverify"
)

// clientStage is a `ctstage serve` binary with ACME on a free port, for the
// outside ACME clients (certbot, lego), which validate over http-01 on
// httpPort.
type clientStage struct {
	*server
	data     string
	acmeURL  string // https://127.0.0.1:PORT
	httpPort int
	hc       *http.Client
	// oneKind, when set, says why the certificates may carry SCTs from
	// one kind of log only; otherwise they must have both.
	oneKind string
}

func startClientStage(t *testing.T, extra ...string) *clientStage {
	t.Helper()
	s := &clientStage{data: t.TempDir(), httpPort: freePort(t)}
	acmeAddr := freeAddr(t)
	s.server = startServer(t, append([]string{"--data", s.data, "--acme-addr", acmeAddr,
		"--va-http-port", strconv.Itoa(s.httpPort)}, extra...)...)
	s.acmeURL = "https://" + acmeAddr
	roots := x509.NewCertPool()
	b, err := os.ReadFile(s.rootPEM())
	if err != nil || !roots.AppendCertsFromPEM(b) {
		t.Fatalf("--data/ca/root.pem: %v", err)
	}
	s.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return s
}

func (s *clientStage) rootPEM() string { return filepath.Join(s.data, "ca", "root.pem") }

// logs is what the server wrote to stderr so far.
func (s *server) logs() string {
	w := s.cmd.Stderr.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return s.stderr.String()
}

// lookClient finds an outside ACME client's binary, or skips (fails under
// CI=true) when it is not installed.
func lookClient(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Unavailable(t, "%s is not installed (apt-get install -y certbot lego)", name)
	}
	return p
}

// run runs an outside client with a deadline and returns its combined
// output; a failure is fatal and shows the output and the server's log.
func (s *clientStage) run(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	out, err := runClient(env, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\n--- ctstage serve:\n%s", filepath.Base(bin), strings.Join(args, " "), err, out, s.logs())
	}
	return out
}

// runClient runs an outside client with env added, for at most 3 minutes.
func runClient(env []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkEmbeddedSCTs verifies every SCT embedded in the leaf of pemChain
// with ct-go's ctutil.VerifySCT against the keys of the server's log list
// (--data/log_list.json); at least two, from two operators.
func (s *clientStage) checkEmbeddedSCTs(t *testing.T, pemChain []byte) {
	t.Helper()
	chain := parsePEMChain(t, string(pemChain))
	if len(chain) < 2 {
		t.Fatalf("chain of %d certificates, want the leaf and its intermediate", len(chain))
	}
	b, err := os.ReadFile(filepath.Join(s.data, "log_list.json"))
	if err != nil {
		t.Fatal(err)
	}
	ll, err := loglist3.NewFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	byID := logsByID(ll)
	operators, kinds := map[string]bool{}, map[bool]bool{}
	for _, raw := range chain[0].SCTList.SCTList {
		var sct ct.SignedCertificateTimestamp
		if _, err := cttls.Unmarshal(raw.Val, &sct); err != nil {
			t.Fatal(err)
		}
		l, ok := byID[sct.LogID.KeyID]
		if !ok {
			t.Fatalf("SCT from a log not in log_list.json: %x", sct.LogID.KeyID)
		}
		pk, err := x509.ParsePKIXPublicKey(l.log.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctutil.VerifySCT(pk, chain[:2], &sct, true); err != nil {
			t.Errorf("VerifySCT for %s: %v", l.log.Description, err)
		}
		operators[l.operator] = true
		kinds[l.tiled != nil] = true
	}
	if s.oneKind != "" && len(kinds) < 2 {
		t.Logf("SCTs from one kind of log only: %s", s.oneKind)
	}
	if n := len(chain[0].SCTList.SCTList); n < 2 || len(operators) < 2 || len(kinds) < 2 && s.oneKind == "" {
		t.Errorf("%d embedded SCTs from %d operators and %d kinds of log, want 2 or more from 2 and 2 (RFC 6962 and tiled)", n, len(operators), len(kinds))
	}
}

// verifyIncluded runs `ctstage verify --json` on the certificate against
// the server's log list until the report is OK and every SCT's entry is
// proven included (the logs integrate within about a second; "pending"
// alone would pass verify). With the default topology the SCTs must come
// from both kinds of log, so that this proves inclusion from RFC 6962
// proofs and from tiles.
func (s *clientStage) verifyIncluded(t *testing.T, pemChain []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(file, pemChain, 0o644); err != nil {
		t.Fatal(err)
	}
	byID := logsByID(fetchLogList(t, "http://"+s.addr))
	var out []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		var err error
		out, err = exec.Command(ctstageBinary(t), "verify", "--json", "--log-list", "http://"+s.addr+"/log.v3.json", file).Output()
		var r sctverify.Report
		if err != nil || json.Unmarshal(out, &r) != nil || !r.OK || len(r.SCTs) < 2 {
			continue
		}
		included, kinds := 0, map[bool]bool{}
		for _, sct := range r.SCTs {
			if sct.Inclusion != nil && sct.Inclusion.Status == sctverify.InclusionIncluded {
				included++
			}
			kinds[byID[[32]byte(sct.LogID)].tiled != nil] = true
		}
		if included == len(r.SCTs) {
			if len(kinds) != 2 && s.oneKind == "" {
				t.Errorf("ctstage verify: SCTs from one kind of log only, want RFC 6962 and tiled\n%s", out)
			}
			return
		}
	}
	t.Errorf("ctstage verify: not every SCT's entry included after 30 s\n%s\n--- ctstage serve:\n%s", out, tail(s.logs(), 4000))
}

// ariRevoked asks the server's ARI endpoint about the leaf of pemChain and
// reports whether it suggests renewing at once, which is how ctstage shows
// a recorded revocation (docs/acme.md).
func (s *clientStage) ariRevoked(t *testing.T, pemChain []byte) bool {
	t.Helper()
	leaf := parsePEMChain(t, string(pemChain))[0]
	id := base64.RawURLEncoding.EncodeToString(leaf.AuthorityKeyId) + "." +
		base64.RawURLEncoding.EncodeToString(leaf.SerialNumber.Bytes())
	rsp, err := s.hc.Get(s.acmeURL + "/acme/renewal-info/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	var ri struct {
		SuggestedWindow struct{ Start, End time.Time }
	}
	if err := json.NewDecoder(rsp.Body).Decode(&ri); err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("renewal-info: %s, %v", rsp.Status, err)
	}
	return ri.SuggestedWindow.End.Before(time.Now())
}

// TestACMECertbot runs Debian's certbot (2.1.0) against the binary: a new
// account, a certificate through http-01 standalone with embedded SCTs that
// verify against the log list (from both kinds of log, and proven
// included by `ctstage verify`), a forced renewal from certbot's stored
// configuration, and revocation (keyCompromise) that the server records.
func TestACMECertbot(t *testing.T) {
	certbot := lookClient(t, "certbot")
	s := startClientStage(t)
	dir := t.TempDir()
	env := []string{"REQUESTS_CA_BUNDLE=" + s.rootPEM()}
	common := []string{"--non-interactive", "--server", s.acmeURL + "/directory",
		"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs")}
	const name = "certbot.example.com"
	s.run(t, env, certbot, append([]string{"certonly", "--standalone",
		"--http-01-address", "127.0.0.1", "--http-01-port", strconv.Itoa(s.httpPort),
		"-d", name, "-d", "www." + name, "--agree-tos", "-m", "ops@example.com"}, common...)...)
	live := filepath.Join(dir, "config", "live", name)
	full, err := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.checkEmbeddedSCTs(t, full)
	s.verifyIncluded(t, full)
	if s.ariRevoked(t, full) {
		t.Errorf("ARI suggests renewing a fresh certificate at once")
	}

	// certbot renew reads the server, port and account from its renewal
	// configuration, as a cron job would (which also sleeps up to 8 minutes
	// first when there is no terminal, unless told not to).
	s.run(t, env, certbot, append([]string{"renew", "--force-renewal", "--no-random-sleep-on-renew"}, common...)...)
	renewed, err := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(renewed) == string(full) {
		t.Fatalf("certbot renew --force-renewal left the same certificate")
	}
	s.checkEmbeddedSCTs(t, renewed)

	s.run(t, env, certbot, append([]string{"revoke", "--cert-path", filepath.Join(live, "cert.pem"),
		"--reason", "keycompromise", "--no-delete-after-revoke"}, common...)...)
	if !s.ariRevoked(t, renewed) {
		t.Errorf("after certbot revoke, ARI does not suggest renewing at once: revocation not recorded")
	}
	if !strings.Contains(s.logs(), "reason=1") {
		t.Errorf("no revocation with reason 1 (keyCompromise) in the server's log")
	}
	if s.ariRevoked(t, full) {
		t.Errorf("the first certificate, which was not revoked, shows as revoked")
	}
}

// TestACMELegoCLI runs Debian's lego (4.9.1) command against the binary:
// an account with an email, a certificate through http-01 standalone with
// embedded SCTs that verify, and revocation.
func TestACMELegoCLI(t *testing.T) {
	lego := lookClient(t, "lego")
	s := startClientStage(t)
	dir := t.TempDir()
	env := []string{"LEGO_CA_CERTIFICATES=" + s.rootPEM()}
	const name = "lego.example.com"
	common := []string{"--server", s.acmeURL + "/directory", "--accept-tos", "--email", "ops@example.com",
		"--path", dir, "--domains", name}
	s.run(t, env, lego, append(common, "--domains", "www."+name,
		"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", s.httpPort), "run")...)
	pemChain, err := os.ReadFile(filepath.Join(dir, "certificates", name+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	s.checkEmbeddedSCTs(t, pemChain)
	// lego revokes the certificate it stored under the first domain.
	s.run(t, env, lego, append(common, "revoke", "--reason", "4")...)
	if !s.ariRevoked(t, pemChain) {
		t.Errorf("after lego revoke, ARI does not suggest renewing at once: revocation not recorded")
	}
}

// TestACMECertbotDNSHook runs Debian's certbot with the dns-01 hook of
// docs/acme.md (deployments/hooks/certbot-dns-hook) against the binary's
// DNS management API, for a name and its wildcard, whose two TXT values
// share one name: the certificate covers both, with embedded SCTs.
func TestACMECertbotDNSHook(t *testing.T) {
	certbot := lookClient(t, "certbot")
	hook, err := filepath.Abs("../deployments/hooks/certbot-dns-hook")
	if err != nil {
		t.Fatal(err)
	}
	dnsMgmt, dnsAddr := freeAddr(t), freeAddr(t)
	s := startClientStage(t, "--dns-mgmt-addr", dnsMgmt, "--dns-addr", dnsAddr)
	dir := t.TempDir()
	env := []string{"REQUESTS_CA_BUNDLE=" + s.rootPEM(), "CTSTAGE_DNS_MGMT=http://" + dnsMgmt}
	const name = "hook.example.com"
	s.run(t, env, certbot, "certonly", "--non-interactive", "--server", s.acmeURL+"/directory",
		"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs"), "--manual", "--preferred-challenges", "dns",
		"--manual-auth-hook", hook+" auth", "--manual-cleanup-hook", hook+" cleanup",
		"-d", name, "-d", "*."+name, "--agree-tos", "-m", "ops@example.com")
	full, err := os.ReadFile(filepath.Join(dir, "config", "live", name, "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.checkEmbeddedSCTs(t, full)
	blk, _ := pem.Decode(full)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(leaf.DNSNames, ","); !strings.Contains(got, "*."+name) || !strings.Contains(got, name) {
		t.Errorf("certificate names %v, want %s and its wildcard", leaf.DNSNames, name)
	}
}

// runFail runs an outside client that must fail, and returns its output.
func (s *clientStage) runFail(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	out, err := runClient(env, bin, args...)
	if err == nil {
		t.Fatalf("%s %s succeeded; want a refusal\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return out
}

// startEABStage serves with external account binding required and one
// key, from a keys file beside the config file.
func startEABStage(t *testing.T) (s *clientStage, kid, hmac string) {
	t.Helper()
	dir := t.TempDir()
	kid, hmac = "ctstage-kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	if err := os.WriteFile(filepath.Join(dir, "eab-keys.yaml"), []byte(kid+": "+hmac+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ctstage.yaml")
	if err := os.WriteFile(cfg, []byte("acme:\n  external_account_binding:\n    required: true\n    keys_file: eab-keys.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return startClientStage(t, "--config", cfg), kid, hmac
}

// wrongHMAC is another valid base64url HMAC key.
const wrongHMAC = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// TestACMECertbotEAB: against a server that requires external account
// binding, Debian's certbot registers with --eab-kid/--eab-hmac-key and
// obtains a certificate; without them it is refused externalAccountRequired,
// and with a wrong HMAC key unauthorized.
func TestACMECertbotEAB(t *testing.T) {
	certbot := lookClient(t, "certbot")
	s, kid, hmac := startEABStage(t)
	env := []string{"REQUESTS_CA_BUNDLE=" + s.rootPEM()}
	args := func(dir string, extra ...string) []string {
		return append([]string{"register", "--non-interactive", "--server", s.acmeURL + "/directory",
			"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
			"--logs-dir", filepath.Join(dir, "logs"), "--agree-tos", "-m", "ops@example.com"}, extra...)
	}
	if out := s.runFail(t, env, certbot, args(t.TempDir())...); !strings.Contains(out, "external account binding") {
		t.Errorf("certbot register without EAB: want the externalAccountRequired problem's detail:\n%s", out)
	}
	if out := s.runFail(t, env, certbot, args(t.TempDir(), "--eab-kid", kid, "--eab-hmac-key", wrongHMAC)...); !strings.Contains(out, "signature is invalid") {
		t.Errorf("certbot register with a wrong HMAC key: want unauthorized:\n%s", out)
	}
	dir := t.TempDir()
	s.run(t, env, certbot, args(dir, "--eab-kid", kid, "--eab-hmac-key", hmac)...)
	const name = "eab-certbot.example.com"
	s.run(t, env, certbot, "certonly", "--non-interactive", "--server", s.acmeURL+"/directory",
		"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs"), "--standalone",
		"--http-01-address", "127.0.0.1", "--http-01-port", strconv.Itoa(s.httpPort), "-d", name)
	full, err := os.ReadFile(filepath.Join(dir, "config", "live", name, "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.checkEmbeddedSCTs(t, full)
}

// TestACMELegoEAB: the same with Debian's lego and --eab --kid --hmac.
func TestACMELegoEAB(t *testing.T) {
	lego := lookClient(t, "lego")
	s, kid, hmac := startEABStage(t)
	env := []string{"LEGO_CA_CERTIFICATES=" + s.rootPEM()}
	const name = "eab-lego.example.com"
	args := func(dir string, extra ...string) []string {
		return append(append([]string{"--server", s.acmeURL + "/directory", "--accept-tos", "--email", "ops@example.com",
			"--path", dir, "--domains", name, "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", s.httpPort)}, extra...), "run")
	}
	// lego reads externalAccountRequired from the directory's meta and
	// refuses on its own ("Server requires External Account Binding").
	if out := s.runFail(t, env, lego, args(t.TempDir())...); !strings.Contains(strings.ToLower(out), "external account binding") {
		t.Errorf("lego without EAB: want externalAccountRequired:\n%s", out)
	}
	if out := s.runFail(t, env, lego, args(t.TempDir(), "--eab", "--kid", kid, "--hmac", wrongHMAC)...); !strings.Contains(out, "unauthorized") {
		t.Errorf("lego with a wrong HMAC key: want unauthorized:\n%s", out)
	}
	dir := t.TempDir()
	s.run(t, env, lego, args(dir, "--eab", "--kid", kid, "--hmac", hmac)...)
	pemChain, err := os.ReadFile(filepath.Join(dir, "certificates", name+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	s.checkEmbeddedSCTs(t, pemChain)
}
