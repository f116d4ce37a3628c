package caddymodule

import (
	"maps"
	"sync"
	"sync/atomic"
)

// internTable keeps values made once per name and read on every request
// (a metric's counter for a label value, a placeholder's key for a claim
// name): read without a lock, copied on write. It holds at most max
// names; past that, values are made afresh each time.
type internTable[K comparable, V any] struct {
	max int
	mu  sync.Mutex
	m   atomic.Pointer[map[K]V]
}

// get returns k's value, made by newValue the first time.
func (t *internTable[K, V]) get(k K, newValue func() V) V {
	if m := t.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[K]V
	if m := t.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
		old = *m
	}
	v := newValue()
	if len(old) < t.max {
		m := make(map[K]V, len(old)+1)
		maps.Copy(m, old)
		m[k] = v
		t.m.Store(&m)
	}
	return v
}
