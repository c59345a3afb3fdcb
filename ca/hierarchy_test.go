package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/keyfile"
)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

var allFiles = []string{
	"root-ecdsa.key", "root-ecdsa.pem", "root-rsa.key", "root-rsa.pem",
	"int-ecdsa.key", "int-ecdsa.pem", "int-rsa.key", "int-rsa.pem",
	"root.pem", "chain.pem",
}

// The RSA 4096 root takes up to a second to generate, so every test starts
// from a copy of one hierarchy generated once.
var fixture struct {
	once sync.Once
	dir  string
	h    *Hierarchy
	err  error
	took time.Duration
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.dir != "" {
		os.RemoveAll(filepath.Dir(fixture.dir))
	}
	os.Exit(code)
}

// generated returns the directory of the shared hierarchy, created by a
// first LoadOrCreateHierarchy call on a directory that did not exist.
func generated(t *testing.T) (string, *Hierarchy) {
	t.Helper()
	fixture.once.Do(func() {
		parent, err := os.MkdirTemp("", "ctstage-ca-test-")
		if err != nil {
			fixture.err = err
			return
		}
		fixture.dir = filepath.Join(parent, "ca")
		start := time.Now()
		fixture.h, fixture.err = LoadOrCreateHierarchy(fixture.dir, testNow)
		fixture.took = time.Since(start)
	})
	if fixture.err != nil {
		t.Fatalf("LoadOrCreateHierarchy on a new directory: %v", fixture.err)
	}
	return fixture.dir, fixture.h
}

// copyHierarchy copies the shared hierarchy, modes included, into a new
// directory the test may change.
func copyHierarchy(t *testing.T) string {
	t.Helper()
	src, _ := generated(t)
	dst := filepath.Join(t.TempDir(), "ca")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range allFiles {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, f := range allFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		m[f] = b
	}
	return m
}

func issuers(h *Hierarchy) map[string]*Issuer {
	return map[string]*Issuer{
		"root-ecdsa": h.ECDSARoot, "root-rsa": h.RSARoot,
		"int-ecdsa": h.ECDSAIntermediate, "int-rsa": h.RSAIntermediate,
	}
}

func TestFirstStartCreatesFiles(t *testing.T) {
	dir, _ := generated(t)
	t.Logf("first start (ECDSA P-384 x2, RSA 4096 root, RSA 2048 intermediate) took %v", fixture.took)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode = %v, want 0700", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(allFiles) {
		t.Errorf("directory holds %d entries, want %d: %v", len(entries), len(allFiles), entries)
	}
	for _, f := range allFiles {
		want := os.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			want = 0o600
		}
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", f, got, want)
		}
	}
}

