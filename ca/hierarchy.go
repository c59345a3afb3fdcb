package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ctstage/ctstage/internal/keyfile"
)

// ErrInconsistent reports that the files under the hierarchy directory do not
// form a usable hierarchy (a certificate that does not parse or does not
// match its key, a certificate whose key is missing, an intermediate that
// does not chain to its root, ...). LoadOrCreateHierarchy never repairs such a
// directory by replacing an existing certificate or key: the operator decides
// which files to move away, and the error message names them.
var ErrInconsistent = errors.New("staging CA files are inconsistent")

// Files under the hierarchy directory. The per-issuer files are the source of
// truth; root.pem and chain.pem are bundles rewritten from them whenever they
// differ (so a damaged bundle is repaired on the next start).
const (
	rootBundleFile  = "root.pem"  // ECDSA root, then RSA root
	chainBundleFile = "chain.pem" // ECDSA intermediate, then RSA intermediate
)

const (
	backdate          = time.Hour
	rootYears         = 20
	intermediateYears = 3
	serialBytes       = 16 // 128 random bits, of which 126 survive the sign and length fixes
	organization      = "ctstage local staging (DO NOT TRUST)"
	unassignedRegion  = "XX"
)

// Hierarchy is the staging CA: two self-signed roots and one intermediate
// under each, signed by the root of its own key type. It is read-only after
// LoadOrCreateHierarchy returns and safe for concurrent use.
type Hierarchy struct {
	ECDSARoot, RSARoot                 *Issuer // self-signed roots
	ECDSAIntermediate, RSAIntermediate *Issuer // each signed by the root of its own key type
	// CrossSigned: nothing yet.

	dir string
}

// Issuer is a CA certificate and its private key. Formatting an Issuer with
// fmt or log/slog shows the certificate's subject and serial, never the key.
type Issuer struct {
	Cert *x509.Certificate
	// signer is the private key; never log or print it. No package
	// outside ca signs with it: what others need signed (the ACME
	// server's TLS certificate, cross-signs, load-test chains) ca signs.
	signer crypto.Signer
}

// String describes the issuer without its key.
func (i Issuer) String() string {
	if i.Cert == nil {
		return "ca.Issuer{}"
	}
	return fmt.Sprintf("ca.Issuer{%s, serial %x}", i.Cert.Subject.CommonName, i.Cert.SerialNumber)
}

// GoString keeps %#v from printing the key.
func (i Issuer) GoString() string { return i.String() }

// LogValue keeps log/slog from printing the key.
func (i Issuer) LogValue() slog.Value {
	if i.Cert == nil {
		return slog.StringValue("none")
	}
	return slog.GroupValue(
		slog.String("subject", i.Cert.Subject.CommonName),
		slog.String("serial", i.Cert.SerialNumber.Text(16)),
	)
}

// Roots returns the two roots, ECDSA first, in the order of root.pem.
func (h *Hierarchy) Roots() []*x509.Certificate {
	return []*x509.Certificate{h.ECDSARoot.Cert, h.RSARoot.Cert}
}

// IntermediateByKeyID is the intermediate whose subject key identifier is
// keyID (a certificate's authority key identifier), or nil.
func (h *Hierarchy) IntermediateByKeyID(keyID []byte) *Issuer {
	for _, iss := range []*Issuer{h.ECDSAIntermediate, h.RSAIntermediate} {
		if bytes.Equal(iss.Cert.SubjectKeyId, keyID) {
			return iss
		}
	}
	return nil
}

// RootsPEMPath is the PEM bundle of both roots (dir/root.pem), ECDSA first:
// the file to give to anything that must trust the staging hierarchy.
func (h *Hierarchy) RootsPEMPath() string { return filepath.Join(h.dir, rootBundleFile) }

// ChainPEMPath is the PEM bundle of both intermediates (dir/chain.pem), ECDSA
// first. It is a bundle, not one chain to serve.
func (h *Hierarchy) ChainPEMPath() string { return filepath.Join(h.dir, chainBundleFile) }

// issuerSpec describes one issuer of the hierarchy and its files.
type issuerSpec struct {
	file       string   // dir/<file>.pem and dir/<file>.key
	label      string   // for error messages
	commonName string   // used when the certificate is (re)created
	root       bool     // self-signed
	dependents []string // files of issuers below this one (roots only)
	newKey     func() (crypto.Signer, error)
	checkKey   func(crypto.PublicKey) error
}

