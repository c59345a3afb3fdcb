package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/loglist3"
	"github.com/google/certificate-transparency-go/tls"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// TestFaults runs `ctstage serve` on bad storage: a data directory that
// cannot be written, a damaged database file, a disk that fills up while
// serving. Each must end in a clear error at start (exit 1, a message that
// names the problem, the file left as it was) or, for writes at run time,
// HTTP 503 with Retry-After, and never in an SCT for an entry that is then
// lost.
func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, data string) // makes --data bad
		want    []string                        // in the output, lower case
	}{
		{"DataUnderAFile", dataUnderAFile, []string{"data", "not a directory"}},
		{"ReadOnlyEmptyFS", readOnlyEmptyFS, []string{"read-only file system"}},
		{"ReadOnlyFS", readOnlyFS, []string{"read-only file system"}},
		{"ReadOnlyDatabaseFile", readOnlyDBFile, []string{"trillian.db", "read-only"}},
		{"GarbledPages", damageDB(garblePages), []string{"trillian.db", "corrupt"}},
		{"GarbageFile", damageDB(garbageFile), []string{"trillian.db", "not a database"}},
		{"TruncatedFile", damageDB(truncateFile), []string{"trillian.db", "corrupt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			tc.prepare(t, data)
			before := dbDigest(data)
			code, out, took := runServeToExit(t, "--data", data, "--log-addr", "127.0.0.1:0")
			t.Logf("exit %d after %v:\n%s", code, took.Round(time.Millisecond), tail(out, 2000))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(out), w) {
					t.Errorf("output does not say %q", w)
				}
			}
			if took > 15*time.Second {
				t.Errorf("took %v to refuse", took)
			}
			if after := dbDigest(data); after != before {
				t.Errorf("the refused start changed trillian.db")
			}
		})
	}
	t.Run("DiskFull", testDiskFull)
}

// runServeToExit runs `ctstage serve` and expects it to exit on its own;
// one still running after 30 s is killed and reported.
func runServeToExit(t *testing.T, args ...string) (code int, out string, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	b, err := exec.CommandContext(ctx, ctstageBinary(t), append(append([]string{"serve"}, args...), isolationArgs...)...).CombinedOutput()
	took = time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("ctstage serve still running after %v: it did not refuse the bad storage\n%s", took, tail(string(b), 2000))
	}
	return exitCode(t, err), string(b), took
}

