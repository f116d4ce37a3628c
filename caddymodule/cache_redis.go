package caddymodule

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/store"
)

func init() { caddy.RegisterModule(RedisCache{}) }

// RedisCache is `cache redis`: challenges and counters shared by every
// Caddy instance pointing at the same server and key prefix.
//
//	cache redis <url> {
//	    key_prefix <prefix>
//	    timeout    <duration>
//	}
type RedisCache struct {
	// redis:// or rediss:// URL. Placeholders such as {env.X} are expanded.
	URL string `json:"url,omitempty"`
	// Prefix of every key; default phone:.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Bound on one command; default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	cfg store.RedisConfig // expanded
}

// CaddyModule returns the Caddy module information.
func (RedisCache) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: cacheNamespace + ".redis", New: func() caddy.Module { return new(RedisCache) }}
}

// UnmarshalCaddyfile reads the URL and the block.
func (c *RedisCache) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.Errf("cache redis: want a redis:// URL")
	}
	c.URL = d.Val()
	if err := noArgs(d); err != nil {
		return err
	}
	return parseBlock(d, 0, "cache redis", map[string]setting{"key_prefix": str(&c.KeyPrefix), "timeout": dur(&c.Timeout)})
}

// Provision expands the URL.
func (c *RedisCache) Provision(caddy.Context) error {
	c.cfg = store.RedisConfig{URL: caddy.NewReplacer().ReplaceKnown(c.URL, ""), KeyPrefix: c.KeyPrefix,
		Timeout: time.Duration(c.Timeout)}
	return nil
}

// PoolKey is the server and the prefix; the URL, which may hold a
// password, only as a digest.
func (c *RedisCache) PoolKey() string {
	return fmt.Sprintf("redis/%x/%s", sha256.Sum256([]byte(c.cfg.URL)), c.cfg.KeyPrefix)
}

// Shared is true: other instances read the same keys.
func (*RedisCache) Shared() bool { return true }

// OpenCache connects.
func (c *RedisCache) OpenCache(ctx caddy.Context, logger *zap.Logger) (ClosingCache, error) {
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{logger.Named("redis")}) })
	return store.NewRedisCache(ctx, c.cfg)
}

// go-redis logs through one process-wide logger (pool dial failures and
// the like: addresses, never values); send it to Caddy's log instead of
// stderr.
var redisLogOnce sync.Once

type redisLog struct{ logger *zap.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.logger.Warn(fmt.Sprintf(format, v...))
}

var (
	_ CacheModule           = (*RedisCache)(nil)
	_ caddy.Provisioner     = (*RedisCache)(nil)
	_ caddyfile.Unmarshaler = (*RedisCache)(nil)
)
