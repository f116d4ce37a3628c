package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/store"
)

func init() { caddy.RegisterModule(BigCache{}) }

// BigCache is `cache bigcache`, the default: challenges and counters in
// this process's memory, kept across config reloads.
//
//	cache bigcache {
//	    max_size <size>
//	}
type BigCache struct {
	// Memory bound in bytes; default 256 MiB, at least 1 MiB.
	MaxSize int64 `json:"max_size,omitempty"`

	// lifeWindow is the longest life of an entry the handler's rules
	// write, whole seconds (set by the handler; 0: bigcache's default).
	// A full cache refuses writes until what was written in it this long
	// ago ages out, so it is as short as the rules allow.
	lifeWindow time.Duration
}

// setLifeWindow is told the longest entry life of the rules using it.
func (c *BigCache) setLifeWindow(d time.Duration) {
	c.lifeWindow = max((d + time.Second - 1).Truncate(time.Second), time.Second)
}

const defaultCacheSize = 256 << 20

// CaddyModule returns the Caddy module information.
func (BigCache) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: cacheNamespace + ".bigcache", New: func() caddy.Module { return new(BigCache) }}
}

// UnmarshalCaddyfile reads the block.
func (c *BigCache) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "cache bigcache", map[string]setting{"max_size": func(d *caddyfile.Dispenser) error {
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		n, err := humanize.ParseBytes(s)
		if err != nil {
			return d.Errf("cache: max_size: bad size %q", s)
		}
		c.MaxSize = int64(n)
		return nil
	}})
}

// Provision fills the default size.
func (c *BigCache) Provision(caddy.Context) error {
	if c.MaxSize == 0 {
		c.MaxSize = defaultCacheSize
	}
	return nil
}

// Validate checks the size.
func (c *BigCache) Validate() error {
	if c.MaxSize < 1<<20 {
		return fmt.Errorf("cache: max_size must be at least 1MB, got %d bytes", c.MaxSize)
	}
	return nil
}

// PoolKey is the size and the life window: configs asking for the same
// share a cache (one whose window is too short for a config's entries
// would refuse its writes).
func (c *BigCache) PoolKey() string { return fmt.Sprintf("bigcache/%d/%s", c.MaxSize, c.lifeWindow) }

// Shared is false: no other process sees this memory.
func (*BigCache) Shared() bool { return false }

// OpenCache allocates the cache.
func (c *BigCache) OpenCache(caddy.Context, *zap.Logger) (ClosingCache, error) {
	return store.NewBigCache(store.BigCacheConfig{MaxSizeMB: int(c.MaxSize >> 20), LifeWindow: c.lifeWindow})
}

var (
	_ CacheModule           = (*BigCache)(nil)
	_ caddy.Provisioner     = (*BigCache)(nil)
	_ caddy.Validator       = (*BigCache)(nil)
	_ caddyfile.Unmarshaler = (*BigCache)(nil)
)
