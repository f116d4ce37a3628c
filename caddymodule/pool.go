package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// cachePool keeps challenge caches across config reloads: a code sent
// before `caddy reload` must verify after it. A cache is destroyed when no
// loaded config uses it any more.
var cachePool = caddy.NewUsagePool()

// sharedCache is one pooled cache and the HMAC key its codes were hashed
// with; the two live and die together.
type sharedCache struct {
	key    string
	cache  closingCache
	secret []byte
}

type closingCache interface {
	store.Cache
	Close() error
}

// Destruct closes the cache when the last config using it is unloaded.
func (s *sharedCache) Destruct() error { return s.cache.Close() }

// loadCache returns the pooled cache for this config, making it on first use.
func (p *Phone) loadCache(ctx caddy.Context, repl *caddy.Replacer) (*sharedCache, error) {
	cc := p.Cache
	if cc == nil {
		cc = &CacheConfig{}
	}
	secret := repl.ReplaceKnown(p.Secret, "")
	if secret != "" && len(secret) < 16 {
		return nil, errors.New("secret: must be at least 16 characters")
	}
	var key string
	var open func() (closingCache, error)
	switch cc.Backend {
	case "", "bigcache":
		size := cc.MaxSize
		if size == 0 {
			size = defaultCacheSize
		}
		if size < 1<<20 {
			return nil, fmt.Errorf("cache: max_size must be at least 1MB, got %d bytes", size)
		}
		key = fmt.Sprintf("bigcache/%d", size)
		open = func() (closingCache, error) {
			return store.NewBigCache(store.BigCacheConfig{MaxSizeMB: int(size >> 20)})
		}
	case "redis":
		// Instances sharing Redis must hash codes with one key: a random
		// per-process key would make a code sent by one fail on another.
		if secret == "" {
			return nil, errors.New("secret: required with cache redis, so every instance hashes codes alike")
		}
		rc := store.RedisConfig{URL: repl.ReplaceKnown(cc.URL, ""), KeyPrefix: cc.KeyPrefix, Timeout: time.Duration(cc.Timeout)}
		key = fmt.Sprintf("redis/%x/%s", sha256.Sum256([]byte(rc.URL)), rc.KeyPrefix)
		redisLogOnce.Do(func() { redis.SetLogger(redisLog{p.logger.Named("redis")}) })
		open = func() (closingCache, error) { return store.NewRedisCache(ctx, rc) }
	default:
		return nil, fmt.Errorf("cache: unknown backend %q (bigcache, redis)", cc.Backend)
	}
	// A configured secret is part of the key (hashed: keys are not secret),
	// so changing it starts a fresh cache instead of voiding open codes
	// silently.
	if secret != "" {
		key += fmt.Sprintf("/%x", sha256.Sum256([]byte("pool-key\x00"+secret)))
	}
	v, _, err := cachePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		c, err := open()
		if err != nil {
			return nil, fmt.Errorf("cache %s: %w", cc.Backend, err)
		}
		sc := &sharedCache{key: key, cache: c, secret: []byte(secret)}
		if secret == "" {
			sc.secret = make([]byte, 32)
			if _, err := rand.Read(sc.secret); err != nil {
				return nil, err
			}
		}
		return sc, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*sharedCache), nil
}

// The memory store is for tests and demos; one per process, so that it too
// survives reloads.
var (
	sharedMemoryOnce sync.Once
	sharedMemory     *store.MemoryUsers
)

func memoryUsers() store.Users {
	sharedMemoryOnce.Do(func() { sharedMemory = store.NewMemoryUsers() })
	return sharedMemory
}

func isSharedMemory(u store.Users) bool {
	m, ok := u.(*store.MemoryUsers)
	return ok && m == sharedMemory
}

// renamed gives a provider the name a Caddyfile chose for it.
type renamed struct {
	sms.Provider
	name string
}

func (r renamed) Name() string { return r.name }

func namedProvider(p sms.Provider, name string) sms.Provider {
	if name == "" {
		return p
	}
	return renamed{p, name}
}

// go-redis logs through one process-wide logger (pool dial failures and
// the like: addresses, never values); send it to Caddy's log instead of
// stderr.
var redisLogOnce sync.Once

type redisLog struct{ logger *zap.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.logger.Warn(fmt.Sprintf(format, v...))
}

// namespacedCache gives each user store its own keys in a shared cache.
// Caches are pooled by their settings alone, so two phone handlers with
// different stores (two sites, two apps) may share one; without this, a
// user of one could open or spend another's challenges and counters. The
// global send budget stays shared: it is the deployment's.
type namespacedCache struct {
	store.Cache
	ns string
}

func namespaced(c store.Cache, ns string) store.Cache { return namespacedCache{c, ns} }

func (c namespacedCache) key(k string) string {
	if k == globalBudgetKey {
		return k
	}
	return c.ns + k
}

func (c namespacedCache) Get(ctx context.Context, k string) ([]byte, error) {
	return c.Cache.Get(ctx, c.key(k))
}

func (c namespacedCache) Update(ctx context.Context, k string, fn store.UpdateFunc) error {
	return c.Cache.Update(ctx, c.key(k), fn)
}

func (c namespacedCache) Delete(ctx context.Context, k string) error {
	return c.Cache.Delete(ctx, c.key(k))
}

// globalBudgetKey is flow's key for the deployment-wide send budget.
const globalBudgetKey = "lg"

// storeNamespace names a user store by its settings: handlers (and Caddy
// instances) configured with the same store share challenges, others do not.
func storeNamespace(sc *StoreConfig, repl *caddy.Replacer) string {
	if sc == nil {
		sc = &StoreConfig{Backend: "sqlite"}
	}
	backend, path := sc.Backend, repl.ReplaceKnown(sc.Path, "")
	if backend == "" {
		backend = "sqlite"
	}
	if backend == "sqlite" && path == "" {
		path = defaultSQLitePath
	}
	id := backend + "\x00" + path + "\x00" + repl.ReplaceKnown(sc.DSN, "") + "\x00" + sc.Schema + "\x00" + repl.ReplaceKnown(sc.URL, "")
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6]) + ":"
}
