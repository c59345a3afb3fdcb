package store

import (
	"context"
	"slices"
	"sync"
)

// accountCacheSize bounds the accounts an accountCache keeps.
const accountCacheSize = 4096

// accountCache is a Store that keeps the accounts read by ID, so that
// authenticating a request signed with a kid (every request of a flow but
// the first) does not read and decode the account again. Every
// UpdateAccount through it drops the account after the store's write
// returns, so that a deactivation or a key change takes effect for every
// request that starts after it. A read that overlapped an update is not
// kept (gen), so that it cannot put back what the update replaced.
//
// It assumes that this process is the only writer of the store's accounts,
// which holds for the SQLite store (`ctstage serve` locks its --data
// directory); New uses it for that store only. An update by another
// process would not be seen while the account stays cached.
type accountCache struct {
	Store
	mu  sync.Mutex
	gen uint64 // incremented by every UpdateAccount
	m   map[string]*Account
}

func NewAccountCache(s Store) *accountCache {
	return &accountCache{Store: s, m: make(map[string]*Account)}
}

// Account implements Store. It returns a copy that the caller may change.
func (c *accountCache) Account(ctx context.Context, id string) (*Account, error) {
	c.mu.Lock()
	a, ok := c.m[id]
	gen := c.gen
	c.mu.Unlock()
	if ok {
		return copyAccount(a), nil
	}
	a, err := c.Store.Account(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= accountCacheSize {
			for k := range c.m { // drop any one
				delete(c.m, k)
				break
			}
		}
		c.m[id] = copyAccount(a)
	}
	c.mu.Unlock()
	return a, nil
}

// UpdateAccount implements Store. The account is dropped whatever the
// outcome: a failed commit may still have changed the row.
func (c *accountCache) UpdateAccount(ctx context.Context, a *Account) error {
	err := c.Store.UpdateAccount(ctx, a)
	c.mu.Lock()
	c.gen++
	delete(c.m, a.ID)
	c.mu.Unlock()
	return err
}

// copyAccount copies a, but for its key, which is never changed in place
// (a key change replaces it).
func copyAccount(a *Account) *Account {
	b := *a
	b.Contact = slices.Clone(a.Contact)
	return &b
}