// dbDigest is the SHA-256 of --data/trillian.db, or "" when there is none.
func dbDigest(data string) string {
	b, err := os.ReadFile(filepath.Join(data, "trillian.db"))
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// dataUnderAFile puts --data under a regular file. Tests run as root, whom
// file modes do not stop; a path that cannot be a directory can.
func dataUnderAFile(t *testing.T, data string) {
	parent := filepath.Dir(data)
	if err := os.RemoveAll(parent); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(parent, []byte("a file, not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readOnlyEmptyFS makes --data an empty read-only file system.
func readOnlyEmptyFS(t *testing.T, data string) {
	mountTmpfs(t, data, "1m")
	remount(t, data, syscall.MS_RDONLY, "")
}

// readOnlyFS makes --data a read-only file system holding a complete,
// once-served data directory.
func readOnlyFS(t *testing.T, data string) {
	mountTmpfs(t, data, "16m")
	serveOnce(t, data)
	remount(t, data, syscall.MS_RDONLY, "")
}

// readOnlyDBFile leaves --data writable but makes trillian.db itself a
// read-only bind mount, as a database file on a medium that turned
// read-only would be.
func readOnlyDBFile(t *testing.T, data string) {
	serveOnce(t, data)
	db := filepath.Join(data, "trillian.db")
	if err := syscall.Mount(db, db, "", syscall.MS_BIND, ""); err != nil {
		testenv.Unavailable(t, "couldn't bind-mount %s: %v", db, err)
	}
	t.Cleanup(func() { unmount(t, db) })
	remount(t, db, syscall.MS_BIND|syscall.MS_RDONLY, "")
}

// damageDB serves once on data (so that trillian.db holds trees and
// entries), stops cleanly and then damages the database file with f.
func damageDB(f func(t *testing.T, path string, size int64)) func(t *testing.T, data string) {
	return func(t *testing.T, data string) {
		serveOnce(t, data)
		db := filepath.Join(data, "trillian.db")
		// A clean stop checkpoints the WAL into the file, so that the
		// damage below is not hidden by newer copies of its pages.
		if fi, err := os.Stat(db + "-wal"); err == nil && fi.Size() > 0 {
			t.Fatalf("%s-wal left with %d bytes after a clean stop", db, fi.Size())
		}
		fi, err := os.Stat(db)
		if err != nil {
			t.Fatal(err)
		}
		f(t, db, fi.Size())
	}
}

// garblePages overwrites the pages of the file's second half, leaving the
// header and the schema intact.
func garblePages(t *testing.T, path string, size int64) {
	writeAt(t, path, bytes.Repeat([]byte{0xa5}, int(size/2)), size/2/4096*4096)
}

// garbageFile replaces the whole file by bytes that are no database.
func garbageFile(t *testing.T, path string, size int64) {
	b := bytes.Repeat([]byte("garbage "), int(size/8))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// truncateFile cuts the file to its first half.
func truncateFile(t *testing.T, path string, size int64) {
	if err := os.Truncate(path, size/2/4096*4096); err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, path string, b []byte, off int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// serveOnce starts ctstage on data, logs a few entries in every shard of
// the first operator, and stops it with SIGTERM.
func serveOnce(t *testing.T, data string) {
	t.Helper()
	ca, root := newCA(t)
	s := startServer(t, "--data", data, "--extra-roots", root)
	ll := fetchLogList(t, "http://"+s.addr)
	for _, l := range ll.Operators[0].Logs {
		c := verifyingClient(t, l)
		notAfter := l.TemporalInterval.StartInclusive.Add(24 * time.Hour)
		for i := range 20 {
			chain, err := ca.Leaf(fmt.Sprintf("once-%d.example.com", i), notAfter, i%2 == 0)
			if err != nil {
				t.Fatal(err)
			}
			submit(t, c, chain, i%2 == 0)
		}
		waitForSTH(t, c, 20, 5*time.Second)
	}
	s.term(t)
}

// mountTmpfs mounts a tmpfs of the given size (e.g. "4m") on dir, creating
// dir, and unmounts it when the test ends. Mounting needs root (or
// CAP_SYS_ADMIN); without it the test is skipped, or fails under CI=true.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		testenv.Unavailable(t, "couldn't mount a tmpfs on %s to simulate the fault: %v", dir, err)
	}
	t.Cleanup(func() { unmount(t, dir) })
}

// remount changes the flags and options of the mount on dir.
func remount(t *testing.T, dir string, flags uintptr, opts string) {
	t.Helper()
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|flags, opts); err != nil {
		t.Fatalf("couldn't remount %s: %v", dir, err)
	}
}

// unmount unmounts dir, detaching it lazily if something still holds it.
func unmount(t *testing.T, dir string) {
	if err := syscall.Unmount(dir, 0); err != nil {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("couldn't unmount %s: %v", dir, err)
		}
	}
}

// fullDiskReserve is the room left on the file system when it is filled:
// enough for a few hundred entries, so that the disk fills under the test's
// submissions rather than at once.
const fullDiskReserve = 512 << 10

// testDiskFull serves from a small tmpfs, fills it while submitting, and
// checks that writes get 503 with Retry-After (never 500, never an SCT for
// an entry that is then lost), that reads keep working, and that writes
// resume once there is room again, with everything promised still in the
// tree, also after a kill -9 and restart.
func testDiskFull(t *testing.T) {
	start := time.Now()
	data := filepath.Join(t.TempDir(), "data")
	mountTmpfs(t, data, "32m")
	ca, root := newCA(t)
	addr := restartableAddr(t)
	args := append([]string{"--data", data, "--extra-roots", root, "--log-level", "warn"}, isolationArgs...)
	srv := startServerAt(t, addr, args...)
	notAfter := time.Now().AddDate(0, 0, 90)
	l := shardIn(t, fetchLogList(t, "http://"+addr), 0, notAfter)
	c := verifyingClient(t, l)

	var promised []received
	add := func(name string, precert bool) (int, http.Header, string) {
		chain, err := ca.Leaf(name, notAfter, precert)
		if err != nil {
			t.Fatal(err)
		}
		code, hdr, body, sct := rawAdd(t, c, l, chain, precert)
		if sct != nil {
			promised = append(promised, received{chain: chain, precert: precert, sct: sct})
		}
		return code, hdr, body
	}
	for i := range 10 {
		if code, _, body := add(fmt.Sprintf("before-full-%d.example.com", i), i%2 == 0); code != http.StatusOK {
			t.Fatalf("add before the disk is full: %d %s", code, body)
		}
	}
	waitForSTH(t, c, 10, 5*time.Second)

	filler := fillDisk(t, data, fullDiskReserve)
	full, firstFull := 0, ""
	for i := 0; i < 5000 && full < 20; i++ {
		code, hdr, body := add(fmt.Sprintf("filling-%d.example.com", i), i%2 == 0)
		switch code {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			full++
			if hdr.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %s", body)
			}
			if strings.TrimSpace(body) == "" {
				t.Errorf("503 without a message")
			}
			if firstFull == "" {
				firstFull = fmt.Sprintf("after %d submissions: 503, Retry-After %s, %q", i, hdr.Get("Retry-After"), strings.TrimSpace(body))
			}
		default:
			t.Fatalf("add on a filling disk: status %d, want 200 or 503: %s", code, body)
		}
	}
	if full == 0 {
		t.Fatalf("the disk never filled: %d entries accepted", len(promised))
	}
	t.Logf("disk full %s", firstFull)
	checkReadsWork(t, c, l, promised[0])

	// Room again: writes resume without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		code, _, body := add(fmt.Sprintf("after-full-%d.example.com", i), i%2 == 0)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("add after freeing space: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sth := proveReceived(t, c, promised, "after freeing space")

	// Full again, killed, and started while still full: a clear refusal to
	// start or a server that answers 503 to writes.
	filler = fillDisk(t, data, 0)
	srv.kill9(t)
	srv = launchServer(t, addr, args...)
	if exited := healthyOrExited(t, srv); exited {
		if msg := srv.stderr.String(); !strings.Contains(msg, "no space left") && !strings.Contains(msg, "disk is full") {
			t.Errorf("refused to start on a full disk without saying so:\n%s", tail(srv.stderr.String(), 2000))
		}
		t.Logf("start on a full disk refused: %s", lastLine(srv.stderr.String()))
	} else {
		code, hdr, body := add("restarted-full.example.com", false)
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Errorf("add after a start on a full disk: %d (Retry-After %q) %s", code, hdr.Get("Retry-After"), body)
		}
		t.Logf("started on a full disk; add answers %d", code)
		checkReadsWork(t, c, l, promised[len(promised)-1])
		srv.kill9(t)
	}

	// Room again: everything promised survives the kills.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	startServerAt(t, addr, args...)
	after := proveReceived(t, c, promised, "after kill -9 and restart")
	if err := consistentWith(c, sth, after); err != nil {
		t.Errorf("STH before the restart (size %d) and after (size %d): %v", sth.TreeSize, after.TreeSize, err)
	}
	t.Logf("%d SCTs received, %d answers 503 while full; all provable after freeing space and after a restart (%v)",
		len(promised), full, time.Since(start).Round(time.Millisecond))
}

