package va

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const maxHTTPBody = 128 << 10

// http01 fetches http://<name>/.well-known/acme-challenge/<token> (RFC 8555
// section 8.3) from the name's address on HTTPPort, following up to 10
// redirects to ports 80 or 443 (mapped to HTTPPort and TLSPort).
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
	if err != nil {
		return fail(KindConnection, "couldn't fetch %s: %v", u, errors.Unwrap(err))
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fail(KindUnauthorized, "%s answered %s", u, rsp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(rsp.Body, maxHTTPBody))
	if err != nil {
		return fail(KindConnection, "couldn't read %s: %v", u, err)
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
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		return nil
	}}
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
		return nil, errors.New("redirect to a port other than 80 or 443")
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