var (
	ecdsaRoot = issuerSpec{
		file: "root-ecdsa", label: "ECDSA root", root: true,
		commonName: "(STAGING) ctstage Bogus Broccoli X2",
		dependents: []string{"int-ecdsa.pem", "int-ecdsa.key"},
		newKey:     newP384, checkKey: checkP384,
	}
	rsaRoot = issuerSpec{
		file: "root-rsa", label: "RSA root", root: true,
		commonName: "(STAGING) ctstage Pretend Pear X1",
		dependents: []string{"int-rsa.pem", "int-rsa.key"},
		newKey:     newRSA(4096), checkKey: checkRSA,
	}
	ecdsaIntermediate = issuerSpec{
		file: "int-ecdsa", label: "ECDSA intermediate",
		commonName: "(STAGING) ctstage Ersatz Edamame E1",
		newKey:     newP384, checkKey: checkP384,
	}
	rsaIntermediate = issuerSpec{
		file: "int-rsa", label: "RSA intermediate",
		commonName: "(STAGING) ctstage Artificial Apricot R3",
		newKey:     newRSA(2048), checkKey: checkRSA,
	}
)

func (s issuerSpec) certPath(dir string) string { return filepath.Join(dir, s.file+".pem") }
func (s issuerSpec) keyPath(dir string) string  { return filepath.Join(dir, s.file+".key") }

// LoadOrCreateHierarchy loads the hierarchy from dir (normally --data/ca),
// creating whatever is missing on first start. It is safe to call on every
// start, but not concurrently on the same dir (by this or another process).
//
// Files, all PEM: root-ecdsa, root-rsa, int-ecdsa, int-rsa (.pem certificate,
// mode 0644; .key PKCS#8 private key, mode 0600), and the bundles root.pem
// and chain.pem; dir has mode 0700. Each file is written atomically, keys
// before their certificates and roots before intermediates, so a start
// interrupted at any point is completed by the next call (which also removes
// the .tmp-* files such an interruption leaves, and tightens a looser
// directory mode to 0700).
//
// Missing certificates are created from existing keys (a root from its own
// key, with the same name and key as before, so existing intermediates keep
// chaining to it; an intermediate from its root). An existing certificate or
// key is never replaced: when the files disagree (a certificate without its
// key, a key that does not match its certificate, an intermediate that does
// not chain to its root, a new root that existing intermediates would not
// chain to), the error wraps ErrInconsistent and names the files. now sets
// the validity of new certificates and is the time at which existing ones
// must be valid.
func LoadOrCreateHierarchy(dir string, now time.Time) (*Hierarchy, error) {
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	h := &Hierarchy{dir: dir}
	// A first start is mostly key generation, the RSA-4096 root's above
	// all (0.2 to 1.7 s here). The four keys are independent: each
	// missing one is generated at once, in parallel, and the two branches
	// are built side by side; only certificates wait for their parent.
	specs := prefetchKeys(dir, ecdsaRoot, ecdsaIntermediate, rsaRoot, rsaIntermediate)
	var ecdsaErr, rsaErr error
	var wg sync.WaitGroup
	wg.Go(func() { h.ECDSARoot, h.ECDSAIntermediate, ecdsaErr = loadOrCreateBranch(dir, specs[0], specs[1], now) })
	wg.Go(func() { h.RSARoot, h.RSAIntermediate, rsaErr = loadOrCreateBranch(dir, specs[2], specs[3], now) })
	wg.Wait()
	if err := errors.Join(ecdsaErr, rsaErr); err != nil {
		return nil, err
	}
	if err := writeBundle(h.RootsPEMPath(), h.ECDSARoot, h.RSARoot); err != nil {
		return nil, err
	}
	if err := writeBundle(h.ChainPEMPath(), h.ECDSAIntermediate, h.RSAIntermediate); err != nil {
		return nil, err
	}
	return h, nil
}

// prepareDir creates dir with mode 0700, tightens a looser mode, and removes
// temporary files left by a write that a crash interrupted.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("couldn't create CA directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("couldn't create CA directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("CA directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("couldn't restrict CA directory to its owner: %w", err)
		}
	}
	stale, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")) // only ErrBadPattern, impossible here
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("couldn't remove a temporary file left by an interrupted start: %w", err)
		}
	}
	return nil
}

