package va

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

const challengePath = "/.well-known/acme-challenge/" + testToken

func TestHTTP01(t *testing.T) {
	// An HTTPS server where the VA connects for port 443.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, testKeyAuth)
	}))
	defer tlsSrv.Close()
	stop := make(chan struct{})
	defer close(stop)

	for _, tc := range []struct {
		name     string
		ident    string // "" is example.com
		handler  http.HandlerFunc
		refused  bool // nothing listens on HTTPPort
		timeout  time.Duration
		kind     Kind
		details  []string
		wantPath string // the path the server must see, when set
	}{
		{name: "good", handler: serve(testKeyAuth), wantPath: challengePath},
		{name: "good with trailing newline", handler: serve(testKeyAuth + "\r\n")},
		{name: "good IP identifier", ident: "127.0.0.1", handler: serve(testKeyAuth)},
		{name: "wrong key authorization", handler: serve("token-abc.other"),
			kind: KindUnauthorized, details: []string{`answered "token-abc.other"`, testKeyAuth}},
		{name: "leading whitespace", handler: serve(" " + testKeyAuth), kind: KindUnauthorized},
		{name: "404", handler: http.NotFound, kind: KindUnauthorized, details: []string{"404 Not Found"}},
		{name: "500", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) },
			kind: KindUnauthorized, details: []string{"500"}},
		{name: "redirect to port 80, same host", handler: redirectOnce("http://example.com/elsewhere")},
		{name: "redirect to http on explicit port 80", handler: redirectOnce("http://other.example:80/elsewhere")},
		{name: "redirect to https on 443", handler: redirectOnce("https://example.com/.well-known/acme-challenge/x")},
		{name: "redirect to port 8080", handler: redirectOnce("http://example.com:8080/x"),
			kind: KindConnection, details: []string{"only ports 80 and 443", ":8080"}},
		{name: "redirect to https on port 8443", handler: redirectOnce("https://example.com:8443/x"),
			kind: KindConnection, details: []string{"only ports 80 and 443"}},
		{name: "redirect to ftp", handler: redirectOnce("ftp://example.com/x"),
			kind: KindConnection, details: []string{"only http and https"}},
		{name: "redirect loop", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		}, kind: KindConnection, details: []string{"more than 10 redirects"}},
		{name: "10 redirects are followed", handler: redirectChain(10)},
		{name: "11 redirects are not", handler: redirectChain(11), kind: KindConnection, details: []string{"more than 10 redirects"}},
		{name: "oversized body", handler: serve(testKeyAuth + strings.Repeat(" ", maxHTTPBody)),
			kind: KindUnauthorized, details: []string{"larger than 131072 bytes"}},
		{name: "body at the limit", handler: serve(testKeyAuth + strings.Repeat(" ", maxHTTPBody-len(testKeyAuth)))},
		{name: "timeout", timeout: 300 * time.Millisecond, handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}, kind: KindConnection, details: []string{"timed out after 300ms"}},
		{name: "connection refused", refused: true, kind: KindConnection, details: []string{"refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu             sync.Mutex
				gotPath, gotUA string
			)
			h := tc.handler
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				if gotPath == "" {
					gotPath, gotUA = r.URL.Path, r.UserAgent()
				}
				mu.Unlock()
				h(w, r)
			}))
			defer srv.Close()
			httpPort := port(t, srv.Listener.Addr())
			if tc.refused {
				httpPort = closedPort(t)
			}
			v := New(Options{HTTPPort: httpPort, TLSPort: port(t, tlsSrv.Listener.Addr()), Timeout: tc.timeout})
			ident, identType := "example.com", "dns"
			if tc.ident != "" {
				ident, identType = tc.ident, "ip"
			}
			err := v.Validate(testCtx(t), HTTP01, identType, ident, testToken, testKeyAuth)
			wantFailure(t, err, tc.kind, tc.details...)
			mu.Lock()
			defer mu.Unlock()
			if tc.wantPath != "" && gotPath != tc.wantPath {
				t.Errorf("server saw path %q, want %q", gotPath, tc.wantPath)
			}
			if !tc.refused && gotUA != "ctstage-va" {
				t.Errorf("User-Agent %q, want ctstage-va", gotUA)
			}
		})
	}
}

// TestHTTP01Resolves checks that http-01 connects to the address the Zone
// gives the name: a name mapped to an address nothing listens on fails.
func TestHTTP01Resolves(t *testing.T) {
	srv := httptest.NewServer(serve(testKeyAuth))
	defer srv.Close()
	z := NewZone(nil, nil)
	v := New(Options{Zone: z, HTTPPort: port(t, srv.Listener.Addr())})
	if err := v.Validate(testCtx(t), HTTP01, "dns", "a.example", testToken, testKeyAuth); err != nil {
		t.Fatalf("default address: %v", err)
	}
	z.SetAddrs("a.example", []netip.Addr{netip.MustParseAddr("127.0.0.2")}) // the server listens on 127.0.0.1 only
	err := v.Validate(testCtx(t), HTTP01, "dns", "a.example", testToken, testKeyAuth)
	wantFailure(t, err, KindConnection, "a.example")
}

func serve(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != challengePath && r.URL.Path != "/elsewhere" && !strings.HasPrefix(r.URL.Path, "/hop/") {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body)
	}
}

// redirectOnce redirects the challenge path to to, and serves the key
// authorization anywhere else.
func redirectOnce(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == challengePath {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		io.WriteString(w, testKeyAuth)
	}
}

// redirectChain redirects n times (/hop/1, /hop/2, ...) before serving the
// key authorization.
func redirectChain(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		i := 0
		if s, ok := strings.CutPrefix(r.URL.Path, "/hop/"); ok {
			i = len(s)
		}
		if i < n {
			http.Redirect(w, r, "/hop/"+strings.Repeat("x", i+1), http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, testKeyAuth)
	}
}
