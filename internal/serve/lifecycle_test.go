package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// listeners is which optional listeners a test Stage serves.
type listeners struct{ mgmt, acme, dns, dnsMgmt bool }

func (l listeners) String() string {
	return fmt.Sprintf("mgmt=%v,acme=%v,dns=%v,dnsmgmt=%v", l.mgmt, l.acme, l.dns, l.dnsMgmt)
}

func testOptions(dir string, l listeners) Options {
	o := Options{
		DataDir: dir, Storage: "sqlite",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Logs:   LogOptions{Addr: "127.0.0.1:0"},
		CA:     CAOptions{NoFinalSubmission: true},
	}
	if l.mgmt {
		o.CA.MgmtAddr = "127.0.0.1:0"
	}
	if l.acme {
		o.ACME.Addr = "127.0.0.1:0"
		if l.dns {
			o.ACME.DNSAddr = "127.0.0.1:0"
		}
		if l.dnsMgmt {
			o.ACME.DNSMgmtAddr = "127.0.0.1:0"
		}
	}
	return o
}

// addrs are the TCP addresses a Stage serves on.
func (st *Stage) addrs() map[string]string {
	m := map[string]string{"logs": strings.TrimPrefix(st.LogURL, "http://")}
	if st.MgmtURL != "" {
		m["mgmt"] = strings.TrimPrefix(st.MgmtURL, "http://")
	}
	if st.ACMEURL != "" {
		m["acme"] = strings.TrimPrefix(st.ACMEURL, "https://")
	}
	if st.DNSAddr != "" {
		m["dns"] = st.DNSAddr
	}
	if st.DNSMgmtURL != "" {
		m["dnsmgmt"] = strings.TrimPrefix(st.DNSMgmtURL, "http://")
	}
	return m
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func shutdown(t *testing.T, st *Stage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestListenersClosedAfterShutdown starts serve with each optional
// listener on and off, checks that exactly those listen and that /healthz
// is 200, then that every one is closed after Shutdown.
func TestListenersClosedAfterShutdown(t *testing.T) {
	dir := t.TempDir() // shared: only the first start makes keys
	var cases []listeners
	for i := range 16 {
		cases = append(cases, listeners{i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0})
	}
	for _, l := range cases {
		t.Run(l.String(), func(t *testing.T) {
			st, err := Start(t.Context(), testOptions(dir, l))
			if err != nil {
				t.Fatal(err)
			}
			addrs := st.addrs()
			want := []string{"logs"}
			if l.mgmt {
				want = append(want, "mgmt")
			}
			if l.acme {
				want = append(want, "acme")
				if l.dns {
					want = append(want, "dns")
				}
				if l.dnsMgmt {
					want = append(want, "dnsmgmt")
				}
			}
			got := slices.Sorted(func(yield func(string) bool) {
				for k := range addrs {
					if !yield(k) {
						return
					}
				}
			})
			if slices.Sort(want); !slices.Equal(got, want) {
				t.Fatalf("serving %v, want %v", got, want)
			}
			for name, a := range addrs {
				if !dialable(a) {
					t.Errorf("%s (%s) does not accept connections", name, a)
				}
			}
			rsp, err := http.Get(st.LogURL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			rsp.Body.Close()
			if rsp.StatusCode != 200 {
				t.Errorf("/healthz %d after Start", rsp.StatusCode)
			}
			shutdown(t, st)
			for name, a := range addrs {
				if dialable(a) {
					t.Errorf("%s (%s) still accepts connections after Shutdown", name, a)
				}
			}
			if l.dns {
				if c, err := net.ListenPacket("udp", st.DNSAddr); err != nil {
					t.Errorf("DNS UDP port %s still taken after Shutdown: %v", st.DNSAddr, err)
				} else {
					c.Close()
				}
			}
		})
	}
}

// goroutines waits up to 10 s for the number of goroutines to fall to at
// most n, and returns the last count and, if it is above n, the stacks.
func goroutines(n int) (int, string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n || time.Now().After(deadline) {
			if got <= n {
				return got, ""
			}
			buf := make([]byte, 1<<20)
			return got, string(buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartFailsPartway makes each listener's port taken in turn, so that
// Start fails after the parts before it have opened, and checks that
// nothing is left: no listener, no goroutine, no lock on the data
// directory.
func TestStartFailsPartway(t *testing.T) {
	dir := t.TempDir()
	all := listeners{true, true, true, true}
	// A first full start and stop makes the keys and lets every
	// package start its process-wide goroutines (gRPC, klog) once.
	st, err := Start(t.Context(), testOptions(dir, all))
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, st)

	for _, which := range []string{"logs", "mgmt", "dnsmgmt", "acme"} {
		t.Run(which, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			opts := testOptions(dir, all)
			// Fixed free ports for the others, to check them afterwards.
			free := map[string]string{}
			for _, name := range []string{"logs", "mgmt", "dnsmgmt", "acme", "dns"} {
				free[name] = freeAddr(t)
			}
			free[which] = taken.Addr().String()
			opts.Logs.Addr, opts.CA.MgmtAddr, opts.ACME.DNSMgmtAddr, opts.ACME.Addr, opts.ACME.DNSAddr =
				free["logs"], free["mgmt"], free["dnsmgmt"], free["acme"], free["dns"]
			st, err := Start(t.Context(), opts)
			if err == nil {
				shutdown(t, st)
				t.Fatalf("Start succeeded with %s's port taken", which)
			}
			if !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("Start: %v, want the taken port's error", err)
			}
			for name, a := range free {
				if name != which && dialable(a) {
					t.Errorf("%s (%s) accepts connections after the failed Start", name, a)
				}
			}
			if n, stacks := goroutines(baseline); stacks != "" {
				t.Errorf("%d goroutines after the failed Start, %d before it:\n%s", n, baseline, stacks)
			}
			// The data directory is unlocked and every store closed: a
			// new Start on it succeeds.
			st, err = Start(t.Context(), testOptions(dir, all))
			if err != nil {
				t.Fatalf("Start after the failed one: %v", err)
			}
			shutdown(t, st)
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestPartsByOptions shows what Start pushes for each set of listeners:
// the parts a role will choose among.
func TestPartsByOptions(t *testing.T) {
	dir := t.TempDir()
	st, err := Start(t.Context(), testOptions(dir, listeners{}))
	if err != nil {
		t.Fatal(err)
	}
	got := st.undo.names()
	shutdown(t, st)
	want := []string{"data directory lock", "storage", "--log-addr listener", "logs", "sequencers", "--log-addr", "CA store", "CA"}
	if !slices.Equal(got, append(slices.Clone(want), "dashboard")) {
		t.Errorf("pushed %q, want %q", got, append(slices.Clone(want), "dashboard"))
	}
	st, err = Start(t.Context(), testOptions(dir, listeners{true, true, true, true}))
	if err != nil {
		t.Fatal(err)
	}
	got = st.undo.names()
	shutdown(t, st)
	want = append(want, "--mgmt-addr listener", "--mgmt-addr", "--dns-addr", "--dns-mgmt-addr listener", "--dns-mgmt-addr",
		"ACME store", "--acme-addr listener", "--acme-addr", "dashboard")
	if !slices.Equal(got, want) {
		t.Errorf("pushed %q, want %q", got, want)
	}
	if err := st.Shutdown(t.Context()); err != nil {
		t.Errorf("a second Shutdown: %v", err)
	}
}

// TestUndoOrder checks that the undo stack pops in reverse and joins
// every error.
func TestUndoOrder(t *testing.T) {
	var u undoStack
	var order []string
	for _, n := range []string{"a", "b", "c"} {
		u.push(n, func(context.Context) error {
			order = append(order, n)
			if n == "b" {
				return errors.New("b failed")
			}
			return nil
		})
	}
	err := u.run(t.Context())
	if !slices.Equal(order, []string{"c", "b", "a"}) {
		t.Errorf("popped %v", order)
	}
	if err == nil || !strings.Contains(err.Error(), "couldn't close b: b failed") {
		t.Errorf("error %v", err)
	}
	if err := u.run(t.Context()); err != nil || len(order) != 3 {
		t.Errorf("second run: %v, %v", err, order)
	}
}
