package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"testing"
)

func csrB64(t testing.TB, names ...string) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func TestParseIssueRequest(t *testing.T) {
	good := csrB64(t, "example.com")
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"CSRNames", `{"csr":"` + good + `"}`, true},
		{"Names", `{"csr":"` + good + `","names":["a.example.com"],"profile":"tlsserver","lifetime":"30d"}`, true},
		{"Hours", `{"csr":"` + good + `","lifetime":"160h"}`, true},
		{"UnknownField", `{"csr":"` + good + `","nope":1}`, false},
		{"Trailing", `{"csr":"` + good + `"}{}`, false},
		{"NotBase64", `{"csr":"!!"}`, false},
		{"NotCSR", `{"csr":"AAAA"}`, false},
		{"BadLifetime", `{"csr":"` + good + `","lifetime":"-3d"}`, false},
		{"Empty", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseIssueRequest([]byte(tc.body))
			if tc.ok && err != nil {
				t.Fatalf("ParseIssueRequest: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ParseIssueRequest: %v, want ErrBadRequest", err)
			}
		})
	}
}

func FuzzParseIssueRequest(f *testing.F) {
	f.Add([]byte(`{"csr":"` + csrB64(f, "example.com") + `","names":["a.example.com"],"lifetime":"90d"}`))
	f.Add([]byte(`{"csr":"AAAA","profile":"shortlived"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseIssueRequest(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		if req.PublicKey == nil {
			t.Fatal("accepted request without a key")
		}
		req.normalize() // must not panic
	})
}

func FuzzCheckCorrespondence(f *testing.F) {
	f.Add([]byte{0x30, 0x00}, []byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if err := CheckCorrespondence(a, b); err != nil && !errors.Is(err, ErrMismatch) {
			t.Fatalf("error %v does not wrap ErrMismatch", err)
		}
	})
}
