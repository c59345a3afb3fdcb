// Package loopback holds the checks that keep ctstage's management
// endpoints (the CA's /issue, the DNS management API) on loopback and out
// of reach of web pages (Guard).
package loopback

import (
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
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

// MaxBody bounds the request body Guard lets through.
const MaxBody = 1 << 20

// Guard protects an endpoint that changes state (the CA's
// /issue, the DNS management API, the log-state and fault API): a page in
// a local browser, or a DNS-rebinding page, must not be able to drive it.
// It answers
//   - 403 to a peer that is not loopback;
//   - 403 to a Host that is not localhost or a loopback address (a
//     rebinding page's requests carry its own name);
//   - 403 to an Origin that is not on localhost or a loopback address;
//   - 415 to a POST, PUT or PATCH whose Content-Type is not
//     application/json (a cross-origin form or text/plain POST needs no
//     CORS preflight; JSON does, and preflights are never answered);
//   - 405 to OPTIONS, with no Access-Control-* header;
//
// each with a JSON {"error": ...} naming what was refused, and bounds the
// body to MaxBody.
func Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, msg := refuse(r); status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": msg})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h.ServeHTTP(w, r)
	})
}

// refuse is Guard's decision: 0 to serve r.
func refuse(r *http.Request) (int, string) {
	switch {
	case !IsPeer(r):
		return http.StatusForbidden, "the management endpoint answers loopback peers only"
	case !IsHost(r.Host):
		return http.StatusForbidden, fmt.Sprintf("Host %q is not a loopback address or localhost", r.Host)
	case r.Header.Get("Origin") != "" && !isLoopbackOrigin(r.Header.Get("Origin")):
		return http.StatusForbidden, fmt.Sprintf("Origin %q is not on loopback: management endpoints take no cross-origin requests", r.Header.Get("Origin"))
	case r.Method == http.MethodOptions:
		return http.StatusMethodNotAllowed, "management endpoints answer no CORS preflight"
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: the management endpoint takes application/json only", r.Header.Get("Content-Type"))
		}
	}
	return 0, ""
}

// IsHost reports whether a host (a Host header, a URL's host: host or
// host:port, IPv6 in brackets or not) names localhost or a loopback
// address.
func IsHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isLoopbackOrigin reports whether an Origin header is http(s) on
// localhost or a loopback address ("null", any other scheme or host: no).
func isLoopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	return IsHost(u.Host)
}
