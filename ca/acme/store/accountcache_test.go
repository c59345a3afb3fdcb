package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestAccountCache checks that every change through UpdateAccount is seen
// by the next Account, that callers' changes to what Account returns do
// not reach the cache, and that a read overlapping an update is not kept.
func TestAccountCache(t *testing.T) {
	ctx := context.Background()
	newKey := func() *jose.JSONWebKey {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return &jose.JSONWebKey{Key: k.Public(), Algorithm: "ES256"}
	}
	tests := []struct {
		name   string
		change func(a *Account)
		check  func(a *Account) bool
	}{
		{"contact", func(a *Account) { a.Contact = []string{"mailto:b@example.com"} },
			func(a *Account) bool { return slices.Equal(a.Contact, []string{"mailto:b@example.com"}) }},
		{"deactivation", func(a *Account) { a.Status = StatusDeactivated },
			func(a *Account) bool { return a.Status == StatusDeactivated }},
		{"key change", func(a *Account) { a.Key, a.Thumbprint = newKey(), "tpNew" },
			func(a *Account) bool { return a.Thumbprint == "tpNew" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sq, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "acme.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer sq.Close()
			c := NewAccountCache(sq)
			a := &Account{ID: "acct", Key: newKey(), Thumbprint: "tpOld", Contact: []string{"mailto:a@example.com"},
				Status: StatusValid, Created: time.Now().UTC()}
			if err := c.CreateAccount(ctx, a); err != nil {
				t.Fatal(err)
			}
			got, err := c.Account(ctx, "acct") // cached from here
			if err != nil {
				t.Fatal(err)
			}
			got.Contact[0], got.Status = "mailto:x@example.com", StatusRevoked
			if again, _ := c.Account(ctx, "acct"); again.Status != StatusValid || again.Contact[0] != "mailto:a@example.com" {
				t.Fatalf("a caller's change reached the cache: %+v", again)
			}
			if got, err = c.Account(ctx, "acct"); err != nil {
				t.Fatal(err)
			}
			tt.change(got)
			if err := c.UpdateAccount(ctx, got); err != nil {
				t.Fatal(err)
			}
			if after, err := c.Account(ctx, "acct"); err != nil || !tt.check(after) {
				t.Errorf("after UpdateAccount: %+v, %v", after, err)
			}
		})
	}
	t.Run("overlapping read", func(t *testing.T) {
		sq, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "acme.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer sq.Close()
		h := &hookStore{Store: sq}
		c := NewAccountCache(h)
		if err := c.CreateAccount(ctx, &Account{ID: "acct", Key: newKey(), Thumbprint: "tp", Status: StatusValid}); err != nil {
			t.Fatal(err)
		}
		// The update commits and drops the account after the read but
		// before the read returns: what it read must not be kept.
		h.afterAccount = func() {
			h.afterAccount = nil
			if err := c.UpdateAccount(ctx, &Account{ID: "acct", Key: newKey(), Thumbprint: "tp", Status: StatusDeactivated}); err != nil {
				t.Fatal(err)
			}
		}
		if a, err := c.Account(ctx, "acct"); err != nil || a.Status != StatusValid {
			t.Fatalf("overlapping read: %+v, %v", a, err)
		}
		if a, err := c.Account(ctx, "acct"); err != nil || a.Status != StatusDeactivated {
			t.Errorf("after the overlapping update: %+v, %v, want deactivated", a, err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		sq, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "acme.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer sq.Close()
		c := NewAccountCache(sq)
		if _, err := c.Account(ctx, "acct"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Account before CreateAccount: %v, want ErrNotFound", err)
		}
		if err := c.CreateAccount(ctx, &Account{ID: "acct", Key: newKey(), Thumbprint: "tp", Status: StatusValid}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Account(ctx, "acct"); err != nil {
			t.Errorf("Account after CreateAccount: %v", err)
		}
	})
}

// hookStore calls afterAccount, when set, after each Account read.
type hookStore struct {
	Store
	afterAccount func()
}

func (h *hookStore) Account(ctx context.Context, id string) (*Account, error) {
	a, err := h.Store.Account(ctx, id)
	if f := h.afterAccount; f != nil {
		f()
	}
	return a, err
}
