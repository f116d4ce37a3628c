package caddymodule

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

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

// The secret's fingerprint in a shared cache, beside the store's entries:
// an HMAC of a constant under the secret, never the secret. Kept for a
// year from the last start of an instance.
const (
	secretFingerprintKey = "m:secret"
	secretFingerprintTTL = 365 * 24 * time.Hour
)

// checkSecretFingerprint refuses a secret other than the one the other
// instances sharing this store's entries hash codes with (SPEC §9): their
// codes would all be wrong here, and this one's there. A cache that cannot
// be reached now is no reason to refuse: the handler answers 503 until it
// can, and the check is made at the next start.
func checkSecretFingerprint(ctx context.Context, c store.Cache, ns, secret string, logger *zap.Logger) error {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("caddy-phone secret fingerprint v1"))
	fp := hex.EncodeToString(mac.Sum(nil))
	errOther := fmt.Errorf("secret: differs from the secret of the other instances whose store shares this cache's entries "+
		"(its fingerprint is kept in the cache under key %q, after the cache's key_prefix): give every instance the same `secret`; "+
		"to change it, stop them all and delete that key (the codes then open become void)", ns+secretFingerprintKey)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.Update(cctx, secretFingerprintKey, func(old []byte, found bool) ([]byte, time.Duration, error) {
		if found && !hmac.Equal(old, []byte(fp)) {
			return nil, 0, errOther
		}
		return []byte(fp), secretFingerprintTTL, nil
	})
	if errors.Is(err, errOther) {
		return err
	}
	if err != nil {
		logger.Warn("cannot check the secret against the shared cache's; checked at the next start", zap.Error(err))
	}
	return nil
}
