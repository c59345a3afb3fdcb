package va

import (
	"encoding/json"
	"net/http"
	"net/netip"
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
// Answers 200 with an empty body, 400 on bad input. Serve it on loopback
// only.
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
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Host == "" {
			http.Error(w, "want a JSON object with a host", http.StatusBadRequest)
			return
		}
		if err := f(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
}
