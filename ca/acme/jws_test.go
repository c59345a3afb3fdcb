package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func signed(t testing.TB, hdr map[jose.HeaderKey]any, embed bool, payload string) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, &jose.SignerOptions{EmbedJWK: embed, ExtraHeaders: hdr})
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(j.FullSerialize())
}

func TestParseJWS(t *testing.T) {
	good := signed(t, map[jose.HeaderKey]any{"nonce": "n", "url": "https://x/acme/new-acct"}, true, "{}")
	p, prob := parseJWS(good, false)
	if prob != nil {
		t.Fatalf("parseJWS: %v", prob)
	}
	if _, prob := p.verify(p.jwk); prob != nil {
		t.Fatalf("verify: %v", prob)
	}
	for name, tc := range map[string]struct {
		body []byte
		typ  string
	}{
		"no nonce":   {signed(t, map[jose.HeaderKey]any{"url": "u"}, true, "{}"), "badNonce"},
		"no url":     {signed(t, map[jose.HeaderKey]any{"nonce": "n"}, true, "{}"), "malformed"},
		"no key":     {signed(t, map[jose.HeaderKey]any{"nonce": "n", "url": "u"}, false, "{}"), "malformed"},
		"kid+jwk":    {signed(t, map[jose.HeaderKey]any{"nonce": "n", "url": "u", "kid": "k"}, true, "{}"), "malformed"},
		"compact":    {[]byte(`"a.b.c"`), "malformed"},
		"not json":   {[]byte("x"), "malformed"},
		"signatures": {[]byte(`{"signatures":[{}],"protected":"e30","payload":"","signature":"AA"}`), "malformed"},
	} {
		_, prob := parseJWS(tc.body, false)
		if prob == nil || prob.Type != errNS+tc.typ {
			t.Errorf("%s: %v, want %s", name, prob, tc.typ)
		}
	}
}

// FuzzParseJWS feeds outside bytes to the JWS and payload parsers: they
// must answer a problem or a result, never panic.
func FuzzParseJWS(f *testing.F) {
	f.Add(signed(f, map[jose.HeaderKey]any{"nonce": "n", "url": "u"}, true, `{"identifiers":[{"type":"dns","value":"a.example"}]}`))
	f.Add(signed(f, map[jose.HeaderKey]any{"nonce": "n", "url": "u", "kid": "k"}, false, ""))
	f.Add([]byte(`{"protected":"eyJhbGciOiJub25lIn0","payload":"","signature":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, prob := parseJWS(body, false)
		if prob != nil {
			if prob.Status == 0 || prob.Status >= 500 {
				t.Fatalf("problem with status %d", prob.Status)
			}
			return
		}
		if p.jwk != nil {
			p.verify(p.jwk)
		}
		var req newOrderReq
		if err := decodePayload(p.payload, &req); err == nil {
			checkIdentifiers(req.Identifiers, req.Profile)
		}
		var k keyChangeReq
		decodePayload(p.payload, &k)
		json.Valid(p.payload)
	})
}
