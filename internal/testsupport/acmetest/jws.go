// Package acmetest helps tests speak ACME (RFC 8555) to ctstage without a
// full client library.
package acmetest

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// SignJWS returns the flattened JWS (RFC 8555 section 6.2) of payload for
// url and nonce, signed ES256 with key: with kid when it is set, else with
// the key embedded as jwk. A nil payload is POST-as-GET: the "payload"
// member is present and empty, which go-jose alone would leave out. extra
// adds or overrides protected-header members.
func SignJWS(key *ecdsa.PrivateKey, url, nonce, kid string, payload []byte, extra map[string]any) ([]byte, error) {
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"url": url, "nonce": nonce}}
	if kid == "" {
		opts.EmbedJWK = true
	} else {
		opts.ExtraHeaders["kid"] = kid
	}
	for k, v := range extra {
		opts.ExtraHeaders[jose.HeaderKey(k)] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("acmetest: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("acmetest: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(jws.FullSerialize()), &m); err != nil {
		return nil, fmt.Errorf("acmetest: %w", err)
	}
	if _, ok := m["payload"]; !ok {
		m["payload"] = ""
	}
	return json.Marshal(m)
}