// fillDisk writes a file that leaves about reserve bytes free on the file
// system of dir, and returns its path.
func fillDisk(t *testing.T, dir string, reserve int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for n := int64(0); n < free-reserve; n += int64(len(chunk)) {
		_, err := f.Write(chunk[:min(int64(len(chunk)), free-reserve-n)])
		if errors.Is(err, syscall.ENOSPC) {
			break // the server wrote meanwhile
		}
		if err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	return path
}

// rawAdd posts chain to l's add-chain or add-pre-chain once, without ct-go's
// retries, and returns the answer; for a 200 also the SCT, whose signature
// is checked.
func rawAdd(t *testing.T, c *client.LogClient, l *loglist3.Log, chain [][]byte, precert bool) (int, http.Header, string, *ct.SignedCertificateTimestamp) {
	t.Helper()
	var req ct.AddChainRequest
	req.Chain = chain
	ep, etype := ct.AddChainPath, ct.X509LogEntryType
	if precert {
		ep, etype = ct.AddPreChainPath, ct.PrecertLogEntryType
	}
	rsp, err := http.Post(strings.TrimSuffix(l.URL, "/")+ep, "application/json", bytes.NewReader(mustJSON(t, req)))
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if rsp.StatusCode != http.StatusOK {
		return rsp.StatusCode, rsp.Header, string(body), nil
	}
	sct, err := parseSCT(body)
	if err != nil {
		t.Fatalf("add answered 200 with %q: %v", body, err)
	}
	if err := c.VerifySCTSignature(*sct, etype, asn1Chain(chain)); err != nil {
		t.Fatalf("SCT signature: %v", err)
	}
	return rsp.StatusCode, rsp.Header, string(body), sct
}

// parseSCT decodes an add-chain answer.
func parseSCT(body []byte) (*ct.SignedCertificateTimestamp, error) {
	var r ct.AddChainResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	exts, err := base64.StdEncoding.DecodeString(r.Extensions)
	if err != nil {
		return nil, err
	}
	sct := &ct.SignedCertificateTimestamp{SCTVersion: r.SCTVersion, Timestamp: r.Timestamp, Extensions: exts}
	copy(sct.LogID.KeyID[:], r.ID)
	if rest, err := tls.Unmarshal(r.Signature, &sct.Signature); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("signature: %v (%d bytes left)", err, len(rest))
	}
	return sct, nil
}

