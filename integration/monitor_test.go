package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/monitor"
	"github.com/ctstage/ctstage/sctverify"
)

// events collects a monitor's events.
type events struct {
	mu  sync.Mutex
	all []monitor.Event
}

func (e *events) Emit(ev monitor.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) alerts() []monitor.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []monitor.Event
	for _, ev := range e.all {
		if ev.Alert != "" {
			out = append(out, ev)
		}
	}
	return out
}

func (e *events) certs() []monitor.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []monitor.Event
	for _, ev := range e.all {
		if ev.Event == "certificate" {
			out = append(out, ev)
		}
	}
	return out
}

func newMonitor(t *testing.T, fs *faultStage, dir string, sink monitor.Sink, opts monitor.Options) *monitor.Monitor {
	t.Helper()
	ll, err := sctverify.LoadLogList(context.Background(), fs.LogURL+"/log.v3.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logs, opts.StateDir, opts.Sink = ll, dir, sink
	m, err := monitor.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMonitorOwnLogs follows a stage's four logs (two RFC 6962, two
// tiled) with the monitor while the CA issues: no alerts, and every
// precertificate issued for a watched name is found in every log that
// gave it an SCT, with its SHA-256 (and, on tiled logs, the SCT's
// leaf_index). A second monitor on the same state reads nothing again;
// the binary's --once --json says the same.
func TestMonitorOwnLogs(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	type want struct {
		log    string
		sha    string
		index  int64 // -1: not known (RFC 6962)
		precrt bool
	}
	var wants []want
	var lastChain []byte
	issue := func(name string) {
		iss, err := fs.CA.Issue(context.Background(), caRequest(t, name))
		if err != nil {
			t.Fatal(err)
		}
		lastChain = iss.ChainPEM()
		sum := sha256.Sum256(iss.Precertificate)
		for _, s := range iss.SCTs {
			idx := int64(-1)
			if i, err := sctverify.LeafIndex(s.SCT.Extensions); err == nil {
				idx = int64(i)
			}
			wants = append(wants, want{log: s.Log.Description, sha: hex.EncodeToString(sum[:]), index: idx, precrt: true})
		}
	}
	for i := range 3 {
		issue(fmt.Sprintf("m%d.watched.example.com", i))
	}
	issue("other.example.net")
	wants = wants[:len(wants)-2] // the last one is not watched
	time.Sleep(1500 * time.Millisecond)

	dir := t.TempDir()
	ev := &events{}
	reg := prometheus.NewRegistry()
	m := newMonitor(t, fs, dir, ev, monitor.Options{Watch: []string{"watched.example.com"}, Registerer: reg})
	// Poll until every log's head covers what the CA issued (an RFC 6962
	// log integrates within about a second, more on a loaded machine).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if n := m.Once(context.Background()); n != 0 {
			t.Fatalf("%d alerts on honest logs: %+v", n, ev.alerts())
		}
		if len(ev.certs()) >= len(wants) || time.Now().After(deadline) {
			break
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	read := false
	for _, mf := range mfs {
		if mf.GetName() == "ctstage_monitor_entries_read" {
			read = true
			if len(mf.Metric) != 4 {
				t.Errorf("entries read for %d logs, want 4", len(mf.Metric))
			}
			// A log the CA did not pick holds nothing; together the logs
			// hold at least an entry per SCT issued.
			sum := 0.0
			for _, mt := range mf.Metric {
				sum += mt.GetGauge().GetValue()
			}
			if sum < float64(len(wants)) {
				t.Errorf("%v entries read over the logs, want at least %d", sum, len(wants))
			}
		}
	}
	if !read {
		t.Error("no ctstage_monitor_entries_read in the monitor's metrics")
	}
	found := map[string]monitor.Event{}
	for _, c := range ev.certs() {
		found[c.Log+"/"+c.SHA256] = c
	}
	for _, w := range wants {
		c, ok := found[w.log+"/"+w.sha]
		switch {
		case !ok:
			t.Errorf("precertificate %s not found in %s", w.sha[:12], w.log)
		case w.index >= 0 && int64(*c.Index) != w.index:
			t.Errorf("%s: found at index %d, the SCT says %d", w.log, *c.Index, w.index)
		case !c.Precert:
			t.Errorf("%s: index %d not reported as a precertificate", w.log, *c.Index)
		}
	}
	// A log may hold a precertificate the CA did not wait for (the race
	// cancels the rest once the policy is met): more finds are fine, of
	// watched precertificates only.
	watched := map[string]bool{}
	for _, w := range wants {
		watched[w.sha] = true
	}
	onlyWatched := func(t *testing.T, cs []monitor.Event) {
		t.Helper()
		for _, c := range cs {
			if !watched[c.SHA256] {
				t.Errorf("reported %s in %s, which is no watched precertificate", c.SHA256[:12], c.Log)
			}
		}
	}
	onlyWatched(t, ev.certs())

	// The log grows; a new monitor on the same state reads only the rest.
	issue("m9.watched.example.com")
	time.Sleep(1500 * time.Millisecond)
	ev2 := &events{}
	m2 := newMonitor(t, fs, dir, ev2, monitor.Options{Watch: []string{"watched.example.com"}, Logger: testLogger()})
	// Poll until both logs' heads cover the new entry. An RFC 6962 log
	// integrates within about a second when idle; under CI, with other
	// test binaries on the same 2 cores, one once took over 15 s (only
	// one of the two logs reported within it), so wait up to 45 s: the
	// wait ends as soon as both logs show it.
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if n := m2.Once(context.Background()); n != 0 {
			t.Fatalf("%d alerts after growth: %+v", n, ev2.alerts())
		}
		if len(ev2.certs()) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range wants[len(wants)-2:] {
		watched[w.sha] = true
	}
	m9 := wants[len(wants)-1].sha
	for _, c := range ev2.certs() {
		if c.SHA256 != m9 {
			t.Errorf("resumed: reported %s in %s again", c.SHA256[:12], c.Log)
		}
	}
	if got := len(ev2.certs()); got < 2 {
		t.Errorf("resumed: %d watched certificates reported, want the new one in at least 2 logs: %+v", got, ev2.certs())
	}

	// The binary, on a fresh state.
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certFile, lastChain, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ctstageBinary(t), "monitor", "--once", "--json", "--log-list", fs.LogURL+"/log.v3.json",
		"--state", t.TempDir(), "--watch", "watched.example.com", "--certs", certFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if code := exitCode(t, err); code != 0 {
		t.Fatalf("ctstage monitor --once: exit %d\n%s\n%s", code, out, stderr.String())
	}

	var bin []monitor.Event
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e monitor.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("a line that is not JSON: %q", sc.Text())
		}
		if e.Alert != "" {
			t.Errorf("alert from the binary: %+v", e)
		}
		if e.Event == "certificate" {
			bin = append(bin, e)
		}
	}
	onlyWatched(t, bin)
	if len(bin) < len(wants) { // the first three and m9, in two logs each at least
		t.Errorf("the binary reported %d watched certificates, want %d or more", len(bin), len(wants))
	}
}

