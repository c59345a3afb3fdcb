// Package loopback holds the checks that keep ctstage's management
// endpoints (the CA's /issue, the DNS management API) on loopback.
package loopback

import (
	"encoding/json"
	"net"
	"net/http"
)

// IsAddr reports whether a listen address (host:port) is on a loopback
// interface: "127.0.0.1:6963", "[::1]:0", "localhost:6963".
func IsAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsPeer reports whether a request's TCP peer (r.RemoteAddr) is a
// loopback address.
func IsPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// Only serves h to loopback peers and answers anyone else 403 with a
// JSON {"error": ...} body.
func Only(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsPeer(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"error": "the management endpoint answers loopback peers only"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
