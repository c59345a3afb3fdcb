package acme

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"time"
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

// nonceSource issues and redeems nonces: nonces in one process's memory,
// or sharedNonces across the processes of a deployment.
type nonceSource interface {
	issue() string
	redeem(ctx context.Context, s string) (bool, error)
}

// memNonces is nonces behind nonceSource.
type memNonces struct{ *nonces }

func (m memNonces) redeem(_ context.Context, s string) (bool, error) { return m.nonces.redeem(s), nil }

// NonceStore is what nonces shared between processes need from the
// shared storage (ca/acme/store's MySQL): one secret every process
// reads, and a record of the nonces redeemed.
type NonceStore interface {
	// NonceKey returns the deployment's nonce key, creating it once.
	NonceKey(ctx context.Context) ([]byte, error)
	// RedeemNonce records id as used until expires; false when it
	// already was.
	RedeemNonce(ctx context.Context, id []byte, expires time.Time) (bool, error)
}

// NonceLifetime is how long a shared nonce stays redeemable.
const NonceLifetime = 10 * time.Minute

// sharedNonces are derived, as Boulder's nonce service's are: a nonce is
// its issue time and 8 random bytes, authenticated with the deployment's
// key, so any process recognises one that any other issued, without a
// write. Redeeming writes it down in the shared store, so that it is
// accepted once in the whole deployment.
type sharedNonces struct {
	key   []byte
	store NonceStore
	now   func() time.Time
}

const sharedNonceLen = 8 + 8 + 16 // time, random, MAC

func (n *sharedNonces) mac(b []byte) []byte {
	h := hmac.New(sha256.New, n.key)
	h.Write(b)
	return h.Sum(nil)[:16]
}

func (n *sharedNonces) issue() string {
	b := make([]byte, 16, sharedNonceLen)
	binary.BigEndian.PutUint64(b, uint64(n.now().UnixMilli()))
	rand.Read(b[8:16])
	return base64.RawURLEncoding.EncodeToString(append(b, n.mac(b)...))
}

func (n *sharedNonces) redeem(ctx context.Context, s string) (bool, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != sharedNonceLen || !hmac.Equal(b[16:], n.mac(b[:16])) {
		return false, nil
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(b)))
	now := n.now()
	if now.Sub(issued) > NonceLifetime || issued.Sub(now) > time.Minute {
		return false, nil
	}
	return n.store.RedeemNonce(ctx, b[:16], issued.Add(NonceLifetime))
}