// TestMonitorCatchesFaults sets each fault the monitor must catch on a
// stage's logs and polls: the alert comes, and once the fault is cleared
// no further alert does.
func TestMonitorCatchesFaults(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	grow := func() {
		t.Helper()
		for _, shard := range []string{"classic-a", "tiled-a"} {
			growShard(t, fs, shard, 1)
		}
	}
	grow()
	ev := &events{}
	m := newMonitor(t, fs, t.TempDir(), ev, monitor.Options{Unreachable: time.Second, RequestTimeout: 3 * time.Second})
	ctx := context.Background()
	if n := m.Once(ctx); n != 0 {
		t.Fatalf("%d alerts before any fault: %+v", n, ev.alerts())
	}
	desc := func(shard string) string { return fs.ll[shard].log.Description }
	for _, tc := range []struct {
		shard, fault string
		grow         bool
		want         []string // any of these
	}{
		{"classic-a", `{"kind":"bad_sth_signature"}`, false, []string{monitor.AlertSTHSignature}},
		{"tiled-a", `{"kind":"bad_sth_signature"}`, false, []string{monitor.AlertSTHSignature}},
		{"classic-a", `{"kind":"sth_rollback"}`, false, []string{monitor.AlertTimestampRegression, monitor.AlertInconsistent}},
		{"tiled-a", `{"kind":"sth_rollback"}`, false, []string{monitor.AlertTimestampRegression, monitor.AlertInconsistent}},
		{"classic-a", `{"kind":"bad_entry","endpoints":["get-entries"]}`, true, []string{monitor.AlertRootMismatch, monitor.AlertBadEntry}},
		{"tiled-a", `{"kind":"bad_entry"}`, true, []string{monitor.AlertRootMismatch, monitor.AlertBadEntry}},
		{"classic-a", `{"kind":"bad_proof","endpoints":["get-sth-consistency"]}`, true, []string{monitor.AlertInconsistent}},
		{"tiled-a", `{"kind":"bad_proof"}`, true, []string{monitor.AlertInconsistent}},
		{"classic-b", `{"kind":"unavailable"}`, false, []string{monitor.AlertUnreachable}},
		{"tiled-b", `{"kind":"drop"}`, false, []string{monitor.AlertUnreachable}},
	} {
		t.Run(tc.shard+"/"+strings.SplitN(strings.Split(tc.fault, `"`)[3], `"`, 2)[0], func(t *testing.T) {
			before := len(ev.alerts())
			fs.set(t, tc.shard, "faults", tc.fault)
			if tc.grow {
				grow()
			}
			m.Once(ctx)
			if tc.want[0] == monitor.AlertUnreachable {
				time.Sleep(1100 * time.Millisecond)
				m.Once(ctx)
			}
			var got []string
			for _, a := range ev.alerts()[before:] {
				if a.Log == desc(tc.shard) {
					got = append(got, a.Alert)
				}
			}
			hit := false
			for _, g := range got {
				for _, w := range tc.want {
					hit = hit || g == w
				}
			}
			if !hit {
				t.Errorf("alerts %v, want one of %v", got, tc.want)
			}
			t.Logf("alerts: %v", got)
			fs.clear(t, tc.shard)
			grow()
			after := len(ev.alerts())
			m.Once(ctx)
			if extra := ev.alerts()[after:]; len(extra) > 0 {
				t.Errorf("alerts after the fault was cleared: %+v", extra)
			}
		})
	}
}