func TestProfiles(t *testing.T) {
	_, h := generated(t)
	const intKU = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	tests := []struct {
		name     string
		iss      *Issuer
		parent   *Issuer
		cn       string
		key      string
		ku       x509.KeyUsage
		years    int
		pathLen0 bool
	}{
		{"ECDSA root", h.ECDSARoot, nil, "(STAGING) ctstage Bogus Broccoli X2", "ECDSA P-384", x509.KeyUsageCertSign | x509.KeyUsageCRLSign, 20, false},
		{"RSA root", h.RSARoot, nil, "(STAGING) ctstage Pretend Pear X1", "RSA 4096", x509.KeyUsageCertSign | x509.KeyUsageCRLSign, 20, false},
		{"ECDSA intermediate", h.ECDSAIntermediate, h.ECDSARoot, "(STAGING) ctstage Ersatz Edamame E1", "ECDSA P-384", intKU, 3, true},
		{"RSA intermediate", h.RSAIntermediate, h.RSARoot, "(STAGING) ctstage Artificial Apricot R3", "RSA 2048", intKU, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.iss.Cert
			if c.Subject.CommonName != tt.cn {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tt.cn)
			}
			if o := c.Subject.Organization; len(o) != 1 || !strings.Contains(o[0], "DO NOT TRUST") {
				t.Errorf("O = %q, want one organization saying DO NOT TRUST", o)
			}
			if got := describeKey(c.PublicKey); got != tt.key {
				t.Errorf("certificate key = %s, want %s", got, tt.key)
			}
			if got := describeKey(tt.iss.signer.Public()); got != tt.key {
				t.Errorf("private key = %s, want %s", got, tt.key)
			}
			if !c.BasicConstraintsValid || !c.IsCA {
				t.Errorf("basic constraints: valid %v, CA %v; want CA:TRUE", c.BasicConstraintsValid, c.IsCA)
			}
			if tt.pathLen0 && (c.MaxPathLen != 0 || !c.MaxPathLenZero) {
				t.Errorf("path length = %d (zero %v), want 0", c.MaxPathLen, c.MaxPathLenZero)
			}
			if !tt.pathLen0 && c.MaxPathLen != -1 {
				t.Errorf("root path length = %d, want none (-1)", c.MaxPathLen)
			}
			if c.KeyUsage != tt.ku {
				t.Errorf("key usage = %b, want %b", c.KeyUsage, tt.ku)
			}
			if s := c.SerialNumber; s.Sign() <= 0 || s.BitLen() < 64 || len(s.Bytes()) > 20 {
				t.Errorf("serial %x: want positive, at least 64 bits, at most 20 bytes", s)
			}
			if len(c.SubjectKeyId) == 0 {
				t.Error("no Subject Key Identifier")
			}
			if want := testNow.Add(-time.Hour); !c.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
			}
			if want := c.NotBefore.AddDate(tt.years, 0, 0); !c.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
			}
			if tt.parent == nil {
				if len(c.ExtKeyUsage) != 0 {
					t.Errorf("root has extended key usages %v", c.ExtKeyUsage)
				}
				if err := c.CheckSignatureFrom(c); err != nil {
					t.Errorf("root is not self-signed: %v", err)
				}
				return
			}
			if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
				t.Errorf("extended key usage = %v, want serverAuth", c.ExtKeyUsage)
			}
			if !bytes.Equal(c.AuthorityKeyId, tt.parent.Cert.SubjectKeyId) {
				t.Errorf("Authority Key Identifier %x, want the root's %x", c.AuthorityKeyId, tt.parent.Cert.SubjectKeyId)
			}
			verifyChain(t, tt.iss, tt.parent)
		})
	}
}

func verifyChain(t *testing.T, inter, root *Issuer) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	chains, err := inter.Cert.Verify(x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: testNow,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatalf("%s does not verify against %s: %v", inter, root, err)
	}
	if len(chains) != 1 || len(chains[0]) != 2 || !chains[0][1].Equal(root.Cert) {
		t.Errorf("chains = %v, want one chain ending at %s", chains, root)
	}
}

func TestSecondCallReuses(t *testing.T) {
	dir := copyHierarchy(t)
	before := readFiles(t, dir)
	_, first := generated(t)
	second, err := LoadOrCreateHierarchy(dir, testNow.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want, got := issuers(first), issuers(second)
	for name := range want {
		if !bytes.Equal(got[name].Cert.Raw, want[name].Cert.Raw) {
			t.Errorf("%s: certificate changed", name)
		}
		if !got[name].signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want[name].signer.Public()) {
			t.Errorf("%s: key changed", name)
		}
	}
	if after := readFiles(t, dir); !mapsEqual(before, after) {
		t.Error("a second call rewrote files")
	}
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			return false
		}
	}
	return true
}

func TestBundles(t *testing.T) {
	dir, h := generated(t)
	if h.RootsPEMPath() != filepath.Join(dir, "root.pem") {
		t.Errorf("RootsPEMPath = %s", h.RootsPEMPath())
	}
	tests := []struct {
		path string
		want []*x509.Certificate
	}{
		{h.RootsPEMPath(), h.Roots()},
		{h.ChainPEMPath(), []*x509.Certificate{h.ECDSAIntermediate.Cert, h.RSAIntermediate.Cert}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			got := parseBundle(t, tt.path)
			if len(got) != len(tt.want) {
				t.Fatalf("%d certificates, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) {
					t.Errorf("certificate %d is %s, want %s", i, got[i].Subject, tt.want[i].Subject)
				}
			}
		})
	}
	if r := h.Roots(); !r[0].Equal(h.ECDSARoot.Cert) || !r[1].Equal(h.RSARoot.Cert) {
		t.Error("Roots() is not ECDSA root, RSA root")
	}
}

func parseBundle(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	rest, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("PEM block of type %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("trailing data in %s", path)
	}
	return certs
}

