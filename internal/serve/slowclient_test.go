package serve

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/httpserver"
)

// slowLimits are shortened limits, so that the test can wait them out.
var slowLimits = httpserver.Limits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second}

// trickle opens a connection to addr (over TLS when tlsOn), writes head at
// once, then one byte of drip every 100 ms until the server stops
// reading, and returns how long after the start the server closed the
// connection. A server that never closes it is cut at limit.
func trickle(t *testing.T, addr string, tlsOn bool, head, drip string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var c net.Conn
	var err error
	if tlsOn {
		c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; time.Since(start) < limit; i++ {
			if _, err := io.WriteString(c, string(drip[i%len(drip)])); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c.SetReadDeadline(start.Add(limit))
	io.Copy(io.Discard, c) // until the server closes, or the deadline
	return time.Since(start)
}

// TestSlowClientsCutOff sends, to every HTTP listener, a request whose
// headers trickle in at 10 bytes a second, and one whose body does, and
// measures when the server closes the connection: within
// ReadHeaderTimeout for the headers and ReadTimeout for the body, plus a
// margin, on each of them (the CA and DNS management and ACME listeners
// were not cut at all before they shared the logs' server set-up).
func TestSlowClientsCutOff(t *testing.T) {
	o := testOptions(t.TempDir(), listeners{true, true, true, true})
	o.ServerLimits = slowLimits
	st, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, st) }) // after the parallel subtests
	addrs := st.addrs()
	targets := []struct {
		name, path string
		tls        bool
	}{
		{"logs", "/testflume2026h2/ct/v1/add-chain", false},
		{"mgmt", "/issue", false},
		{"acme", "/acme/new-account", true},
		{"dnsmgmt", "/set-txt", false},
	}
	const margin = 1500 * time.Millisecond
	limit := slowLimits.ReadTimeout + 10*time.Second
	for _, tg := range targets {
		t.Run(tg.name+"/header", func(t *testing.T) {
			t.Parallel()
			d := trickle(t, addrs[tg.name], tg.tls, "POST "+tg.path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n", "X-Slow: aaaaaaaa\r\n", limit)
			if d < slowLimits.ReadHeaderTimeout-200*time.Millisecond || d > slowLimits.ReadHeaderTimeout+margin {
				t.Errorf("slow headers cut after %s, want about ReadHeaderTimeout %s", d.Round(time.Millisecond), slowLimits.ReadHeaderTimeout)
			}
			t.Logf("slow headers cut after %s", d.Round(time.Millisecond))
		})
		t.Run(tg.name+"/body", func(t *testing.T) {
			t.Parallel()
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", tg.path)
			d := trickle(t, addrs[tg.name], tg.tls, head, "a", limit)
			if d < slowLimits.ReadTimeout-200*time.Millisecond || d > slowLimits.ReadTimeout+margin {
				t.Errorf("slow body cut after %s, want about ReadTimeout %s", d.Round(time.Millisecond), slowLimits.ReadTimeout)
			}
			t.Logf("slow body cut after %s", d.Round(time.Millisecond))
		})
	}
}
