package ca

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/http"
	"time"
)

// Handler serves what the CA's certificates point to, under the path of
// Options.BaseURL (mount it with http.StripPrefix):
//
//	GET /issuers/{ecdsa,rsa}.der   the intermediate (AIA caIssuers), DER
//	GET /crl/{ecdsa,rsa}.crl       a fresh, empty CRL of that intermediate
//
// Nothing is revoked yet: the CRLs are empty, signed on each request, with a
// nextUpdate a week ahead.
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
		now := c.opts.Now()
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number:     big.NewInt(now.Unix()),
			ThisUpdate: now.Add(-time.Minute),
			NextUpdate: now.Add(7 * 24 * time.Hour),
		}, iss.Cert, iss.Signer)
		if err != nil {
			http.Error(w, "couldn't sign the CRL", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
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