// prefetchKeys starts generating the key of every spec whose key file is
// missing, and returns the specs with newKey waiting for that key. A key
// generated but not used (because loadOrCreateKey refuses to create it)
// is dropped, never written.
func prefetchKeys(dir string, specs ...issuerSpec) []issuerSpec {
	out := make([]issuerSpec, len(specs))
	for i, s := range specs {
		out[i] = s
		if _, err := os.Lstat(s.keyPath(dir)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		type result struct {
			key crypto.Signer
			err error
		}
		ch := make(chan result, 1)
		go func() {
			k, err := s.newKey()
			ch <- result{k, err}
		}()
		out[i].newKey = func() (crypto.Signer, error) { r := <-ch; return r.key, r.err }
	}
	return out
}

func loadOrCreateBranch(dir string, rs, is issuerSpec, now time.Time) (root, inter *Issuer, err error) {
	if root, err = loadOrCreateIssuer(dir, rs, nil, now); err != nil {
		return nil, nil, err
	}
	if inter, err = loadOrCreateIssuer(dir, is, root, now); err != nil {
		return nil, nil, err
	}
	return root, inter, nil
}

// loadOrCreateIssuer loads or creates the key of s, then its certificate
// (self-signed, or signed by parent), and checks that they belong together.
func loadOrCreateIssuer(dir string, s issuerSpec, parent *Issuer, now time.Time) (*Issuer, error) {
	cert, err := readCert(s.certPath(dir))
	if err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(dir, s, cert != nil)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		if cert, err = issue(s, key, parent, now); err != nil {
			return nil, err
		}
		if err := keyfile.WriteFileAtomic(s.certPath(dir), pemCert(cert), 0o644); err != nil {
			return nil, err
		}
	}
	iss := &Issuer{Cert: cert, signer: key}
	if err := check(dir, s, iss, parent, now); err != nil {
		return nil, err
	}
	return iss, nil
}

// loadOrCreateKey loads the key of s, creating it only when neither the key
// nor anything that depends on it exists.
func loadOrCreateKey(dir string, s issuerSpec, haveCert bool) (crypto.Signer, error) {
	var key crypto.Signer
	var err error
	if haveCert {
		key, err = keyfile.Load(s.keyPath(dir))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s exists but its key %s is missing; move %s away to create a new %s",
				ErrInconsistent, s.certPath(dir), s.keyPath(dir), s.certPath(dir), s.label)
		}
	} else {
		key, _, err = keyfile.LoadOrCreate(s.keyPath(dir), func() (crypto.Signer, error) {
			if err := refuseOrphans(dir, s); err != nil {
				return nil, err
			}
			return s.newKey()
		})
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't load the %s key: %w", s.label, err)
	}
	if err := s.checkKey(key.Public()); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInconsistent, s.keyPath(dir), err)
	}
	return key, nil
}

// refuseOrphans stops a new root key from being created while intermediates
// signed by the lost one remain: they would never chain to the new root.
func refuseOrphans(dir string, s issuerSpec) error {
	for _, f := range s.dependents {
		p := filepath.Join(dir, f)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%w: %s is missing but %s, which depends on it, exists; "+
				"move the %s files away too to create a new %s",
				ErrInconsistent, s.keyPath(dir), p, f[:len(f)-len(filepath.Ext(f))], s.label)
		}
	}
	return nil
}

// readCert reads a file holding exactly one PEM certificate. A missing file
// is (nil, nil).
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read certificate: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: %s: no PEM \"CERTIFICATE\" block", ErrInconsistent, path)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: %s: unexpected data after the certificate", ErrInconsistent, path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInconsistent, path, err)
	}
	return cert, nil
}

