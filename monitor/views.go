package monitor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Vantage is another way of reaching the logs.
type Vantage struct {
	Name       string
	HTTPClient *http.Client
}

// VantageFrom is a vantage whose connections come from the local
// address ip (a second client address of this machine).
func VantageFrom(ip string, timeout time.Duration) (Vantage, error) {
	addr := net.ParseIP(ip)
	if addr == nil {
		return Vantage{}, fmt.Errorf("vantage %q is not an IP address", ip)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: addr}, Timeout: timeout}
	return Vantage{Name: ip, HTTPClient: &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: d.DialContext}}}, nil
}

// ForeignHead is a tree head of a log learned elsewhere.
type ForeignHead struct {
	LogID  [32]byte
	Head   Head
	Source string
}

// ReadHeads reads tree heads learned elsewhere: JSON lines, each
// {"log_id": base64 or hex, "size": N, "root": hex, "time": RFC 3339},
// as another monitor's heads or a gossip endpoint give them. name names
// them in alerts.
func ReadHeads(r io.Reader, name string) ([]ForeignHead, error) {
	var out []ForeignHead
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var raw struct {
			LogID string `json:"log_id"`
			Head
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		id, err := parseLogID(raw.LogID)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		out = append(out, ForeignHead{LogID: id, Head: raw.Head, Source: fmt.Sprintf("%s line %d", name, n)})
	}
	return out, sc.Err()
}

func parseLogID(s string) ([32]byte, error) {
	var id [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		b, err = base64.StdEncoding.DecodeString(s)
	}
	if err != nil || len(b) != 32 {
		return id, fmt.Errorf("log_id %q is not 32 bytes in hex or base64", s)
	}
	copy(id[:], b)
	return id, nil
}

// HeadsHandler serves GET /heads: the verified tree head of every log,
// one JSON line each in ReadHeads' form, for other monitors to compare.
func (m *Monitor) HeadsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, f := range m.followers {
			f.mu.Lock()
			v := f.st.Verified
			f.mu.Unlock()
			if v == nil {
				continue
			}
			b, _ := json.Marshal(struct {
				LogID string `json:"log_id"`
				Log   string `json:"log"`
				Head
			}{hex.EncodeToString(f.log.ID[:]), f.log.Description, *v})
			w.Write(append(b, '\n'))
		}
	})
}

// LoadHeads reads heads learned elsewhere from a file, or from an http(s)
// URL such as another monitor's /heads (ReadHeads' form).
func LoadHeads(ctx context.Context, hc *http.Client, src string) ([]ForeignHead, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		b, err := getBody(ctx, hc, src, 16<<20)
		if err != nil {
			return nil, err
		}
		return ReadHeads(bytes.NewReader(b), src)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadHeads(f, src)
}
