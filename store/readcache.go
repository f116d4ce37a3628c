package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// CachedUsers puts a short read cache in front of a Users for the hot
// read-only paths (phone headers on every proxied request, GET /phone).
//
// Get always reads the store (the rules must decide on fresh data) and
// refreshes the cache; Peek answers from the cache when it can. Set
// invalidates the user's entry whether or not it succeeded, so this
// instance never serves its own stale writes; another instance's write is
// seen at most ttl later.
type CachedUsers struct {
	Users
	cache *BigCache
	ttl   time.Duration
	// writes counts invalidations. A read that a write overtook must not
	// be remembered: it may hold what the write just replaced.
	writes atomic.Uint64
}

// NewCachedUsers wraps u with a cache of at most maxSizeMB holding entries
// for ttl.
func NewCachedUsers(u Users, ttl time.Duration, maxSizeMB int) (*CachedUsers, error) {
	c, err := NewBigCache(BigCacheConfig{MaxSizeMB: maxSizeMB, LifeWindow: max(ttl, time.Second)})
	if err != nil {
		return nil, err
	}
	return &CachedUsers{Users: u, cache: c, ttl: ttl}, nil
}

// Get reads the store and refreshes the cached copy.
func (c *CachedUsers) Get(ctx context.Context, userID string) (User, error) {
	gen := c.writes.Load()
	u, err := c.Users.Get(ctx, userID)
	if err == nil && c.writes.Load() == gen {
		c.remember(ctx, u)
	}
	return u, err
}

// Peek returns the user from the cache, or reads the store on a miss.
func (c *CachedUsers) Peek(ctx context.Context, userID string) (User, error) {
	if b, err := c.cache.Get(ctx, readKey(userID)); err == nil && len(b) >= 1 {
		return User{ID: userID, PhoneNumber: string(b[1:]), Verified: b[0] == 1}, nil
	}
	return c.Get(ctx, userID)
}

// Set writes through and drops the cached copy.
func (c *CachedUsers) Set(ctx context.Context, u User) error {
	err := c.Users.Set(ctx, u)
	if derr := c.forget(ctx, u.ID); derr != nil && err == nil {
		err = derr
	}
	return err
}

// forget drops the user's cached copy after a write, and keeps reads that
// the write overtook from putting an older one back.
func (c *CachedUsers) forget(ctx context.Context, userID string) error {
	c.writes.Add(1)
	return c.cache.Delete(context.WithoutCancel(ctx), readKey(userID))
}

// Close closes the cache and the store.
func (c *CachedUsers) Close() error {
	return errors.Join(c.cache.Close(), c.Users.Close())
}

func (c *CachedUsers) remember(ctx context.Context, u User) {
	v := make([]byte, 1, 1+len(u.PhoneNumber))
	if u.Verified {
		v[0] = 1
	}
	v = append(v, u.PhoneNumber...)
	_ = c.cache.Update(ctx, readKey(u.ID), func([]byte, bool) ([]byte, time.Duration, error) {
		return v, c.ttl, nil
	})
}

func readKey(userID string) string { return "u:" + userID }
