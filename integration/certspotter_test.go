package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/loglist3"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/sctverify"
)

// What certspotter 0.16.0 (Debian's package) does, found by running it
// against ctstage (docs/monitoring.md):
//   - -logs takes a file or an https:// URL; an http:// URL is opened as a
//     file name. The test gives it --data/log_list.json, the list ctstage
//     serves at /log.v3.json. Plain-HTTP log URLs inside the list are fine.
//   - It runs as a daemon: one pass over every log at start (get-sth, then
//     get-entries from its saved position), then get-sth again only every
//     5 minutes. So each round below is a new process on the same state
//     directory, stopped with SIGTERM once its state has caught up.
//   - It never calls get-sth-consistency. It keeps the collapsed Merkle tree
//     of what it has verified, appends the leaf hashes of the entries it
//     downloads, and requires the root at each new STH's size to equal that
//     STH's root: a consistency check from the entries themselves. With
//     -start_at_end it rebuilds that tree from get-entries of the last entry
//     and get-proof-by-hash.
//   - Log errors (a bad STH signature, a root that does not match the
//     entries, an HTTP failure) go to stderr, and certspotter retries later;
//     the script hook sees discovered_cert, malformed_cert and (daily health
//     check) error events.
//   - It predates the Static CT API: it reads the log list's RFC 6962 logs
//     and ignores tiled_logs, so the tiled shards of the default topology
//     are not monitored, and a certificate is reported from the RFC 6962
//     logs of its SCTs only (the CA gives every certificate one or more).

// watchedDomain is the watch list's one item, ".watched.example.com": the
// domain and every name under it.
const watchedDomain = "watched.example.com"

// spotCert is a certificate the CA issued during the test.
type spotCert struct {
	names   []string
	watched bool
	round   int
	leaf    *ctx509.Certificate
	tbsHash string     // hex SHA-256 of the TBS without its SCT list (RFC 6962 section 3.2): certspotter's TBS_SHA256
	logs    [][32]byte // the logs of its embedded SCTs, which hold its precertificate and final certificate
}

// TestCertspotter runs SSLMate's certspotter, a real CT monitor, against
// `ctstage serve` with a watch list of ".watched.example.com", in two
// rounds of issuance through `ctstage issue` (precertificates and final
// certificates in the logs of two operators, in one or two half-year
// shards). Each run must report exactly the watched certificates new since
// the last run, each as precertificate and as certificate, with the SHA-256,
// serial, names, log and index that the log's own get-entries confirms; it
// must report nothing else, print no log error, and record as verified the
// tree size and root of every shard's current STH. A second monitor starts
// at the end of the logs after round 1 and must report round 2 only, and a
// control run with one shard's key replaced must report that shard's STH
// signature as invalid, which shows that a misbehaving log would be seen.
func TestCertspotter(t *testing.T) {
	bin, err := exec.LookPath("certspotter")
	if err != nil {
		testenv.Unavailable(t, "certspotter is not installed (apt-get install -y certspotter)")
	}
	data := t.TempDir()
	mgmt := freeAddr(t)
	s := startServer(t, "--data", data, "--mgmt-addr", mgmt)
	sp := newSpotter(t, bin, filepath.Join(data, "log_list.json"))

	var certs []*spotCert
	issue := func(round int, profile string, names ...string) {
		certs = append(certs, sp.issue(t, mgmt, round, profile, names...))
	}
	issue(1, "classic", watchedDomain, "www."+watchedDomain)
	issue(1, "shortlived", "api."+watchedDomain)
	issue(1, "classic", "mixed.example.net", "deep.sub."+watchedDomain)
	issue(1, "classic", "other.example.net")
	issue(1, "shortlived", "unwatched.example.com")
	issue(1, "classic", watchedDomain+".example.net")
	want := sp.settle(t, certs)

	full := t.TempDir() // state of the monitor that starts at the beginning
	events, _ := sp.run(t, s, full, false, want)
	sp.checkEvents(t, events, certs, 1)
	sp.checkState(t, full, want)
	t.Run("SameAsCtstageMonitor", func(t *testing.T) { sameAsMonitor(t, filepath.Join(data, "log_list.json"), events) })

	atEnd := t.TempDir() // state of the monitor that starts at the end
	events, reqs := sp.run(t, s, atEnd, true, want)
	sp.checkEvents(t, events, certs, 0)
	sp.checkState(t, atEnd, want)
	if !strings.Contains(reqs, "/ct/v1/get-proof-by-hash") {
		t.Errorf("certspotter -start_at_end made no get-proof-by-hash request:\n%s", reqs)
	}

	t.Run("ControlBadKey", func(t *testing.T) { sp.controlBadKey(t, certs) })

	issue(2, "classic", "new."+watchedDomain)
	issue(2, "shortlived", "new.example.net")
	want2 := sp.settle(t, certs)
	for _, c := range certs[len(certs)-2:] {
		for _, id := range c.logs {
			if want2[id].TreeSize <= want[id].TreeSize {
				t.Fatalf("%s did not grow in round 2", sp.byID[id].URL)
			}
		}
	}
	for _, state := range []string{full, atEnd} {
		// certspotter also remembers in certs/ which certificates it has
		// reported. Without it, only the saved log positions keep a
		// resumed run from reporting round 1 again.
		if err := os.RemoveAll(filepath.Join(state, "certs")); err != nil {
			t.Fatal(err)
		}
		events, _ = sp.run(t, s, state, false, want2)
		sp.checkEvents(t, events, certs, 2)
		sp.checkState(t, state, want2)
	}
}

