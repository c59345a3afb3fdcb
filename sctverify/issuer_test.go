package sctverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestIssuerFromAIA: a loopback caIssuers URL is fetched, DER or PEM; a
// remote one only with FetchIssuer; a certificate there that did not
// sign the leaf is no issuer.
func TestIssuerFromAIA(t *testing.T) {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, otherKey := key(), key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "AIA CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, otherKey.Public(), otherKey) // same name, other key
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ca.der":
			w.Write(caDER)
		case "/other.der":
			w.Write(otherDER)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	leaf := func(urls ...string) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), IssuingCertificateURL: urls}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key().Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	v := &Verifier{}
	ctx := context.Background()
	if iss, from, err := v.issuerFromAIA(ctx, leaf(srv.URL+"/missing", srv.URL+"/ca.der"), false); err != nil || iss == nil || from != srv.URL+"/ca.der" {
		t.Errorf("loopback caIssuers: %v, %v", from, err)
	}
	for _, tc := range []struct {
		urls []string
		want string
	}{
		{[]string{"http://192.0.2.1/ca.der"}, "--fetch-issuer"},
		{[]string{srv.URL + "/other.der"}, "did not sign"},
		{[]string{"ldap://example.com/ca"}, "not an http(s) URL"},
		{nil, "no caIssuers URL"},
	} {
		if _, _, err := v.issuerFromAIA(ctx, leaf(tc.urls...), false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.urls, err, tc.want)
		}
	}
}
