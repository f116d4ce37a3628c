package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/json"
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
// Caddy instance pointing at the same server (or Redis Cluster, or
// Sentinel master) and key prefix.
//
//	cache redis [<url>] {
//	    cluster    <host:port>...          # instead of the URL
//	    sentinel   <master> <host:port>... # instead of the URL
//	    username   <name>
//	    password   <password>
//	    tls
//	    key_prefix <prefix>
//	    timeout    <duration>
//	}
type RedisCache struct {
	// redis:// or rediss:// URL of a single server. Placeholders such as
	// {env.X} are expanded in every string.
	URL string `json:"url,omitempty"`
	// Seed addresses (host:port) of a Redis Cluster, instead of url.
	Cluster []string `json:"cluster,omitempty"`
	// A master watched by Sentinel, instead of url.
	Sentinel *RedisSentinel `json:"sentinel,omitempty"`
	// Credentials of the Redis servers (with url: replace the URL's).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Dial with TLS (with url: write rediss:// instead).
	TLS bool `json:"tls,omitempty"`
	// Prefix of every key; default phone:.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Bound on one command; default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	cfg store.RedisConfig // expanded
}

// RedisSentinel names the master and the sentinels that watch it.
type RedisSentinel struct {
	Master string   `json:"master"`
	Addrs  []string `json:"addrs"`
}

// CaddyModule returns the Caddy module information.
func (RedisCache) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: cacheNamespace + ".redis", New: func() caddy.Module { return new(RedisCache) }}
}

// UnmarshalCaddyfile reads the URL, if any, and the block.
func (c *RedisCache) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		c.URL = d.Val()
		if err := noArgs(d); err != nil {
			return err
		}
	}
	err := parseBlock(d, 0, "cache redis", map[string]setting{
		"cluster":    strs(&c.Cluster),
		"sentinel":   c.parseSentinel,
		"username":   str(&c.Username),
		"password":   str(&c.Password),
		"tls":        flag(&c.TLS),
		"key_prefix": str(&c.KeyPrefix),
		"timeout":    dur(&c.Timeout),
	})
	if err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{c.URL != "", c.Cluster != nil, c.Sentinel != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return d.Errf("cache redis: want a redis:// URL, or a block with cluster or sentinel")
	case n > 1:
		return d.Errf("cache redis: give one of a URL, cluster and sentinel")
	}
	return nil
}

// parseSentinel reads `sentinel <master> <host:port>...`.
func (c *RedisCache) parseSentinel(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) < 2 {
		return d.Errf("sentinel: want the master's name and at least one sentinel address")
	}
	c.Sentinel = &RedisSentinel{Master: args[0], Addrs: args[1:]}
	return nil
}

// Provision expands the placeholders and checks the settings.
func (c *RedisCache) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	expand := func(s string) string { return repl.ReplaceKnown(s, "") }
	expandAll := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = expand(s)
		}
		return out
	}
	c.cfg = store.RedisConfig{URL: expand(c.URL), Cluster: expandAll(c.Cluster), Username: expand(c.Username),
		Password: expand(c.Password), TLS: c.TLS, KeyPrefix: c.KeyPrefix, Timeout: time.Duration(c.Timeout)}
	if c.Sentinel != nil {
		c.cfg.SentinelMaster, c.cfg.Sentinels = expand(c.Sentinel.Master), expandAll(c.Sentinel.Addrs)
	}
	if err := c.cfg.Validate(); err != nil {
		return fmt.Errorf("cache redis: %w", err)
	}
	return nil
}

// PoolKey is the servers and the prefix; the connection settings, which
// may hold a password, only as a digest.
func (c *RedisCache) PoolKey() string {
	conn, _ := json.Marshal([]any{c.cfg.URL, c.cfg.Cluster, c.cfg.SentinelMaster, c.cfg.Sentinels,
		c.cfg.Username, c.cfg.Password, c.cfg.TLS})
	return fmt.Sprintf("redis/%x/%s", sha256.Sum256(conn), c.cfg.KeyPrefix)
}

// Shared is true: other instances read the same keys.
func (*RedisCache) Shared() bool { return true }

// OpenCache connects, then warns when a server's settings let it forget
// live challenges and limits (SPEC §9).
func (c *RedisCache) OpenCache(ctx caddy.Context, logger *zap.Logger) (ClosingCache, error) {
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{logger.Named("redis")}) })
	rc, err := store.NewRedisCache(ctx, c.cfg)
	if err != nil {
		return nil, err
	}
	for _, w := range rc.CheckDurability(ctx) {
		logger.Warn("cache redis: "+w+"; the limits are only as durable as Redis (see the README's production section)",
			zap.String("key_prefix", c.cfg.KeyPrefix))
	}
	return rc, nil
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
