package acme

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// SignatureAlgorithms are the JWS algorithms accepted (RFC 8555 section
// 6.2): no "none", no MAC (HS*) outside external account binding.
var SignatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// maxBody bounds every request body.
const maxBody = 64 << 10

// flatJWS is the flattened JSON serialization RFC 8555 section 6.2
// requires (RFC 7515 section 7.2.2).
type flatJWS struct {
	Protected  string          `json:"protected"`
	Payload    *string         `json:"payload"`
	Signature  string          `json:"signature"`
	Header     json.RawMessage `json:"header"`
	Signatures json.RawMessage `json:"signatures"`
}

// protectedHeader is the part of the protected header the server checks
// before verifying the signature.
type protectedHeader struct {
	Alg   string          `json:"alg"`
	Nonce string          `json:"nonce"`
	URL   string          `json:"url"`
	KID   string          `json:"kid"`
	JWK   json.RawMessage `json:"jwk"`
}

// parsedJWS is a JWS whose shape and protected header were checked; its
// signature is not verified yet.
type parsedJWS struct {
	hdr     protectedHeader
	sig     *jose.JSONWebSignature
	jwk     *jose.JSONWebKey // when the header carries "jwk"
	payload []byte           // unverified
}

// parseJWS checks body as an ACME JWS: flattened JSON, one signature, a
// protected header with an allowed alg, a nonce, a url and exactly one of
// kid and jwk, and no unprotected header. It verifies nothing. An inner
// JWS (keyChange, section 7.3.5) has a jwk and no nonce instead.
func parseJWS(body []byte, inner bool) (*parsedJWS, *Problem) {
	var f flatJWS
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&f); err != nil {
		return nil, malformed("request is not a JWS in flattened JSON serialization: %v", err)
	}
	if len(f.Signatures) > 0 || len(f.Header) > 0 {
		return nil, malformed("JWS must have exactly one signature and no unprotected header")
	}
	if f.Protected == "" || f.Signature == "" || f.Payload == nil {
		return nil, malformed("JWS lacks protected, payload or signature")
	}
	rawHdr, err := base64.RawURLEncoding.DecodeString(f.Protected)
	if err != nil {
		return nil, malformed("JWS protected header is not base64url")
	}
	var h protectedHeader
	if err := json.Unmarshal(rawHdr, &h); err != nil {
		return nil, malformed("JWS protected header is not a JSON object: %v", err)
	}
	if !slices.Contains(SignatureAlgorithms, jose.SignatureAlgorithm(h.Alg)) {
		return nil, badSignatureAlgorithm("JWS algorithm %q is not accepted; use one of %v", h.Alg, SignatureAlgorithms)
	}
	switch {
	case inner && (h.Nonce != "" || len(h.JWK) == 0):
		return nil, malformed("inner JWS must have a jwk and no nonce")
	case !inner && h.Nonce == "":
		return nil, badNonce("JWS has no nonce")
	}
	if h.URL == "" {
		return nil, malformed("JWS protected header has no url")
	}
	if (h.KID == "") == (len(h.JWK) == 0) {
		return nil, malformed("JWS protected header must have exactly one of kid and jwk")
	}
	sig, err := jose.ParseSignedJSON(string(body), SignatureAlgorithms)
	if err != nil || len(sig.Signatures) != 1 {
		return nil, malformed("couldn't parse JWS: %v", err)
	}
	p := &parsedJWS{hdr: h, sig: sig, payload: sig.UnsafePayloadWithoutVerification()}
	if len(h.JWK) > 0 {
		k := sig.Signatures[0].Protected.JSONWebKey
		if k == nil || !k.Valid() || !k.IsPublic() {
			return nil, badPublicKey("JWS jwk is not a valid public key")
		}
		if prob := checkAccountKey(k.Key); prob != nil {
			return nil, prob
		}
		p.jwk = k
	}
	return p, nil
}

// verify checks the signature with key and returns the payload.
func (p *parsedJWS) verify(key *jose.JSONWebKey) ([]byte, *Problem) {
	if err := checkAlgForKey(p.hdr.Alg, key.Key); err != nil {
		return nil, err
	}
	payload, err := p.sig.Verify(key)
	if err != nil {
		return nil, malformed("JWS signature is invalid")
	}
	return payload, nil
}

// checkAccountKey accepts RSA keys of 2048 to 4096 bits, ECDSA P-256, P-384
// and P-521, and Ed25519.
func checkAccountKey(k crypto.PublicKey) *Problem {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if b := k.N.BitLen(); b < 2048 || b > 4096 {
			return badPublicKey("RSA account key of %d bits; want 2048 to 4096", b)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
	case ed25519.PublicKey:
		return nil
	}
	return badPublicKey("unsupported account key type %T", k)
}

// checkAlgForKey refuses an alg that does not go with the key's type.
func checkAlgForKey(alg string, k any) *Problem {
	want := ""
	switch k := k.(type) {
	case *rsa.PublicKey:
		want = "RS256"
	case *ecdsa.PublicKey:
		want = map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}[k.Curve]
	case ed25519.PublicKey:
		want = "EdDSA"
	}
	if alg != want {
		return badSignatureAlgorithm("JWS algorithm %s does not match the key (want %s)", alg, want)
	}
	return nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of k, base64url.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
