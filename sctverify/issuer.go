package sctverify

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ctstage/ctstage/internal/loopback"
)

// maxIssuerBytes bounds an issuer certificate fetched from AIA.
const maxIssuerBytes = 64 << 10

// issuerFromAIA fetches the issuer of cert from its Authority Information
// Access caIssuers URLs (RFC 5280 4.2.2.1: a DER certificate, or a PKCS#7
// bundle, over http): loopback URLs always, others only when any is set.
// It returns the issuer and the URL it came from, or why none was found.
func (v *Verifier) issuerFromAIA(ctx context.Context, cert *x509.Certificate, any bool) (*x509.Certificate, string, error) {
	var why []string
	for _, u := range cert.IssuingCertificateURL {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "http" && pu.Scheme != "https" {
			why = append(why, fmt.Sprintf("%s: not an http(s) URL", u))
			continue
		}
		if !any && !loopback.IsHost(pu.Host) {
			why = append(why, fmt.Sprintf("%s: not fetched (not loopback; --fetch-issuer fetches it)", u))
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := httpGet(fctx, v.HTTPClient, u, maxIssuerBytes)
		cancel()
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		if blk, _ := pem.Decode(b); blk != nil && blk.Type == "CERTIFICATE" {
			b = blk.Bytes
		}
		c, err := x509.ParseCertificate(b)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: not a DER certificate: %v", u, err))
			continue
		}
		if iss, err := FindIssuer(cert, []*x509.Certificate{c}); err == nil {
			return iss, u, nil
		}
		why = append(why, fmt.Sprintf("%s: the certificate there did not sign this one", u))
	}
	if len(why) == 0 {
		return nil, "", fmt.Errorf("the certificate names no caIssuers URL")
	}
	return nil, "", fmt.Errorf("caIssuers: %s", strings.Join(why, "; "))
}