// foreignIntermediate re-issues the ECDSA intermediate's key under a root
// that is not the hierarchy's.
func foreignIntermediate(t *testing.T, dir string) {
	t.Helper()
	otherKey, err := newP384()
	if err != nil {
		t.Fatal(err)
	}
	otherRoot, err := issue(ecdsaRoot, otherKey, nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyfile.Load(ecdsaIntermediate.keyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	c, err := issue(ecdsaIntermediate, key, &Issuer{Cert: otherRoot, signer: otherKey}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	write(t, ecdsaIntermediate.certPath(dir), pemCert(c), 0o644)
}

func write(t *testing.T, path string, b []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRefusesBadFiles(t *testing.T) {
	tests := []struct {
		name         string
		break_       func(t *testing.T, dir string)
		now          time.Time
		inconsistent bool   // error wraps ErrInconsistent
		want         string // in the error message
		absent       string // file that must not have been created
	}{
		{
			name:   "key readable by others",
			break_: func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "int-rsa.key"), 0o644) },
			want:   "chmod 600",
		},
		{
			name: "key does not match certificate",
			break_: func(t *testing.T, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, "root-ecdsa.key"))
				write(t, filepath.Join(dir, "int-ecdsa.key"), b, 0o600)
			},
			inconsistent: true, want: "int-ecdsa.pem does not match key",
		},
		{
			name: "key of the wrong type",
			break_: func(t *testing.T, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, "int-ecdsa.key"))
				write(t, filepath.Join(dir, "int-rsa.key"), b, 0o600)
			},
			inconsistent: true, want: "want an RSA key",
		},
		{
			name: "certificate not PEM",
			break_: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "root-rsa.pem"), []byte("garbage\n"), 0o644)
			},
			inconsistent: true, want: `root-rsa.pem: no PEM "CERTIFICATE" block`,
		},
		{
			name: "certificate truncated",
			break_: func(t *testing.T, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, "int-rsa.pem"))
				block, _ := pem.Decode(b)
				block.Bytes = block.Bytes[:len(block.Bytes)/2]
				write(t, filepath.Join(dir, "int-rsa.pem"), pem.EncodeToMemory(block), 0o644)
			},
			inconsistent: true, want: "int-rsa.pem: x509:",
		},
		{
			name: "certificate file with a second block",
			break_: func(t *testing.T, dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, "root.pem"))
				write(t, filepath.Join(dir, "root-ecdsa.pem"), b, 0o644)
			},
			inconsistent: true, want: "unexpected data after the certificate",
		},
		{
			name: "key not PEM",
			break_: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "root-ecdsa.key"), []byte("\x00\x01"), 0o600)
			},
			want: `no PEM "PRIVATE KEY" block`,
		},
		{
			name: "key PEM with bad contents",
			break_: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "int-ecdsa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01}}), 0o600)
			},
			want: "int-ecdsa.key",
		},
		{
			name:         "certificate whose key is gone",
			break_:       func(t *testing.T, dir string) { remove(t, dir, "root-rsa.key") },
			inconsistent: true, want: "root-rsa.pem exists but its key", absent: "root-rsa.key",
		},
		{
			name:         "intermediates left without their root",
			break_:       func(t *testing.T, dir string) { remove(t, dir, "root-ecdsa.key", "root-ecdsa.pem") },
			inconsistent: true, want: "move the int-ecdsa files away", absent: "root-ecdsa.key",
		},
		{
			name:         "intermediate from another root",
			break_:       foreignIntermediate,
			inconsistent: true, want: "int-ecdsa.pem does not chain to its root",
		},
		{
			name: "intermediate expired",
			now:  testNow.AddDate(3, 0, 1),
			want: "int-ecdsa.pem is valid only from",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyHierarchy(t)
			if tt.break_ != nil {
				tt.break_(t, dir)
			}
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			h, err := LoadOrCreateHierarchy(dir, now)
			if err == nil {
				t.Fatalf("LoadOrCreateHierarchy = %v, want an error", h)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if got := errors.Is(err, ErrInconsistent); got != tt.inconsistent {
				t.Errorf("errors.Is(%q, ErrInconsistent) = %v, want %v", err, got, tt.inconsistent)
			}
			if tt.absent != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.absent)); err == nil {
					t.Errorf("%s was created", tt.absent)
				}
			}
		})
	}
}

