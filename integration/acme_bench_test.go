package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// acmeBenchClients is the number of concurrent ACME clients, each with
// its own account, that BenchmarkACMEFlows runs.
const acmeBenchClients = 16

// BenchmarkACMEFlows measures full ACME flows per second at 16 concurrent
// clients, each with its own account: new order for one new name, the
// authorization (POST-as-GET), its http-01 challenge (always valid), finalize
// with a fresh P-256 key's CSR, and the certificate download. Two servers,
// in the same run, each a separate process on loopback:
//
//   - "ctstage": the `ctstage serve` binary with --acme-always-valid and
//     otherwise the defaults (SQLite, rate limits on, every certificate
//     through precertificate, two SCTs from the in-process logs, the final
//     certificate, and its background submission to the logs);
//   - "pebble": Pebble (PEBBLE_BIN, or `pebble` on PATH) with
//     PEBBLE_VA_ALWAYS_VALID=1, PEBBLE_VA_NOSLEEP=1, PEBBLE_WFE_NONCEREJECT=0
//     and PEBBLE_AUTHZREUSE=0 (every order gets new authorizations, as on
//     ctstage). Pebble issues without CT.
//
// The client is the same minimal ACME client for both. It follows RFC 8555
// and polls an authorization or order that is not final yet every 5 ms,
// ignoring Pebble's Retry-After (3 and 5 s), which would otherwise measure
// Retry-After rather than Pebble. It reports flows/s and the p50 and p99
// of one flow's latency, the server process's CPU time (user and system)
// per flow, which depends less than the others on what else the machine
// runs, and the clients' (this process's) CPU time per flow. CTSTAGE_BENCH_ARGS adds arguments to `ctstage serve`.
//
// Pebble v2.10.1 sometimes deadlocks under this load (MemoryStore's
// RWMutex taken again for reading under an authorization's lock while
// AddCertificate waits for it): the requests then time out after 30 s and
// the sub-benchmark fails; run it again. Its newOrder also scans every
// authorization in memory, so it slows as a run grows.
func BenchmarkACMEFlows(b *testing.B) {
	b.Run("ctstage", func(b *testing.B) {
		data := b.TempDir()
		acmeAddr := freeAddr(b)
		srv := startServer(b, append([]string{"--data", data, "--acme-addr", acmeAddr, "--acme-always-valid"}, acmeBenchArgs()...)...)
		roots := x509.NewCertPool()
		pemRoots, err := os.ReadFile(filepath.Join(data, "ca", "root.pem"))
		if err != nil || !roots.AppendCertsFromPEM(pemRoots) {
			b.Fatalf("root.pem: %v", err)
		}
		benchFlows(b, "https://"+acmeAddr+"/directory", roots, srv.cmd.Process.Pid)
	})
	b.Run("pebble", func(b *testing.B) {
		dir, roots, pid := startPebble(b)
		benchFlows(b, dir, roots, pid)
	})
}

// acmeBenchArgs are more `ctstage serve` arguments for BenchmarkACMEFlows
// from CTSTAGE_BENCH_ARGS (space-separated), e.g. "--debug-addr
// 127.0.0.1:6060" to profile the server, or "--no-final-submission".
func acmeBenchArgs() []string { return strings.Fields(os.Getenv("CTSTAGE_BENCH_ARGS")) }

