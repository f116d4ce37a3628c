package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

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
	cache  ClosingCache
	secret []byte
}

// Destruct closes the cache when the last config using it is unloaded.
func (s *sharedCache) Destruct() error { return s.cache.Close() }

// loadCache returns the pooled cache of mod, opening it on first use.
// secret is the configured HMAC key ("" for a random one, kept with the
// cache so that it survives reloads).
func loadCache(ctx caddy.Context, mod CacheModule, secret string, logger *zap.Logger) (*sharedCache, error) {
	key := mod.PoolKey()
	// A configured secret is part of the key (hashed: keys are not secret),
	// so changing it starts a fresh cache instead of voiding open codes
	// silently.
	if secret != "" {
		key += fmt.Sprintf("/%x", sha256.Sum256([]byte("pool-key\x00"+secret)))
	}
	v, _, err := cachePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		c, err := mod.OpenCache(ctx, logger)
		if err != nil {
			return nil, fmt.Errorf("cache %s: %w", mod.CaddyModule().ID.Name(), err)
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