// spotter runs certspotter with a watch list, a hook script that records
// every event, and a config directory of its own (so that no hooks.d or
// email_recipients of the user's take part).
type spotter struct {
	bin, list, watchlist, hook, config string
	ll                                 *loglist3.LogList
	byID                               map[[32]byte]*loglist3.Log // the RFC 6962 logs
	byURL                              map[string]*loglist3.Log
	tiled                              map[[32]byte]bool // the tiled logs' IDs
}

func newSpotter(t *testing.T, bin, list string) *spotter {
	t.Helper()
	dir := t.TempDir()
	sp := &spotter{bin: bin, list: list, watchlist: filepath.Join(dir, "watchlist"),
		hook: filepath.Join(dir, "hook"), config: filepath.Join(dir, "config"),
		byID: map[[32]byte]*loglist3.Log{}, byURL: map[string]*loglist3.Log{}, tiled: map[[32]byte]bool{}}
	b, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	if sp.ll, err = loglist3.NewFromJSON(b); err != nil {
		t.Fatalf("%s: %v", list, err)
	}
	for _, op := range sp.ll.Operators {
		for _, l := range op.Logs {
			sp.byID[[32]byte(l.LogID)] = l
			sp.byURL[l.URL] = l
		}
		for _, l := range op.TiledLogs {
			sp.tiled[[32]byte(l.LogID)] = true
		}
	}
	// One file per event, holding the environment certspotter gives the hook.
	hook := "#!/bin/sh\nenv > \"$(mktemp \"$CTSTAGE_EVENTS/event.XXXXXX\")\"\n"
	if err := os.WriteFile(sp.watchlist, []byte("."+watchedDomain+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sp.hook, []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sp.config, 0o755); err != nil {
		t.Fatal(err)
	}
	return sp
}

// issue asks the server's CA for a certificate with `ctstage issue`.
func (sp *spotter) issue(t *testing.T, mgmt string, round int, profile string, names ...string) *spotCert {
	t.Helper()
	args := []string{"issue", "--mgmt-addr", mgmt, "--profile", profile}
	for _, n := range names {
		args = append(args, "--name", n)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(ctstageBinary(t), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ctstage %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	leaf := parsePEMChain(t, string(out))[0]
	tbs, err := sctverify.RemoveSCTList(leaf.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(tbs)
	c := &spotCert{names: names, round: round, leaf: leaf, tbsHash: hex.EncodeToString(h[:])}
	for _, n := range names {
		c.watched = c.watched || n == watchedDomain || strings.HasSuffix(n, "."+watchedDomain)
	}
	for _, raw := range leaf.SCTList.SCTList {
		var sct ct.SignedCertificateTimestamp
		if _, err := cttls.Unmarshal(raw.Val, &sct); err != nil {
			t.Fatal(err)
		}
		if sp.byID[sct.LogID.KeyID] == nil {
			if !sp.tiled[sct.LogID.KeyID] {
				t.Fatalf("%v: SCT from a log not in the log list: %x", names, sct.LogID.KeyID)
			}
			continue // a tiled log, which certspotter 0.16 does not read
		}
		c.logs = append(c.logs, sct.LogID.KeyID)
	}
	if len(leaf.SCTList.SCTList) < 2 || len(c.logs) < 1 {
		t.Fatalf("%v: %d SCTs, %d of them from RFC 6962 logs; want 2 or more, and 1 or more", names, len(leaf.SCTList.SCTList), len(c.logs))
	}
	return c
}

// settle waits until every final certificate is in the logs of its SCTs
// and returns every log's STH then (signatures checked by ct-go's client).
func (sp *spotter) settle(t *testing.T, certs []*spotCert) map[[32]byte]*ct.SignedTreeHead {
	t.Helper()
	used := map[[32]byte]bool{}
	for _, c := range certs {
		for _, id := range c.logs {
			checkFinalLogged(t, listedLog{log: sp.byID[id]}, c.leaf.Raw)
			used[id] = true
		}
	}
	sths := map[[32]byte]*ct.SignedTreeHead{}
	for id, l := range sp.byID {
		sth, err := logClient(t, l).GetSTH(context.Background())
		if err != nil {
			t.Fatalf("%s: get-sth: %v", l.URL, err)
		}
		if used[id] != (sth.TreeSize > 0) {
			t.Fatalf("%s: tree size %d, but SCTs from it: %v", l.URL, sth.TreeSize, used[id])
		}
		sths[id] = sth
	}
	t.Logf("%d logs received entries", len(used))
	return sths
}

// run runs certspotter on state until it has verified every log up to its
// STH in want, and returns the events its hook recorded and the server's
// request log lines of the run. Its stdout and stderr must stay empty
// (certspotter prints nothing there unless a log fails), and every read
// request it made must have succeeded.
func (sp *spotter) run(t *testing.T, s *server, state string, startAtEnd bool, want map[[32]byte]*ct.SignedTreeHead) ([]map[string]string, string) {
	t.Helper()
	mark := len(s.logs())
	events := t.TempDir()
	if out := sp.start(t, sp.list, state, events, startAtEnd, sp.caughtUp(state, want)); out != "" {
		t.Errorf("certspotter printed:\n%s", out)
	}
	reqs := s.logs()[mark:]
	for _, line := range strings.Split(reqs, "\n") {
		if strings.Contains(line, "/ct/v1/get-") && !strings.Contains(line, "status=200") {
			t.Errorf("a read request failed: %s", line)
		}
	}
	evs := readSpotterEvents(t, events)
	t.Logf("certspotter (start at end: %v) reported %d events", startAtEnd, len(evs))
	return evs, reqs
}

// start runs certspotter until done reports true for its output so far,
// then stops it with SIGTERM and returns the output. Its hook records
// events in the directory events.
func (sp *spotter) start(t *testing.T, list, state, events string, startAtEnd bool, done func(out string) bool) string {
	t.Helper()
	args := []string{"-logs", list, "-state_dir", state, "-watchlist", sp.watchlist, "-script", sp.hook}
	if startAtEnd {
		args = append(args, "-start_at_end")
	}
	cmd := exec.Command(sp.bin, args...)
	cmd.Env = append(os.Environ(), "CERTSPOTTER_CONFIG_DIR="+sp.config, "CTSTAGE_EVENTS="+events)
	var buf bytes.Buffer
	w := &syncWriter{w: &buf}
	cmd.Stdout, cmd.Stderr = w, w
	output := func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return buf.String()
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for !done(output()) {
		select {
		case err := <-exited:
			t.Fatalf("certspotter %s exited: %v\n%s", strings.Join(args, " "), err, output())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("certspotter %s not done after 2 minutes\n%s", strings.Join(args, " "), output())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("certspotter exit after SIGTERM: %v (man page: 0)", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("certspotter still running 30 s after SIGTERM")
	}
	return output()
}

// spotterState is the part of certspotter's state/logs/<log ID>/state.json
// the test reads.
type spotterState struct {
	VerifiedPosition struct {
		Size uint64 `json:"size"`
	} `json:"verified_position"`
	VerifiedSTH *struct {
		TreeSize uint64 `json:"tree_size"`
		RootHash []byte `json:"sha256_root_hash"`
	} `json:"verified_sth"`
}

func spotterLogDir(state string, id [32]byte) string {
	return filepath.Join(state, "logs", base64.RawURLEncoding.EncodeToString(id[:]))
}

func readSpotterState(state string, id [32]byte) (*spotterState, error) {
	b, err := os.ReadFile(filepath.Join(spotterLogDir(state, id), "state.json"))
	if err != nil {
		return nil, err
	}
	var st spotterState
	return &st, json.Unmarshal(b, &st)
}

// caughtUp reports when certspotter's state shows every log verified up to
// its STH in want, or certspotter printed something (an error, which the
// caller reports).
func (sp *spotter) caughtUp(state string, want map[[32]byte]*ct.SignedTreeHead) func(string) bool {
	return func(out string) bool {
		if out != "" {
			return true
		}
		for id, sth := range want {
			st, err := readSpotterState(state, id)
			if err != nil || st.VerifiedPosition.Size != sth.TreeSize {
				return false
			}
		}
		return true
	}
}

// checkState checks that certspotter recorded as verified every log's STH
// in want (size and root hash), and holds no unverified STH, malformed
// entry or failed health check.
func (sp *spotter) checkState(t *testing.T, state string, want map[[32]byte]*ct.SignedTreeHead) {
	t.Helper()
	for id, sth := range want {
		url := sp.byID[id].URL
		st, err := readSpotterState(state, id)
		if err != nil {
			t.Errorf("%s: certspotter state: %v", url, err)
			continue
		}
		if st.VerifiedPosition.Size != sth.TreeSize {
			t.Errorf("%s: certspotter verified up to %d, the log's STH has %d", url, st.VerifiedPosition.Size, sth.TreeSize)
		}
		if sth.TreeSize > 0 && (st.VerifiedSTH == nil || st.VerifiedSTH.TreeSize != sth.TreeSize ||
			!bytes.Equal(st.VerifiedSTH.RootHash, sth.SHA256RootHash[:])) {
			t.Errorf("%s: certspotter's verified STH %+v, want size %d root %x", url, st.VerifiedSTH, sth.TreeSize, sth.SHA256RootHash)
		}
		for _, sub := range []string{"unverified_sths", "malformed_entries", "healthchecks"} {
			files, err := os.ReadDir(filepath.Join(spotterLogDir(state, id), sub))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Error(err)
			}
			if len(files) > 0 {
				t.Errorf("%s: certspotter's %s holds %d files", url, sub, len(files))
			}
		}
	}
}

func readSpotterEvents(t *testing.T, dir string) []map[string]string {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var events []map[string]string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		ev := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				ev[k] = v
			}
		}
		events = append(events, ev)
	}
	return events
}

// spotKey names one report: a certificate, as precertificate or not.
type spotKey struct {
	cert    *spotCert
	precert bool
}

// checkEvents checks that the events report exactly the watched
// certificates of round (none for round 0), each as precertificate and as
// certificate, and that what each event says matches the log entry it
// points at. certspotter may report one certificate once per log that
// holds it.
func (sp *spotter) checkEvents(t *testing.T, events []map[string]string, certs []*spotCert, round int) {
	t.Helper()
	byTBS := map[string]*spotCert{}
	for _, c := range certs {
		byTBS[c.tbsHash] = c
	}
	got := map[spotKey]bool{}
	for _, ev := range events {
		if ev["EVENT"] != "discovered_cert" {
			text, _ := os.ReadFile(ev["TEXT_FILENAME"])
			t.Errorf("certspotter %s event: %s\n%s", ev["EVENT"], ev["SUMMARY"], text)
			continue
		}
		c := byTBS[ev["TBS_SHA256"]]
		switch {
		case c == nil:
			t.Errorf("certspotter reported a certificate the CA did not issue in this test: %v", ev)
			continue
		case !c.watched:
			t.Errorf("certspotter reported %v, which is not under .%s", c.names, watchedDomain)
		case c.round != round:
			t.Errorf("certspotter reported %v (round %d) in round %d", c.names, c.round, round)
		}
		precert, ok := sp.checkEvent(t, ev, c)
		if ok {
			got[spotKey{c, precert}] = true
		}
	}
	for _, c := range certs {
		if !c.watched || c.round != round {
			continue
		}
		for _, precert := range []bool{true, false} {
			if !got[spotKey{c, precert}] {
				t.Errorf("certspotter did not report %v (precertificate: %v)", c.names, precert)
			}
		}
	}
}

// checkEvent checks a discovered_cert event for c against the log entry at
// LOG_URI and ENTRY_INDEX: CERT_SHA256 is the SHA-256 of the entry's
// certificate (the final certificate itself, or the precertificate), and
// SERIAL and the names in JSON_FILENAME are c's. It says which of the two
// the entry holds.
func (sp *spotter) checkEvent(t *testing.T, ev map[string]string, c *spotCert) (precert, ok bool) {
	t.Helper()
	serial, _ := new(big.Int).SetString(strings.TrimPrefix(ev["SERIAL"], "-"), 16)
	if serial == nil || serial.Cmp(c.leaf.SerialNumber) != 0 {
		t.Errorf("%v: SERIAL %q, want %x", c.names, ev["SERIAL"], c.leaf.SerialNumber)
	}
	var info struct {
		DNSNames []string `json:"dns_names"`
	}
	b, err := os.ReadFile(ev["JSON_FILENAME"])
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	slices.Sort(info.DNSNames)
	if names := slices.Sorted(slices.Values(c.names)); err != nil || !slices.Equal(info.DNSNames, names) {
		t.Errorf("%v: certspotter's JSON names %v (%v)", c.names, info.DNSNames, err)
	}
	l := sp.byURL[ev["LOG_URI"]]
	if l == nil || !slices.Contains(c.logs, [32]byte(l.LogID)) {
		t.Errorf("%v: reported from %q, not one of the logs of its SCTs", c.names, ev["LOG_URI"])
		return false, false
	}
	index, err := strconv.ParseInt(ev["ENTRY_INDEX"], 10, 64)
	if err != nil {
		t.Errorf("%v: ENTRY_INDEX %q", c.names, ev["ENTRY_INDEX"])
		return false, false
	}
	entries, err := logClient(t, l).GetEntries(context.Background(), index, index)
	if err != nil || len(entries) != 1 {
		t.Errorf("%s: get-entries %d: %v", l.URL, index, err)
		return false, false
	}
	e := entries[0]
	var der []byte
	switch {
	case e.X509Cert != nil:
		der = e.X509Cert.Raw
		if !bytes.Equal(der, c.leaf.Raw) {
			t.Errorf("%v: entry %d of %s is another certificate", c.names, index, l.URL)
		}
	case e.Precert != nil:
		precert, der = true, e.Precert.Submitted.Data
	default:
		t.Errorf("%s: entry %d holds neither a certificate nor a precertificate", l.URL, index)
		return false, false
	}
	if h := sha256.Sum256(der); ev["CERT_SHA256"] != hex.EncodeToString(h[:]) {
		t.Errorf("%v: CERT_SHA256 %s, the entry's is %x", c.names, ev["CERT_SHA256"], h)
	}
	return precert, true
}

// controlBadKey runs certspotter on a copy of the log list in which one
// shard has a key of its own (and the log ID that goes with it): the shard's
// STHs no longer verify, and certspotter must say so and verify nothing of
// that shard. This is what a log signing with the wrong key looks like to a
// monitor, and shows that the error reports checked above would be seen.
func (sp *spotter) controlBadKey(t *testing.T, certs []*spotCert) {
	bad := sp.byID[certs[0].logs[0]]
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(der)
	b, err := os.ReadFile(sp.list)
	if err != nil {
		t.Fatal(err)
	}
	ll, err := loglist3.NewFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ll.Operators {
		for _, l := range op.Logs {
			if l.URL == bad.URL {
				l.Key, l.LogID = der, id[:]
			}
		}
	}
	list := filepath.Join(t.TempDir(), "log_list.json")
	if err := os.WriteFile(list, mustJSON(t, ll), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	out := sp.start(t, list, state, t.TempDir(), false, func(out string) bool { return out != "" })
	if !strings.Contains(out, bad.URL) || !strings.Contains(out, "invalid signature") {
		t.Errorf("certspotter's output does not report an invalid STH signature from %s:\n%s", bad.URL, out)
	}
	if st, err := readSpotterState(state, id); err == nil && st.VerifiedSTH != nil {
		t.Errorf("certspotter verified an STH of %s with the wrong key: %+v", bad.URL, st.VerifiedSTH)
	}
}

// sameAsMonitor runs `ctstage monitor --once` on the logs certspotter
// followed, watching the same domain: on the RFC 6962 logs (all
// certspotter reads) the two report the same entries, by log, index and
// certificate SHA-256; and the monitor raises no alert.
func sameAsMonitor(t *testing.T, list string, spotEvents []map[string]string) {
	out, err := exec.Command(ctstageBinary(t), "monitor", "--once", "--json", "--log-list", list, "--state", t.TempDir(),
		"--watch", watchedDomain).Output()
	if code := exitCode(t, err); code != 0 {
		t.Fatalf("ctstage monitor --once: exit %d\n%s", code, out)
	}
	key := func(uri, index string) string { return strings.TrimSuffix(uri, "/") + "#" + index }
	spot := map[string]string{}
	for _, ev := range spotEvents {
		if ev["EVENT"] == "discovered_cert" {
			spot[key(ev["LOG_URI"], ev["ENTRY_INDEX"])] = strings.ToLower(ev["CERT_SHA256"])
		}
	}
	rfcLogs := map[string]bool{}
	for k := range spot {
		rfcLogs[k[:strings.LastIndex(k, "#")]] = true
	}
	mon := map[string]string{}
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var e struct {
			URL, Alert, Event, SHA256 string
			Index                     *uint64
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("monitor line %q: %v", line, err)
		}
		if e.Alert != "" {
			t.Errorf("monitor alert: %s", line)
		}
		if e.Event == "certificate" && rfcLogs[strings.TrimSuffix(e.URL, "/")] {
			mon[key(e.URL, strconv.FormatUint(*e.Index, 10))] = e.SHA256
		}
	}
	if len(spot) == 0 {
		t.Fatal("certspotter reported nothing to compare")
	}
	for k, sum := range spot {
		if mon[k] != sum {
			t.Errorf("certspotter reported %s at %s; ctstage monitor %q", sum, k, mon[k])
		}
	}
	for k, sum := range mon {
		if spot[k] == "" {
			t.Errorf("ctstage monitor reported %s at %s; certspotter nothing", sum, k)
		}
	}
}
