package acme

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
)

// nonces issues and redeems anti-replay nonces (RFC 8555 section 6.5). A
// nonce is accepted at most once; at most cap are outstanding, the oldest
// being forgotten first (a client presenting one gets badNonce and a fresh
// nonce, and retries). Nonces do not survive a restart.
type nonces struct {
	mu   sync.Mutex
	live map[string]struct{}
	ring []string
	next int
}

func newNonces(capacity int) *nonces {
	return &nonces{live: make(map[string]struct{}, capacity), ring: make([]string, capacity)}
}

// issue returns a fresh nonce: 128 random bits, base64url.
func (n *nonces) issue() string {
	var b [16]byte
	rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.ring[n.next]; old != "" {
		delete(n.live, old)
	}
	n.ring[n.next] = s
	n.next = (n.next + 1) % len(n.ring)
	n.live[s] = struct{}{}
	return s
}

// redeem reports whether s was outstanding, and makes it unusable.
func (n *nonces) redeem(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.live[s]; !ok {
		return false
	}
	delete(n.live, s)
	return true
}
