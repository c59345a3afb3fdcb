package va

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxHTTPBody bounds the http-01 response body; a larger one fails.
const maxHTTPBody = 128 << 10

// maxRedirects is how many redirects http-01 follows, as Let's Encrypt.
const maxRedirects = 10

// http01 fetches http://<name>/.well-known/acme-challenge/<token> (RFC 8555
// section 8.3) from the name's address on HTTPPort. It follows up to 10
// redirects, as Let's Encrypt does: only to http or https URLs on ports 80
// or 443 (mapped to HTTPPort and TLSPort), without checking certificates.
// Trailing whitespace of the body is ignored (section 8.3).
func (v *VA) http01(ctx context.Context, identType, value, token, keyAuth string) error {
	host := value
	if identType == "ip" {
		a, err := v.resolve(identType, value)
		if err != nil {
			return err
		}
		host = a[0].String()
		if a[0].Is6() {
			host = "[" + host + "]"
		}
	}
	u := "http://" + host + "/.well-known/acme-challenge/" + url.PathEscape(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(KindMalformed, "bad challenge URL %s", u)
	}
	req.Header.Set("User-Agent", "ctstage-va")
	rsp, err := v.httpClient().Do(req)
	if errors.Is(err, context.DeadlineExceeded) {
		return fail(KindConnection, "couldn't fetch %s: timed out after %s", u, v.opts.Timeout)
	}
	if err != nil {
		return fail(KindConnection, "couldn't fetch %s: %v", u, errors.Unwrap(err))
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fail(KindUnauthorized, "%s answered %s", u, rsp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(rsp.Body, maxHTTPBody+1))
	if err != nil {
		return fail(KindConnection, "couldn't read %s: %v", u, err)
	}
	if len(body) > maxHTTPBody {
		return fail(KindUnauthorized, "%s answered a body larger than %d bytes", u, maxHTTPBody)
	}
	if got := strings.TrimRight(string(body), " \t\r\n"); got != keyAuth {
		return fail(KindUnauthorized, "%s answered %q, want the key authorization %q", u, truncate(got, 100), keyAuth)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (v *VA) httpClient() *http.Client {
	d := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return v.dial(ctx, d, addr)
		},
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // RFC 8555 section 8.3: certificates are not checked
		DisableKeepAlives: true,
	}
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect allows a redirect to an http or https URL on port 80 or
// 443 (explicit or implied), at most maxRedirects times.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	u := req.URL
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("redirect to %s: only http and https are allowed", u.Redacted())
	}
	if p := u.Port(); p != "" && p != "80" && p != "443" {
		return fmt.Errorf("redirect to %s: only ports 80 and 443 are allowed", u.Redacted())
	}
	if u.Hostname() == "" {
		return fmt.Errorf("redirect to %s: no host", u.Redacted())
	}
	return nil
}

// dial maps addr's host through the Zone and its port 80 or 443 to
// HTTPPort or TLSPort.
func (v *VA) dial(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	switch port {
	case "80":
		port = strconv.Itoa(v.opts.HTTPPort)
	case "443":
		port = strconv.Itoa(v.opts.TLSPort)
	default:
		return nil, fmt.Errorf("port %s is neither 80 nor 443", port)
	}
	identType := "dns"
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		identType = "ip"
	}
	addrs, err := v.resolve(identType, strings.Trim(host, "[]"))
	if err != nil {
		return nil, err
	}
	return d.DialContext(ctx, "tcp", net.JoinHostPort(addrs[0].String(), port))
}
