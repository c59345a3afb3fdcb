package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store in memory, for tests and for servers without a
// database. It forgets nothing (events are a few bytes each).
type Memory struct {
	mu     sync.Mutex
	events map[string][]time.Time // name+"\x00"+key -> times, ascending
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{events: map[string][]time.Time{}} }

// AddEvent implements Store.
func (m *Memory) AddEvent(_ context.Context, name, key string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := name + "\x00" + key
	m.events[k] = append(m.events[k], at)
	return nil
}

// CountEvents implements Store.
func (m *Memory) CountEvents(_ context.Context, name, key string, since time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int
	var oldest time.Time
	for _, t := range m.events[name+"\x00"+key] {
		if !t.Before(since) {
			if n == 0 || t.Before(oldest) {
				oldest = t
			}
			n++
		}
	}
	return n, oldest, nil
}
