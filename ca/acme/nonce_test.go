package acme

import (
	"context"
	"encoding/base64"
	"sync"
	"testing"
	"time"
)

// memNonceStore is a NonceStore in memory, standing for the shared MySQL
// tables.
type memNonceStore struct {
	mu   sync.Mutex
	key  []byte
	used map[string]bool
}

func (m *memNonceStore) NonceKey(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key == nil {
		m.key = []byte("0123456789abcdef0123456789abcdef")
	}
	return m.key, nil
}

func (m *memNonceStore) RedeemNonce(_ context.Context, id []byte, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used[string(id)] {
		return false, nil
	}
	m.used[string(id)] = true
	return true, nil
}

func TestSharedNonces(t *testing.T) {
	ctx := context.Background()
	store := &memNonceStore{used: map[string]bool{}}
	key, _ := store.NonceKey(ctx)
	now := time.Now()
	clock := func() time.Time { return now }
	a := &sharedNonces{key: key, store: store, now: clock}
	b := &sharedNonces{key: key, store: store, now: clock} // another process
	other := &sharedNonces{key: []byte("another deployment's key........"), store: store, now: clock}

	n := a.issue()
	if ok, err := b.redeem(ctx, n); !ok || err != nil {
		t.Fatalf("another process refused a fresh nonce: %v %v", ok, err)
	}
	if ok, _ := a.redeem(ctx, n); ok {
		t.Fatal("a nonce was redeemed twice (by the process that issued it, after another)")
	}
	if ok, _ := other.redeem(ctx, a.issue()); ok {
		t.Fatal("a nonce of another key was accepted")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(a.issue())
	raw[10] ^= 1
	if ok, _ := a.redeem(ctx, base64.RawURLEncoding.EncodeToString(raw)); ok {
		t.Fatal("a tampered nonce was accepted")
	}
	for _, bad := range []string{"", "!!!", "AAAA", a.issue() + "A"} {
		if ok, err := a.redeem(ctx, bad); ok || err != nil {
			t.Errorf("redeem(%q) = %v, %v", bad, ok, err)
		}
	}
	old := a.issue()
	now = now.Add(NonceLifetime + time.Second)
	if ok, _ := a.redeem(ctx, old); ok {
		t.Fatal("an expired nonce was accepted")
	}
	if ok, _ := a.redeem(ctx, a.issue()); !ok {
		t.Fatal("a fresh nonce was refused after the clock moved")
	}
}