// TestMonitorMMD: an SCT whose entry a log holds back (no_integrate on
// an RFC 6962 shard, no_publish on a tiled one, both with a 2 s MMD) is
// pending within the MMD and an mmd_violation after it; once the log
// integrates it, a new poll finds it and raises nothing.
func TestMonitorMMD(t *testing.T) {
	ca, root := newCA(t)
	conf := strings.Replace(verifyFaultsConfig, "{name: tiled-b, type: tiled}", "{name: tiled-b, type: tiled, mmd: 2s}", 1)
	fs := startFaultStageText(t, t.TempDir(), conf, ca, root)
	var scts []monitor.SCT
	for _, tc := range []struct{ shard, fault string }{{"classic-b", `{"kind":"no_integrate"}`}, {"tiled-b", `{"kind":"no_publish"}`}} {
		fs.set(t, tc.shard, "faults", tc.fault)
		s := submit(t, fs.client(t, tc.shard), fs.chain(t, "held-"+tc.shard+".example.com"), false)
		m := monitor.SCT{LogID: s.sct.LogID.KeyID, Time: time.UnixMilli(int64(s.sct.Timestamp)), LeafHash: monitor.Hash(leafHash(t, s.chain, false, s.sct)), Source: tc.shard}
		if idx, err := sctverify.LeafIndex(s.sct.Extensions); err == nil {
			m.LeafIndex = &idx
		}
		scts = append(scts, m)
	}
	ev := &events{}
	dir := t.TempDir()
	m := newMonitor(t, fs, dir, ev, monitor.Options{SCTs: scts})
	if n := m.Once(context.Background()); n != 0 {
		t.Fatalf("alerts within the MMD: %+v", ev.alerts())
	}
	time.Sleep(2500 * time.Millisecond)
	m.Once(context.Background())
	got := map[string]bool{}
	for _, a := range ev.alerts() {
		if a.Alert == monitor.AlertMMDViolation {
			got[a.Log] = true
		}
	}
	for _, shard := range []string{"classic-b", "tiled-b"} {
		if !got[fs.ll[shard].log.Description] {
			t.Errorf("%s: no mmd_violation for a held entry past the MMD: %+v", shard, ev.alerts())
		}
	}
	fs.clear(t, "classic-b")
	fs.clear(t, "tiled-b")
	ev2 := &events{}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		// A fresh monitor on the same state: the entries are in now.
		ev2 = &events{}
		m2 := newMonitor(t, fs, dir, ev2, monitor.Options{SCTs: scts})
		if m2.Once(context.Background()) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if a := ev2.alerts(); len(a) > 0 {
		t.Errorf("alerts once the entries are integrated: %+v", a)
	}
}

