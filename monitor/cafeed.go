package monitor

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The CA feed: the issuance records of a running ctstage CA, read from
// its management endpoint (GET /issuances), whose certificates' SCTs the
// monitor then checks like those of --certs. The cursor is kept in
// StateDir/ca-cursor.json, so a restart reads only what is new.

type caPage struct {
	Issuances []struct {
		Serial string   `json:"serial"`
		Chain  [][]byte `json:"chain"`
	} `json:"issuances"`
	Next struct {
		Since time.Time `json:"since"`
		After string    `json:"after"`
	} `json:"next"`
}

type caCursor struct {
	Since time.Time `json:"since"`
	After string    `json:"after"`
}

// pullCA reads the CA's issuances since the saved cursor and adds their
// SCTs to the followers; it returns how many certificates it read.
func (m *Monitor) pullCA(ctx context.Context) (int, error) {
	path := filepath.Join(m.opts.StateDir, "ca-cursor.json")
	var cur caCursor
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &cur); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	n := 0
	for {
		q := url.Values{"limit": {"500"}, "after": {cur.After}}
		if !cur.Since.IsZero() {
			q.Set("since", cur.Since.UTC().Format(time.RFC3339Nano))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(m.opts.CAURL, "/")+"/issuances?"+q.Encode(), nil)
		if err != nil {
			return n, err
		}
		rsp, err := m.opts.HTTPClient.Do(req)
		if err != nil {
			return n, err
		}
		var page caPage
		err = json.NewDecoder(rsp.Body).Decode(&page)
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusOK || err != nil {
			return n, fmt.Errorf("GET /issuances: %s (%v)", rsp.Status, err)
		}
		for _, is := range page.Issuances {
			var chain []*x509.Certificate
			for _, der := range is.Chain {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return n, fmt.Errorf("issuance %s: %w", is.Serial, err)
				}
				chain = append(chain, c)
			}
			scts, err := SCTsOf("CA serial "+is.Serial, chain)
			if err != nil {
				m.opts.Logger.Warn("couldn't read an issuance's SCTs", "serial", is.Serial, "err", err)
				continue
			}
			m.AddSCTs(scts)
			n++
		}
		if len(page.Issuances) == 0 {
			break
		}
		cur = caCursor{Since: page.Next.Since, After: page.Next.After}
		b, _ := json.Marshal(cur)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return n, err
		}
	}
	return n, nil
}

// AddSCTs gives each follower the SCTs of its log to check.
func (m *Monitor) AddSCTs(scts []SCT) {
	for _, f := range m.followers {
		f.pmu.Lock()
		for _, s := range scts {
			if s.LogID == f.log.ID {
				f.pending = append(f.pending, s)
			}
		}
		f.pmu.Unlock()
	}
}
