package storage

import (
	"context"
	"sync"
	"time"

	"github.com/google/trillian"
	tstorage "github.com/google/trillian/storage"
	"google.golang.org/protobuf/proto"
)

// CacheTrees wraps an AdminStorage so that GetTree is answered from memory
// for up to ttl. Trillian's log server reads the tree's metadata from storage
// on every RPC (a query per add-chain); the metadata changes only through the
// admin API, and every read-write admin transaction through this wrapper
// empties the cache. ttl bounds how long a change made by another process
// sharing the database goes unseen.
func CacheTrees(as tstorage.AdminStorage, ttl time.Duration) tstorage.AdminStorage {
	return &treeCache{AdminStorage: as, ttl: ttl, trees: map[int64]cachedTree{}}
}

type treeCache struct {
	tstorage.AdminStorage
	ttl time.Duration

	mu    sync.Mutex
	trees map[int64]cachedTree
}

type cachedTree struct {
	tree    *trillian.Tree
	fetched time.Time
}

func (c *treeCache) get(id int64) *trillian.Tree {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.trees[id]; ok && time.Since(t.fetched) < c.ttl {
		return proto.Clone(t.tree).(*trillian.Tree)
	}
	return nil
}

func (c *treeCache) put(t *trillian.Tree) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trees[t.TreeId] = cachedTree{tree: proto.Clone(t).(*trillian.Tree), fetched: time.Now()}
}

// Snapshot implements storage.AdminStorage.
func (c *treeCache) Snapshot(ctx context.Context) (tstorage.ReadOnlyAdminTX, error) {
	return &cachedSnapshot{c: c, ctx: ctx}, nil
}

// ReadWriteTransaction implements storage.AdminStorage; it empties the cache.
func (c *treeCache) ReadWriteTransaction(ctx context.Context, f tstorage.AdminTXFunc) error {
	defer c.clear()
	return c.AdminStorage.ReadWriteTransaction(ctx, f)
}

func (c *treeCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.trees)
}

// cachedSnapshot opens the underlying snapshot only when the cache cannot
// answer.
type cachedSnapshot struct {
	c   *treeCache
	ctx context.Context
	tx  tstorage.ReadOnlyAdminTX
}

func (s *cachedSnapshot) open() error {
	if s.tx != nil {
		return nil
	}
	tx, err := s.c.AdminStorage.Snapshot(s.ctx)
	if err != nil {
		return err
	}
	s.tx = tx
	return nil
}

func (s *cachedSnapshot) GetTree(ctx context.Context, id int64) (*trillian.Tree, error) {
	if t := s.c.get(id); t != nil {
		return t, nil
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	t, err := s.tx.GetTree(ctx, id)
	if err == nil {
		s.c.put(t)
	}
	return t, err
}

func (s *cachedSnapshot) ListTrees(ctx context.Context, includeDeleted bool) ([]*trillian.Tree, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	return s.tx.ListTrees(ctx, includeDeleted)
}

func (s *cachedSnapshot) Commit() error {
	if s.tx == nil {
		return nil
	}
	return s.tx.Commit()
}

func (s *cachedSnapshot) Close() error {
	if s.tx == nil {
		return nil
	}
	return s.tx.Close()
}