// TestMonitorSplitView: with split_view showing a fork to 127.0.0.2, a
// monitor with a vantage from that address raises split_view on both
// kinds of log once the main view grew past the fork; a monitor that
// reads only from 127.0.0.2 sees nothing wrong on its own, but one
// comparing its heads (gossip, GET /heads) with its own raises it too.
func TestMonitorSplitView(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	shards := []string{"classic-a", "tiled-a"}
	grow := func(n int) {
		t.Helper()
		for _, shard := range shards {
			growShard(t, fs, shard, n)
		}
	}
	grow(2)
	vantage, err := monitor.VantageFrom(forkAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	m := newMonitor(t, fs, t.TempDir(), ev, monitor.Options{Vantages: []monitor.Vantage{vantage}})
	ctx := context.Background()
	if n := m.Once(ctx); n != 0 {
		t.Fatalf("alerts before the fork: %+v", ev.alerts())
	}
	for _, shard := range shards {
		fs.set(t, shard, "faults", `{"kind":"split_view","clients":["`+forkAddr+`"]}`)
	}
	// The forked monitor: everything it reads comes from 127.0.0.2.
	forkedEv := &events{}
	forked := newMonitor(t, fs, t.TempDir(), forkedEv, monitor.Options{HTTPClient: vantage.HTTPClient})
	if n := forked.Once(ctx); n != 0 {
		t.Errorf("the fork alone raised alerts: %+v", forkedEv.alerts())
	}
	gossip := httptest.NewServer(forked.HeadsHandler())
	defer gossip.Close()
	grow(2) // the main view passes the fork's size
	m.Once(ctx)
	split := map[string]bool{}
	for _, a := range ev.alerts() {
		if a.Alert == monitor.AlertSplitView {
			split[a.Log] = true
		}
	}
	for _, shard := range shards {
		if !split[fs.ll[shard].log.Description] {
			t.Errorf("%s: no split_view from the vantage: %+v", shard, ev.alerts())
		}
	}
	// Gossip: a main-view monitor with the forked monitor's heads.
	rsp, err := http.Get(gossip.URL)
	if err != nil {
		t.Fatal(err)
	}
	heads, err := monitor.ReadHeads(rsp.Body, "gossip")
	rsp.Body.Close()
	if err != nil || len(heads) != 4 {
		t.Fatalf("gossiped heads: %v (%d)", err, len(heads))
	}
	gev := &events{}
	g := newMonitor(t, fs, t.TempDir(), gev, monitor.Options{Heads: heads})
	g.Once(ctx)
	gsplit := map[string]bool{}
	for _, a := range gev.alerts() {
		gsplit[a.Log] = a.Alert == monitor.AlertSplitView
	}
	for _, shard := range shards {
		if !gsplit[fs.ll[shard].log.Description] {
			t.Errorf("%s: no split_view from gossiped heads: %+v", shard, gev.alerts())
		}
	}
	// Cleared: the vantage sees the main view again, and nothing more is raised.
	for _, shard := range shards {
		fs.clear(t, shard)
	}
	grow(1)
	before := len(ev.alerts())
	m.Once(ctx)
	if extra := ev.alerts()[before:]; len(extra) > 0 {
		t.Errorf("alerts after the fork was cleared: %+v", extra)
	}
}

// TestMonitorKillResume kills `ctstage monitor` with SIGKILL while it
// catches up on a log of 600 entries (read through a proxy that cuts
// get-entries to 50 and slows each), then runs it again with --once:
// it starts where its state says, reads again at most one batch, and
// reports every watched entry, with no alert.
func TestMonitorKillResume(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStage(t, t.TempDir(), ca, root)
	const shard, n = "classic-a", 600
	c := fs.client(t, shard)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := fmt.Sprintf("k%d.example.org", i)
			if i%100 == 7 {
				name = fmt.Sprintf("k%d.watched.example.com", i)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := c.AddChain(ctx, asn1Chain(fs.chain(t, name))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitForSTH(t, c, n, 60*time.Second)

	// The proxy: get-entries cut to 50 and 40 ms slower; every start seen.
	target := strings.TrimSuffix(fs.ll[shard].log.URL, "/")
	var mu sync.Mutex
	var starts []uint64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if strings.HasSuffix(r.URL.Path, "/get-entries") {
			s, _ := strconv.ParseUint(q.Get("start"), 10, 64)
			e, _ := strconv.ParseUint(q.Get("end"), 10, 64)
			q.Set("end", strconv.FormatUint(min(e, s+49), 10))
			mu.Lock()
			starts = append(starts, s)
			mu.Unlock()
			time.Sleep(40 * time.Millisecond)
		}
		rsp, err := http.Get(target + r.URL.Path + "?" + q.Encode())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer rsp.Body.Close()
		w.WriteHeader(rsp.StatusCode)
		io.Copy(w, rsp.Body)
	}))
	defer proxy.Close()
	l := fs.ll[shard].log
	b, err := json.Marshal(&loglist3.LogList{Version: "1", LogListTimestamp: time.Now(), Operators: []*loglist3.Operator{{Name: "A", Email: []string{"a@example.com"},
		Logs: []*loglist3.Log{{Description: l.Description, LogID: l.LogID, Key: l.Key, URL: proxy.URL + "/", MMD: l.MMD, State: l.State}}}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "list.json")
	if err := os.WriteFile(list, b, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	args := []string{"monitor", "--log-list", list, "--state", state, "--json", "--watch", "watched.example.com", "--parallel", "1", "--save-every", "50"}
	cmd := exec.Command(ctstageBinary(t), append(args, "--interval", "1h")...)
	var firstOut bytes.Buffer
	cmd.Stdout = &firstOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stateFile := filepath.Join(state, hex.EncodeToString(l.LogID)+".json")
	saved := func() uint64 {
		var st struct {
			RangeEnd uint64 `json:"range_end"`
		}
		b, err := os.ReadFile(stateFile)
		if err == nil {
			json.Unmarshal(b, &st)
		}
		return st.RangeEnd
	}
	for deadline := time.Now().Add(30 * time.Second); saved() < 200; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the monitor saved %d entries in 30 s", saved())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	mu.Lock()
	fetchedEnd := uint64(0)
	for _, s := range starts {
		fetchedEnd = max(fetchedEnd, s+50)
	}
	before := len(starts)
	mu.Unlock()
	resumeAt := saved()
	if resumeAt >= n {
		t.Fatalf("killed too late: %d of %d entries saved", resumeAt, n)
	}

	out, err := exec.Command(ctstageBinary(t), append(args, "--once")...).Output()
	if code := exitCode(t, err); code != 0 {
		t.Fatalf("resumed --once: exit %d\n%s", code, out)
	}
	mu.Lock()
	after := starts[before:]
	mu.Unlock()
	if len(after) == 0 || after[0] != resumeAt {
		t.Fatalf("resumed at %v, want %d (the saved range)", after, resumeAt)
	}
	if again := fetchedEnd - resumeAt; again > 50 {
		t.Errorf("read %d entries again (fetched up to %d before the kill, resumed at %d), more than one batch", again, fetchedEnd, resumeAt)
	}
	if got := saved(); got != n {
		t.Errorf("after the resumed run the state holds %d entries, want %d", got, n)
	}
	var found []uint64
	names := map[string]bool{}
	for i, o := range [][]byte{firstOut.Bytes(), out} {
		for _, line := range bytes.Split(bytes.TrimSpace(o), []byte("\n")) {
			var e monitor.Event
			if json.Unmarshal(line, &e) == nil && e.Event == "certificate" {
				if i == 1 {
					found = append(found, *e.Index)
				}
				names[strings.Join(e.Names, ",")] = true
			}
		}
	}
	if len(names) != n/100 {
		t.Errorf("the two runs reported %d watched certificates, want %d: %v", len(names), n/100, names)
	}
	t.Logf("killed with %d entries saved, %d fetched; resumed at %d; found after resuming %v", resumeAt, fetchedEnd, after[0], found)
	for _, idx := range found {
		if idx < resumeAt {
			t.Errorf("reported entry %d again, before the resumed range at %d", idx, resumeAt)
		}
	}
}

// TestMonitorCAFeed: with --ca, the monitor reads the running CA's
// issuances (GET /issuances on the management address) and checks their
// SCTs: one from a log that holds its entries back is an mmd_violation
// once the MMD (2 s here) passed, named by the certificate's serial; a
// restart on the same state reads no issuance again.
func TestMonitorCAFeed(t *testing.T) {
	ca, root := newCA(t)
	fs := startFaultStageText(t, t.TempDir(), verifyFaultsConfig, ca, root)
	// Operator B's only working log holds its entries: the CA must use it.
	fs.set(t, "classic-b", "faults", `{"kind":"no_integrate"}`)
	fs.set(t, "tiled-b", "faults", `{"kind":"unavailable"}`)
	iss, err := fs.CA.Issue(context.Background(), caRequest(t, "fed.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	serial := iss.Serial.Text(16)
	dir := t.TempDir()
	ev := &events{}
	m := newMonitor(t, fs, dir, ev, monitor.Options{CAURL: fs.MgmtURL})
	if n := m.Once(context.Background()); n != 0 {
		t.Fatalf("alerts within the MMD: %+v", ev.alerts())
	}
	time.Sleep(2500 * time.Millisecond)
	m.Once(context.Background())
	found := false
	for _, a := range ev.alerts() {
		found = found || a.Alert == monitor.AlertMMDViolation && a.Log == fs.ll["classic-b"].log.Description && strings.Contains(a.Detail, "CA serial "+serial)
	}
	if !found {
		t.Errorf("no mmd_violation for the CA's certificate %s: %+v", serial, ev.alerts())
	}
	// The cursor is kept: a new monitor on the state reads nothing again.
	b, err := os.ReadFile(filepath.Join(dir, "ca-cursor.json"))
	if err != nil || !strings.Contains(string(b), serial) {
		t.Errorf("the CA cursor: %s, %v", b, err)
	}
	rsp, err := http.Get(fs.MgmtURL + "/issuances?limit=0")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /issuances?limit=0: %s, want 400", rsp.Status)
	}
}

// growShard submits n certificates to shard and returns once its tree
// holds them: an RFC 6962 shard's STH (from the main view, 127.0.0.1)
// has grown by n; a tiled shard's SCT comes once published.
func growShard(t *testing.T, fs *faultStage, shard string, n int) {
	t.Helper()
	c := fs.client(t, shard)
	var before uint64
	if fs.ll[shard].tiled == nil {
		sth, err := c.GetSTH(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		before = sth.TreeSize
	}
	for range n {
		submit(t, c, fs.chain(t, fmt.Sprintf("grow-%d.example.com", time.Now().UnixNano())), false)
	}
	if fs.ll[shard].tiled == nil {
		waitForSTH(t, c, before+uint64(n), 30*time.Second)
	}
}
