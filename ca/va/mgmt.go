package va

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"github.com/miekg/dns"
)

// MgmtHandler is the loopback management API of the built-in DNS, after
// pebble-challtestsrv. Every endpoint is POST with a JSON body:
//
//	/set-txt   {"host": "_acme-challenge.example.com.", "value": "..."}  adds a TXT value
//	/clear-txt {"host": "_acme-challenge.example.com."}                  removes them
//	/add-a     {"host": "example.com", "addresses": ["192.0.2.1"]}       sets A/AAAA
//	/clear-a   {"host": "example.com"}                                   back to the default
//	/set-caa   {"host": "example.com", "policies": [{"tag": "issue", "value": "ctstage"}]}
//	/clear-caa {"host": "example.com"}
//
// Answers 200 with an empty body, 400 on bad input: a body that is not one
// JSON object of these fields (at most 64 KiB), a host that is not a
// domain name, a TXT value longer than 255 bytes, a CAA tag that is not 1
// to 15 letters and digits (RFC 8659 section 4.1), an address that does
// not parse. Serve it on loopback only.
func MgmtHandler(z *Zone) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /set-txt", handle(func(r mgmtReq) error { z.AddTXT(r.Host, r.Value); return nil }))
	mux.HandleFunc("POST /clear-txt", handle(func(r mgmtReq) error { z.ClearTXT(r.Host); return nil }))
	mux.HandleFunc("POST /add-a", handle(func(r mgmtReq) error {
		var as []netip.Addr
		for _, s := range r.Addresses {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return err
			}
			as = append(as, a)
		}
		z.SetAddrs(r.Host, as)
		return nil
	}))
	mux.HandleFunc("POST /clear-a", handle(func(r mgmtReq) error { z.SetAddrs(r.Host, nil); return nil }))
	mux.HandleFunc("POST /set-caa", handle(func(r mgmtReq) error { z.SetCAA(r.Host, r.Policies); return nil }))
	mux.HandleFunc("POST /clear-caa", handle(func(r mgmtReq) error { z.SetCAA(r.Host, nil); return nil }))
	return mux
}

type mgmtReq struct {
	Host      string   `json:"host"`
	Value     string   `json:"value"`
	Addresses []string `json:"addresses"`
	Policies  []CAA    `json:"policies"`
}

func handle(f func(mgmtReq) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req mgmtReq
		if err := decodeMgmt(http.MaxBytesReader(w, r.Body, 64<<10), &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := f(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
}

// decodeMgmt decodes one JSON object with known fields only and checks
// what the DNS server could not serve.
func decodeMgmt(r io.Reader, req *mgmtReq) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return fmt.Errorf("want one JSON object with a host: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("want one JSON object with a host: data after the object")
	}
	if _, ok := dns.IsDomainName(req.Host); !ok || req.Host == "" || req.Host == "." {
		return fmt.Errorf("host %q is not a domain name", req.Host)
	}
	if len(req.Value) > 255 {
		return fmt.Errorf("TXT value of %d bytes: at most 255", len(req.Value))
	}
	for _, p := range req.Policies {
		if !ValidCAATag(p.Tag) {
			return fmt.Errorf("CAA tag %q: want 1 to 15 ASCII letters and digits", p.Tag)
		}
	}
	return nil
}

// ValidCAATag reports whether tag is a CAA property tag as RFC 8659
// section 4.1 allows it: 1 to 15 ASCII letters and digits.
func ValidCAATag(tag string) bool {
	if len(tag) < 1 || len(tag) > 15 {
		return false
	}
	for _, c := range []byte(tag) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
