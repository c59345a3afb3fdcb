package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
)

// ErrNoLog reports that a log list has no log that fits.
var ErrNoLog = errors.New("no suitable log in the log list")

// maxLogListBytes bounds the log list read.
const maxLogListBytes = 16 << 20

// FetchLogList reads a v3 log list from an http(s) URL or a file.
func FetchLogList(ctx context.Context, hc *http.Client, src string) (*loglist3.LogList, error) {
	var b []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		b, err = get(ctx, hc, src)
	} else {
		b, err = os.ReadFile(src)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log list: %w", err)
	}
	ll, err := loglist3.NewFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the log list %s: %w", src, err)
	}
	return ll, nil
}

func get(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxLogListBytes))
}

// PickLog returns the first log of ll, in list order, that takes
// submissions (pending, qualified or usable) and whose temporal interval,
// if it has one, contains notAfter.
func PickLog(ll *loglist3.LogList, notAfter time.Time) (*loglist3.Log, error) {
	for _, op := range ll.Operators {
		for _, l := range op.Logs {
			if !takesSubmissions(l.State) {
				continue
			}
			if ti := l.TemporalInterval; ti != nil && (notAfter.Before(ti.StartInclusive) || !notAfter.Before(ti.EndExclusive)) {
				continue
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("%w: none takes certificates with NotAfter %s", ErrNoLog, notAfter.UTC().Format(time.RFC3339))
}

func takesSubmissions(s *loglist3.LogStates) bool {
	return s == nil || s.Pending != nil || s.Qualified != nil || s.Usable != nil
}