// serverCPU is the user and system CPU time process pid has used; the
// benchmark also reads its own, the clients' (the servers run in other
// processes).
func serverCPU(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 12th and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// startPebble runs Pebble with a configuration and a TLS certificate of
// its own in a temporary directory and returns its directory URL and the
// root to trust.
func startPebble(b *testing.B) (string, *x509.CertPool, int) {
	bin := os.Getenv("PEBBLE_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("pebble"); err != nil {
			testenv.Unavailable(b, "no Pebble: GOBIN=$(mktemp -d) go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1, then PEBBLE_BIN=$GOBIN/pebble")
		}
	}
	dir := b.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble benchmark"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		b.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	addr := freeAddr(b)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": addr, "managementListenAddress": freeAddr(b),
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": freePort(b), "tlsPort": freePort(b),
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter":   map[string]int{"authz": 3, "order": 5},
		"keyAlgorithm": "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "90 days", "validityPeriod": 7776000}},
	}}
	cfgFile := filepath.Join(dir, "pebble-config.json")
	cj, _ := json.Marshal(cfg)
	os.WriteFile(cfgFile, cj, 0o644)

	cmd := exec.Command(bin, "-config", cfgFile)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &syncWriter{w: out}, &syncWriter{w: out}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	b.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	roots := x509.NewCertPool()
	roots.AddCert(must(x509.ParseCertificate(der)))
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	url := "https://" + addr + "/dir"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			b.Fatalf("pebble exited: %v\n%s", err, out)
		default:
		}
		if rsp, err := hc.Get(url); err == nil {
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return url, roots, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("pebble not up after 30 s\n%s", out)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// benchFlows registers acmeBenchClients accounts, then runs b.N flows from
// them (closed loop) and reports flows/s, p50 and p99.
func benchFlows(b *testing.B, directory string, roots *x509.CertPool, pid int) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 2 * acmeBenchClients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	clients := make([]*flowClient, acmeBenchClients)
	for i := range clients {
		c, err := newFlowClient(hc, directory)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	// One flow per client to warm up connections and caches.
	for _, c := range clients {
		if err := c.flow(); err != nil {
			b.Fatalf("warm-up flow: %v", err)
		}
	}
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		firstErr  error
		next      = make(chan struct{}, b.N)
		wg        sync.WaitGroup
	)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	cpu0, client0 := serverCPU(b, pid), serverCPU(b, os.Getpid())
	start := time.Now()
	for _, c := range clients {
		wg.Go(func() {
			for range next {
				t0 := time.Now()
				err := c.flow()
				d := time.Since(t0)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				latencies = append(latencies, d)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, clientCPU := serverCPU(b, pid)-cpu0, serverCPU(b, os.Getpid())-client0
	b.StopTimer()
	if firstErr != nil {
		b.Fatalf("flow: %v", firstErr)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "flows/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "server-cpu-ms/flow")
	b.ReportMetric(float64(clientCPU.Microseconds())/1000/float64(b.N), "client-cpu-ms/flow")
}

// flowClient is a minimal ACME client (RFC 8555) with one ES256 account,
// for benchmarks: errors instead of test failures, safe for use by one
// goroutine at a time.
type flowClient struct {
	hc    *http.Client
	key   *ecdsa.PrivateKey
	dir   struct{ NewNonce, NewAccount, NewOrder, RevokeCert string }
	kid   string
	nonce string
}

func newFlowClient(hc *http.Client, directory string) (*flowClient, error) {
	c := &flowClient{hc: hc}
	var err error
	if c.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	rsp, err := hc.Get(directory)
	if err != nil {
		return nil, err
	}
	defer rsp.Body.Close()
	if err := json.NewDecoder(rsp.Body).Decode(&c.dir); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	r, err := c.post(c.dir.NewAccount, map[string]any{"termsOfServiceAgreed": true}, http.StatusCreated)
	if err != nil {
		return nil, fmt.Errorf("newAccount: %w", err)
	}
	c.kid = r.header.Get("Location")
	return c, nil
}

func (c *flowClient) getNonce() (string, error) {
	if n := c.nonce; n != "" {
		c.nonce = ""
		return n, nil
	}
	rsp, err := c.hc.Head(c.dir.NewNonce)
	if err != nil {
		return "", err
	}
	rsp.Body.Close()
	return rsp.Header.Get("Replay-Nonce"), nil
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jws is the flattened JWS of payload (nil: POST-as-GET) for url.
func (c *flowClient) jws(url string, payload any) ([]byte, error) {
	nonce, err := c.getNonce()
	if err != nil {
		return nil, err
	}
	hdr := map[string]any{"alg": "ES256", "nonce": nonce, "url": url}
	if c.kid != "" {
		hdr["kid"] = c.kid
	} else {
		// The uncompressed point: 0x04 || X || Y, 32 bytes each.
		pt, _ := c.key.PublicKey.Bytes()
		hdr["jwk"] = map[string]string{"kty": "EC", "crv": "P-256", "x": b64u(pt[1:33]), "y": b64u(pt[33:65])}
	}
	ph, _ := json.Marshal(hdr)
	var pl string
	if payload != nil {
		p, _ := json.Marshal(payload)
		pl = b64u(p)
	}
	protected := b64u(ph)
	digest := sha256.Sum256([]byte(protected + "." + pl))
	r, s, err := ecdsa.Sign(rand.Reader, c.key, digest[:])
	if err != nil {
		return nil, err
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return json.Marshal(map[string]string{"protected": protected, "payload": pl, "signature": b64u(sig[:])})
}

type flowRsp struct {
	header http.Header
	body   []byte
}

// post sends a signed POST and expects status; one badNonce is retried.
// Another status is a *flowStatusError.
func (c *flowClient) post(url string, payload any, status int) (flowRsp, error) {
	for attempt := 0; ; attempt++ {
		body, err := c.jws(url, payload)
		if err != nil {
			return flowRsp{}, err
		}
		rsp, err := c.hc.Post(url, "application/jose+json", bytes.NewReader(body))
		if err != nil {
			return flowRsp{}, err
		}
		b, err := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if err != nil {
			return flowRsp{}, err
		}
		c.nonce = rsp.Header.Get("Replay-Nonce")
		if rsp.StatusCode == status {
			return flowRsp{rsp.Header, b}, nil
		}
		if attempt == 0 && bytes.Contains(b, []byte("badNonce")) {
			continue
		}
		return flowRsp{}, &flowStatusError{url: url, status: rsp.StatusCode, body: b}
	}
}

// flowStatusError is an answer with another status than the one expected;
// any other error of post is the transport's (or of the nonce's request).
type flowStatusError struct {
	url    string
	status int
	body   []byte // the problem document
}

func (e *flowStatusError) Error() string {
	return fmt.Sprintf("POST %s: %d %s: %s", e.url, e.status, http.StatusText(e.status), e.body)
}

type flowObject struct {
	Status         string
	Authorizations []string
	Finalize       string
	Certificate    string
	Challenges     []struct{ Type, URL, Status string }
	Error          *struct{ Type, Detail string }
}

// get POSTs-as-GET url and decodes the object.
func (c *flowClient) get(url string) (*flowObject, error) {
	r, err := c.post(url, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var o flowObject
	return &o, json.Unmarshal(r.body, &o)
}

// poll gets url every 5 ms until its status is final or want.
func (c *flowClient) poll(url, want string) (*flowObject, error) {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		o, err := c.get(url)
		if err != nil {
			return nil, err
		}
		switch o.Status {
		case want:
			return o, nil
		case "invalid", "revoked", "deactivated", "expired":
			return nil, fmt.Errorf("%s is %s", url, o.Status)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s still %s after a minute", url, o.Status)
		}
	}
}

// flow obtains one certificate for a new random name.
func (c *flowClient) flow() error {
	var rnd [8]byte
	rand.Read(rnd[:])
	name := fmt.Sprintf("f%x.bench.example.com", rnd)
	r, err := c.post(c.dir.NewOrder, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": name}}}, http.StatusCreated)
	if err != nil {
		return err
	}
	orderURL := r.header.Get("Location")
	var o flowObject
	if err := json.Unmarshal(r.body, &o); err != nil || len(o.Authorizations) != 1 {
		return fmt.Errorf("newOrder: %v, %s", err, r.body)
	}
	az, err := c.get(o.Authorizations[0])
	if err != nil {
		return err
	}
	i := slices.IndexFunc(az.Challenges, func(ch struct{ Type, URL, Status string }) bool { return ch.Type == "http-01" })
	if i < 0 {
		return errors.New("no http-01 challenge")
	}
	r, err = c.post(az.Challenges[i].URL, map[string]any{}, http.StatusOK)
	if err != nil {
		return err
	}
	var ch struct{ Status string }
	json.Unmarshal(r.body, &ch)
	if ch.Status != "valid" {
		if _, err := c.poll(o.Authorizations[0], "valid"); err != nil {
			return err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		return err
	}
	r, err = c.post(o.Finalize, map[string]string{"csr": b64u(csr)}, http.StatusOK)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r.body, &o); err != nil {
		return err
	}
	if o.Status != "valid" {
		p, err := c.poll(orderURL, "valid")
		if err != nil {
			return err
		}
		o = *p
	}
	r, err = c.post(o.Certificate, nil, http.StatusOK)
	if err != nil {
		return err
	}
	if blk, _ := pem.Decode(r.body); blk == nil {
		return fmt.Errorf("certificate download: no PEM: %.100q", r.body)
	}
	return nil
}
