package loopback

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestOnly(t *testing.T) {
	h := Only(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for addr, want := range map[string]int{"127.0.0.1:5555": 200, "[::1]:5555": 200, "192.0.2.7:5555": 403, "garbage": 403} {
		r := httptest.NewRequest("POST", "/issue", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("peer %s: status %d, want %d", addr, w.Code, want)
		}
		if w.Code == 403 {
			var e struct{ Error string }
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Errorf("peer %s: body %q", addr, w.Body)
			}
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:6963": true, "localhost:1": true, "[::1]:0": true, "0.0.0.0:6963": false, ":6963": false, "10.0.0.1:1": false} {
		if got := IsAddr(addr); got != want {
			t.Errorf("IsAddr(%q) = %v", addr, got)
		}
	}
}
