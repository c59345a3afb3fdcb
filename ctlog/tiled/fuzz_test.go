package tiled_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/testsupport/testca"
)

// FuzzTiledAdd sends outside bodies to add-chain and add-pre-chain of a
// tiled log: never a 5xx, and every refusal says why.
func FuzzTiledAdd(f *testing.F) {
	ca, err := testca.New("tiled fuzz")
	if err != nil {
		f.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tl := start(f, backend{dir: f.TempDir()}, key, ca)
	notAfter := time.Now().AddDate(0, 0, 90)
	cert, _ := ca.Leaf("fuzz.example.com", notAfter, false)
	pre, _ := ca.Leaf("fuzz-pre.example.com", notAfter, true)
	for _, seed := range []string{
		chainJSON(cert), chainJSON(pre), chainJSON(cert[:1]), chainJSON(pre[1:]), `{"chain":[]}`,
		`{"chain":["AAAA"]}`, `{"chain":null}`, `{}`, `[]`, `{"chain":[1]}`, "", "\x00",
	} {
		f.Add(false, seed)
		f.Add(true, seed)
	}
	f.Fuzz(func(t *testing.T, precert bool, body string) {
		path := "ct/v1/add-chain"
		if precert {
			path = "ct/v1/add-pre-chain"
		}
		rsp, err := http.Post(tl.prefix+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if rsp.StatusCode >= 500 {
			t.Fatalf("%s with %q: %d %s", path, body, rsp.StatusCode, b)
		}
		if rsp.StatusCode != 200 && len(b) < len("Bad Request")+5 {
			t.Errorf("%s: %d with no explanation: %q", path, rsp.StatusCode, b)
		}
	})
}