func TestRecovers(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, dir string)
		changed []string // per-issuer files expected to change; the rest stay byte-equal
	}{
		{
			name: "crash after the RSA root key",
			break_: func(t *testing.T, dir string) {
				remove(t, dir, "root-rsa.pem", "int-ecdsa.key", "int-ecdsa.pem", "int-rsa.key", "int-rsa.pem", "root.pem", "chain.pem")
			},
			changed: []string{"root-rsa.pem", "int-ecdsa.key", "int-ecdsa.pem", "int-rsa.key", "int-rsa.pem"},
		},
		{
			name:    "intermediate certificate missing",
			break_:  func(t *testing.T, dir string) { remove(t, dir, "int-rsa.pem") },
			changed: []string{"int-rsa.pem"},
		},
		{
			name:    "root certificate missing, intermediate kept",
			break_:  func(t *testing.T, dir string) { remove(t, dir, "root-ecdsa.pem") },
			changed: []string{"root-ecdsa.pem"},
		},
		{
			name:   "bundles missing",
			break_: func(t *testing.T, dir string) { remove(t, dir, "root.pem", "chain.pem") },
		},
		{
			name: "bundles damaged",
			break_: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "root.pem"), []byte("x"), 0o644)
				write(t, filepath.Join(dir, "chain.pem"), nil, 0o644)
			},
		},
		{
			name: "temporary file left by a crash",
			break_: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, ".tmp-int-rsa.key-12345"), []byte("partial"), 0o600)
			},
		},
		{
			name:   "directory readable by others",
			break_: func(t *testing.T, dir string) { os.Chmod(dir, 0o755) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyHierarchy(t)
			before := readFiles(t, dir)
			tt.break_(t, dir)
			h, err := LoadOrCreateHierarchy(dir, testNow)
			if err != nil {
				t.Fatal(err)
			}
			after := readFiles(t, dir)
			for _, f := range allFiles[:8] {
				want := !contains(tt.changed, f)
				if got := bytes.Equal(before[f], after[f]); got != want {
					t.Errorf("%s unchanged = %v, want %v", f, got, want)
				}
			}
			verifyChain(t, h.ECDSAIntermediate, h.ECDSARoot)
			verifyChain(t, h.RSAIntermediate, h.RSARoot)
			checkBundles(t, h)
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(allFiles) {
				t.Errorf("directory holds %v, want exactly %v", entries, allFiles)
			}
			if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
				t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
			}
			again, err := LoadOrCreateHierarchy(dir, testNow)
			if err != nil {
				t.Fatalf("second call after recovery: %v", err)
			}
			for name, iss := range issuers(again) {
				if !iss.Cert.Equal(issuers(h)[name].Cert) {
					t.Errorf("%s changed again on the call after recovery", name)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkBundles(t *testing.T, h *Hierarchy) {
	t.Helper()
	roots := parseBundle(t, h.RootsPEMPath())
	chain := parseBundle(t, h.ChainPEMPath())
	if len(roots) != 2 || !roots[0].Equal(h.ECDSARoot.Cert) || !roots[1].Equal(h.RSARoot.Cert) {
		t.Error("root.pem does not hold the current roots")
	}
	if len(chain) != 2 || !chain[0].Equal(h.ECDSAIntermediate.Cert) || !chain[1].Equal(h.RSAIntermediate.Cert) {
		t.Error("chain.pem does not hold the current intermediates")
	}
}

func TestFormattingHidesKeys(t *testing.T) {
	_, h := generated(t)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("issuers", "root", h.ECDSARoot, "int", *h.RSAIntermediate)
	out := fmt.Sprintf("%v %+v %#v %v %+v %#v %s", h.ECDSARoot, *h.ECDSARoot, h.ECDSARoot, h, *h, *h, h.RSAIntermediate) + logged.String()
	secrets := map[string]string{}
	if k, ok := h.ECDSARoot.signer.(*ecdsa.PrivateKey); ok {
		b, _ := k.Bytes()
		secrets["ECDSA root"] = fmt.Sprintf("%x", b)
		secrets["ECDSA root (decimal)"] = new(big.Int).SetBytes(b).String()
	}
	if k, ok := h.RSAIntermediate.signer.(*rsa.PrivateKey); ok {
		secrets["RSA intermediate"] = k.D.String()
		secrets["RSA intermediate (hex)"] = k.D.Text(16)
	}
	if len(secrets) != 4 {
		t.Fatalf("unexpected key types %T, %T", h.ECDSARoot.signer, h.RSAIntermediate.signer)
	}
	for name, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("formatting printed the %s key", name)
		}
	}
	if !strings.Contains(out, "Bogus Broccoli") {
		t.Errorf("formatting does not name the issuer: %s", out)
	}
}