// check verifies that iss's certificate matches its key, is a CA certificate
// valid at now, and is self-signed (roots) or chains to parent for
// serverAuth (intermediates).
func check(dir string, s issuerSpec, iss *Issuer, parent *Issuer, now time.Time) error {
	certPath := s.certPath(dir)
	pub, ok := iss.signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(iss.Cert.PublicKey) {
		return fmt.Errorf("%w: certificate %s does not match key %s", ErrInconsistent, certPath, s.keyPath(dir))
	}
	if !iss.Cert.BasicConstraintsValid || !iss.Cert.IsCA {
		return fmt.Errorf("%w: %s is not a CA certificate", ErrInconsistent, certPath)
	}
	if now.Before(iss.Cert.NotBefore) || now.After(iss.Cert.NotAfter) {
		return fmt.Errorf("%s is valid only from %s to %s, not at %s; move it away to re-create it from its key",
			certPath, iss.Cert.NotBefore.UTC().Format(time.RFC3339), iss.Cert.NotAfter.UTC().Format(time.RFC3339),
			now.UTC().Format(time.RFC3339))
	}
	if parent == nil {
		if err := iss.Cert.CheckSignatureFrom(iss.Cert); err != nil {
			return fmt.Errorf("%w: %s is not a self-signed root: %v", ErrInconsistent, certPath, err)
		}
		return nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(parent.Cert)
	_, err := iss.Cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("%w: %s does not chain to its root %s: %v", ErrInconsistent, certPath, parent.Cert.Subject.CommonName, err)
	}
	return nil
}

// issue creates the certificate of s for key: self-signed for a root, signed
// by parent for an intermediate.
func issue(s issuerSpec, key crypto.Signer, parent *Issuer, now time.Time) (*x509.Certificate, error) {
	tmpl, err := template(s, key.Public(), now)
	if err != nil {
		return nil, err
	}
	signerCert, signer := tmpl, key
	if parent != nil {
		signerCert, signer = parent.Cert, parent.signer
		if tmpl.NotAfter.After(parent.Cert.NotAfter) {
			tmpl.NotAfter = parent.Cert.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't create the %s certificate: %w", s.label, err)
	}
	return x509.ParseCertificate(der)
}

// template is the profile of s, after Let's Encrypt's roots and
// intermediates: roots with keyCertSign|cRLSign and no path length;
// intermediates with digitalSignature|keyCertSign|cRLSign, path length 0 and
// serverAuth. CreateCertificate adds the Authority Key Identifier of
// intermediates from the root's Subject Key Identifier.
func template(s issuerSpec, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-backdate).UTC().Truncate(time.Second)
	t := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Country:      []string{unassignedRegion},
			Organization: []string{organization},
			CommonName:   s.commonName,
		},
		NotBefore:             notBefore,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          skid,
	}
	if s.root {
		t.NotAfter = notBefore.AddDate(rootYears, 0, 0)
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		t.MaxPathLen = -1
	} else {
		t.NotAfter = notBefore.AddDate(intermediateYears, 0, 0)
		t.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		t.MaxPathLen, t.MaxPathLenZero = 0, true
	}
	return t, nil
}

// randomSerial returns a positive serial of exactly 127 bits (126 random), so
// that its DER encoding is always 16 bytes, above the Baseline Requirements'
// 64 bits of CSPRNG output.
func randomSerial() (*big.Int, error) {
	b := make([]byte, serialBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("couldn't generate serial: %w", err)
	}
	b[0] = b[0]&0x3f | 0x40
	return new(big.Int).SetBytes(b), nil
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256
// of the subjectPublicKey bits. It is set explicitly so that a root
// re-created from its key keeps the identifier its intermediates refer to,
// whatever default the Go release in use has.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("couldn't encode public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

func newP384() (crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func newRSA(bits int) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, err
		}
		return k, nil
	}
}

func checkP384(pub crypto.PublicKey) error {
	if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
		return fmt.Errorf("want an ECDSA P-384 key, found %s", describeKey(pub))
	}
	return nil
}

func checkRSA(pub crypto.PublicKey) error {
	if k, ok := pub.(*rsa.PublicKey); !ok || k.N.BitLen() < 2048 {
		return fmt.Errorf("want an RSA key of at least 2048 bits, found %s", describeKey(pub))
	}
	return nil
}

func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	default:
		return fmt.Sprintf("%T", pub)
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// writeBundle writes the certificates of issuers to path unless it already
// holds exactly them.
func writeBundle(path string, issuers ...*Issuer) error {
	var want []byte
	for _, iss := range issuers {
		want = append(want, pemCert(iss.Cert)...)
	}
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want) {
		return nil
	}
	return keyfile.WriteFileAtomic(path, want, 0o644)
}
