package ca

import (
	"net/http"
)

// Handler serves what the CA's certificates point to, under the path of
// Options.BaseURL (mount it with http.StripPrefix):
//
//	GET /issuers/{ecdsa,rsa}.der   the intermediate (AIA caIssuers), DER
//	GET /crl/{ecdsa,rsa}.crl       the intermediate's CRL, DER
//
// Each CRL is a full CRL of its intermediate (no issuing distribution
// point): every certificate it issued that is revoked and not expired,
// built as buildCRL says, signed at most crlCacheTTL before it is served
// and never before the latest revocation. A failure to build one is a 500
// with no detail; the cause goes to the log.
func (c *CA) Handler() http.Handler {
	mux := http.NewServeMux()
	byName := map[string]*Issuer{"ecdsa": c.opts.Hierarchy.ECDSAIntermediate, "rsa": c.opts.Hierarchy.RSAIntermediate}
	mux.HandleFunc("GET /issuers/{file}", func(w http.ResponseWriter, r *http.Request) {
		iss := byName[trimSuffix(r.PathValue("file"), ".der")]
		if iss == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Write(iss.Cert.Raw)
	})
	mux.HandleFunc("GET /crl/{file}", func(w http.ResponseWriter, r *http.Request) {
		iss := byName[trimSuffix(r.PathValue("file"), ".crl")]
		if iss == nil {
			http.NotFound(w, r)
			return
		}
		der, err := c.crl(r.Context(), iss)
		if err != nil {
			c.opts.Logger.Error("couldn't serve a CRL", "issuer", iss, "err", err)
			http.Error(w, "couldn't build the CRL", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		// Caches must ask again: a revocation shows in the next answer.
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(der)
	})
	return mux
}

func trimSuffix(s, suffix string) string {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)]
	}
	return ""
}
