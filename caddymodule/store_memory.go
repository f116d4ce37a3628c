package caddymodule

import (
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-phone/caddy-phone/store"
)

func init() { caddy.RegisterModule(MemoryStore{}) }

// MemoryStore is `store memory`: users in this process's memory, for tests
// and demos. One per process, so that it too survives config reloads; it
// is lost when Caddy stops.
//
//	store memory
type MemoryStore struct{}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: storeNamespace + ".memory", New: func() caddy.Module { return new(MemoryStore) }}
}

// UnmarshalCaddyfile takes no arguments and no block.
func (*MemoryStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "store memory", nil)
}

// String names the store, for messages.
func (MemoryStore) String() string { return "store memory" }

var (
	sharedMemoryOnce sync.Once
	sharedMemory     *store.MemoryUsers
)

// OpenStore returns the process's memory store; closing it is a no-op.
// Its namespace is the process's: every handler of it shares the one
// memory store, and another process's is other data.
func (MemoryStore) OpenStore(caddy.Context) (store.Backend, error) {
	sharedMemoryOnce.Do(func() { sharedMemory = store.NewMemoryUsers() })
	b := sharedMemory.Backend()
	b.Users = keepOpen{b.Users}
	return b, nil
}

// keepOpen ignores Close: the process's memory store outlives each config.
type keepOpen struct{ store.Users }

func (keepOpen) Close() error { return nil }

var (
	_ StoreModule           = (*MemoryStore)(nil)
	_ caddyfile.Unmarshaler = (*MemoryStore)(nil)
)