// checkReadsWork checks that the read API answers on a full disk.
func checkReadsWork(t *testing.T, c *client.LogClient, l *loglist3.Log, r received) {
	t.Helper()
	ctx := context.Background()
	sth, err := c.GetSTH(ctx)
	if err != nil {
		t.Fatalf("get-sth on a full disk: %v", err)
	}
	if _, err := c.GetRawEntries(ctx, 0, 0); err != nil {
		t.Errorf("get-entries on a full disk: %v", err)
	}
	h := leafHash(t, r.chain, r.precert, r.sct)
	rsp, err := c.GetProofByHash(ctx, h, sth.TreeSize)
	if err != nil {
		t.Fatalf("get-proof-by-hash on a full disk: %v", err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rsp.LeafIndex), sth.TreeSize, h, rsp.AuditPath, sth.SHA256RootHash[:]); err != nil {
		t.Errorf("inclusion proof on a full disk: %v", err)
	}
	if _, err := c.GetAcceptedRoots(ctx); err != nil {
		t.Errorf("get-roots on a full disk: %v", err)
	}
}

// proveReceived waits until every SCT in recs has an entry whose inclusion
// proof verifies against one signature-checked STH, and returns that STH.
func proveReceived(t *testing.T, c *client.LogClient, recs []received, when string) *ct.SignedTreeHead {
	t.Helper()
	ptrs := make([]*received, len(recs))
	for i := range recs {
		ptrs[i] = &recs[i]
	}
	sth, missing := proveAll(t, c, ptrs, 15*time.Second)
	if len(missing) > 0 {
		t.Fatalf("%s: %d of %d SCTs have no provable entry (tree size %d): LOST", when, len(missing), len(recs), sth.TreeSize)
	}
	return sth
}

// healthyOrExited waits until s is healthy or has exited, and says which.
func healthyOrExited(t *testing.T, s *server) (exited bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return true
		default:
		}
		if rsp, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return false
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ctstage serve neither healthy nor gone after 30 s\n%s", tail(s.stderr.String(), 2000))
	return false
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
