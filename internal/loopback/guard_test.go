package loopback

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	served := 0
	h := Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
	for _, tc := range []struct {
		name, method, remote, host, origin, ctype string
		want                                      int
	}{
		{"json from loopback", "POST", "127.0.0.1:5", "127.0.0.1:8055", "", "application/json", 200},
		{"json with charset", "POST", "127.0.0.1:5", "localhost:8055", "", "application/json; charset=utf-8", 200},
		{"ipv6 loopback", "POST", "[::1]:5", "[::1]:8055", "", "application/json", 200},
		{"loopback origin", "POST", "127.0.0.1:5", "127.0.0.1:8055", "http://127.0.0.1:6962", "application/json", 200},
		{"get needs no type", "GET", "127.0.0.1:5", "127.0.0.1:6963", "", "", 200},
		{"delete needs no type", "DELETE", "127.0.0.1:5", "127.0.0.1:6963", "", "", 200},
		{"text/plain", "POST", "127.0.0.1:5", "127.0.0.1:8055", "", "text/plain", 415},
		{"form", "POST", "127.0.0.1:5", "127.0.0.1:8055", "", "application/x-www-form-urlencoded", 415},
		{"no type", "POST", "127.0.0.1:5", "127.0.0.1:8055", "", "", 415},
		{"foreign origin", "POST", "127.0.0.1:5", "127.0.0.1:8055", "http://attacker.example", "application/json", 403},
		{"null origin", "POST", "127.0.0.1:5", "127.0.0.1:8055", "null", "application/json", 403},
		{"rebinding host", "POST", "127.0.0.1:5", "attacker.example:8055", "", "application/json", 403},
		{"rebinding host and origin", "POST", "127.0.0.1:5", "attacker.example:8055", "http://attacker.example:8055", "text/plain", 403},
		{"preflight", "OPTIONS", "127.0.0.1:5", "127.0.0.1:8055", "http://127.0.0.1:1", "", 405},
		{"remote peer", "POST", "192.0.2.7:5", "127.0.0.1:8055", "", "application/json", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := served
			r := httptest.NewRequest(tc.method, "/x", strings.NewReader("{}"))
			r.RemoteAddr, r.Host = tc.remote, tc.host
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.want == 200 {
				if served != before+1 {
					t.Error("not served")
				}
				return
			}
			if served != before {
				t.Error("refused, but the handler ran")
			}
			var e struct{ Error string }
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Errorf("body %q, want {\"error\": ...}", w.Body)
			}
			for k := range w.Header() {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("CORS header %s", k)
				}
			}
		})
	}
}
