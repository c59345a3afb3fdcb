package integration

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// FsckEnv names the path of TesseraCT's fsck (v0.1.1), which .ci/run
// installs; the binary is named fsck, so it is never looked up on PATH.
const FsckEnv = "CTSTAGE_TESSERACT_FSCK"

// TestTesseraCTFsck runs TesseraCT's fsck, a checker nobody here wrote,
// over a tiled shard of 300 entries (certificates and precertificates,
// past the first tile): it verifies the checkpoint's signature with the
// listed key, recomputes every tile from the entry bundles, and checks
// the issuers. A wrong key makes it fail, which shows it checks.
//
// With --ui=false, fsck v0.1.1 exits 0 whatever it found (its main
// returns before it waits for the check's result), so the verdict is read
// from its log: the library's "Successfully fsck'd log with size N and
// root ..." line comes only after every tile matched.
func TestTesseraCTFsck(t *testing.T) {
	fsck := os.Getenv(FsckEnv)
	if fsck == "" {
		testenv.Unavailable(t, "%s is not set (GOBIN=DIR go install github.com/transparency-dev/tesseract/cmd/fsck@v0.1.1; %s=DIR/fsck)", FsckEnv, FsckEnv)
	}
	ca, root := newCA(t)
	st, err := startTiledStage(t, t.TempDir(), "sqlite", root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Shutdown(t.Context())
	ll := fetchLogList(t, st.LogURL)
	tl := ll.Operators[0].TiledLogs[0]
	c := logClient(t, &loglist3.Log{URL: tl.SubmissionURL, Key: tl.Key})
	notAfter := time.Now().AddDate(0, 0, 90)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			precert := i%3 == 0
			chain, err := ca.Leaf(fmt.Sprintf("fsck-%d.example.com", i), notAfter, precert)
			if err == nil {
				if precert {
					_, err = c.AddPreChain(t.Context(), asn1Chain(chain))
				} else {
					_, err = c.AddChain(t.Context(), asn1Chain(chain))
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	origin := strings.TrimSuffix(strings.TrimPrefix(tl.SubmissionURL, "http://"), "/")
	run := func(key []byte) (string, error) {
		out, err := exec.Command(fsck, "--monitoring_url", tl.MonitoringURL, "--origin", origin,
			"--public_key", base64.StdEncoding.EncodeToString(key), "--ui=false", "--N", "4").CombinedOutput()
		return string(out), err
	}
	ok := fmt.Sprintf("Successfully fsck'd log with size %d", n)
	out, err := run(tl.Key)
	if err != nil || !strings.Contains(out, ok) {
		t.Fatalf("fsck: %v\n%s", err, out)
	}
	other := ll.Operators[1].TiledLogs[0].Key
	if out, _ := run(other); strings.Contains(out, "Successfully fsck'd") {
		t.Errorf("fsck with another log's key passed:\n%s", out)
	}
}
