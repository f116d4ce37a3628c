package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis defaults.
const (
	DefaultRedisKeyPrefix = "phone:"
	DefaultRedisTimeout   = 2 * time.Second

	// redisUpdateTries bounds the optimistic transactions one Update runs
	// when other writers keep changing the key between its WATCH and EXEC.
	// Updates in one process queue on a local lock first, so only other
	// processes (other Caddy instances) make an attempt fail.
	redisUpdateTries = 50
	// redisBackoffBase and redisMaxBackoff shape the jittered pause after
	// a failed attempt: up to base<<try, capped.
	redisBackoffBase = 500 * time.Microsecond
	redisMaxBackoff  = 20 * time.Millisecond
)

// RedisCache is a Cache in Redis, shared by every Caddy instance that
// points at the same server (or Cluster, or Sentinel master) and
// KeyPrefix: a challenge written by one instance verifies on another.
// Entries expire through Redis's own PX expiry.
//
// Every operation touches one key, so a Cluster needs nothing more; still,
// on a Cluster each key carries a hash tag (see clusterKey) that puts all
// the keys of one user in one slot, so a transaction over several of them
// stays possible.
//
// Update is a WATCH/MULTI/EXEC optimistic transaction, so it is atomic
// across processes. Updates of one key in one process also queue on a
// local lock, so within a process fn runs once per Update and no two
// Updates see the same old value. When another process writes the key
// between the read and the write, the transaction is retried with the new
// value: fn may then run more than once, and only its last result is
// kept, so fn must be pure (no effects beyond its return values, or
// effects that the next call resets). Two Updates in different processes
// may each run fn on the same old value, but only one of them commits.
//
// Values are never logged nor put in errors; keys are kept out of errors
// too, since they hold user IDs and phone numbers.
type RedisCache struct {
	client  redis.UniversalClient
	prefix  string
	cluster bool // keys get hash tags
	timeout time.Duration
	locks   keyLocks

	closeOnce sync.Once
	closeErr  error
}

// NewRedisCache connects to the server, Cluster or Sentinel master of
// cfg and pings it once, bounded by cfg.Timeout and ctx; ctx does not
// outlive the call. An unreachable server is an error wrapping
// ErrUnavailable. The caller must Close the cache.
func NewRedisCache(ctx context.Context, cfg RedisConfig) (*RedisCache, error) {
	opt, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultRedisKeyPrefix
	}
	c := &RedisCache{client: redis.NewUniversalClient(opt), prefix: cfg.KeyPrefix,
		timeout: opt.ReadTimeout, cluster: cfg.cluster()}
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.client.Ping(pctx).Err(); err != nil {
		c.client.Close()
		return nil, fmt.Errorf("%w: redis: ping: %w", ErrUnavailable, err)
	}
	return c, nil
}

// key is k as stored: prefixed, and tagged on a Cluster.
func (c *RedisCache) key(k string) string {
	if c.cluster {
		return c.prefix + clusterKey(k)
	}
	return c.prefix + k
}

// Get returns the entry, or ErrNotFound (unwrapped) when it is missing or
// expired.
func (c *RedisCache) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, err := c.client.Get(ctx, c.key(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, ErrNotFound
	case err != nil:
		return nil, redisErr("get", err)
	}
	return v, nil // a fresh copy: the caller may keep and change it
}

// Update runs fn on the current value and stores what it returns, in one
// optimistic transaction retried (up to 50 times, with a short jittered
// pause) while other processes keep changing the key; past that it gives
// up with an error wrapping ErrUnavailable. fn may run more than once and
// must be pure: see RedisCache. fn must not Update the same key on this
// cache: the key's local lock is held.
//
// An error from Redis wraps ErrUnavailable; when it comes after EXEC was
// sent (a lost reply), the write may have landed anyway.
func (c *RedisCache) Update(ctx context.Context, key string, fn UpdateFunc) error {
	k := c.key(key)
	unlock, err := c.locks.lock(ctx, k)
	if err != nil {
		return redisErr("update", err)
	}
	defer unlock()
	for try := 1; ; try++ {
		err := c.updateOnce(ctx, k, fn)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if try == redisUpdateTries {
			return fmt.Errorf("%w: redis update: key still contended after %d tries: %w", ErrUnavailable, try, err)
		}
		if err := sleepCtx(ctx, redisBackoff(try)); err != nil {
			return redisErr("update", err)
		}
	}
}

// updateOnce is one WATCH, GET, fn, MULTI/SET|DEL/EXEC attempt. It returns
// fn's error as is, redis.TxFailedErr unwrapped when the key changed
// under it, and any other failure wrapped in ErrUnavailable.
func (c *RedisCache) updateOnce(ctx context.Context, k string, fn UpdateFunc) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var fnErr error
	err := c.client.Watch(ctx, func(tx *redis.Tx) error {
		old, err := tx.Get(ctx, k).Bytes()
		found := true
		switch {
		case errors.Is(err, redis.Nil):
			old, found = nil, false
		case err != nil:
			return err
		}
		v, ttl, err := fn(old, found)
		if err != nil {
			fnErr = err
			return err
		}
		del := v == nil || ttl <= 0
		if del && !found {
			return nil // already gone: nothing to write, and the read stands
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if del {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, v, ceilMillisecond(ttl))
			}
			return nil
		})
		return err
	}, k)
	switch {
	case fnErr != nil:
		return fnErr
	case err == nil || errors.Is(err, redis.TxFailedErr):
		return err
	}
	return redisErr("update", err)
}

// Delete removes the entry; a missing one is not an error. A concurrent
// Update's transaction sees the delete and retries on the missing entry.
func (c *RedisCache) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.client.Del(ctx, c.key(key)).Err(); err != nil {
		return redisErr("delete", err)
	}
	return nil
}

// Close closes the connections; later calls fail with ErrUnavailable.
// It is safe to call more than once.
func (c *RedisCache) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.client.Close() })
	return c.closeErr
}

func redisErr(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, op, err)
}

// ceilMillisecond rounds a positive ttl up to whole milliseconds, Redis's
// PX unit, so an entry never expires early and go-redis never sees (and
// logs about) a sub-millisecond ttl.
func ceilMillisecond(ttl time.Duration) time.Duration {
	if r := ttl % time.Millisecond; r != 0 && ttl <= math.MaxInt64-time.Millisecond {
		ttl += time.Millisecond - r
	}
	return ttl
}

// redisBackoff is the pause after the try-th failed attempt: uniform in
// (0, min(base<<try, max)], so contending processes spread out.
func redisBackoff(try int) time.Duration {
	d := redisMaxBackoff
	if try < 16 {
		d = min(redisBackoffBase<<try, redisMaxBackoff)
	}
	return rand.N(d) + 1
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// keyLocks serializes Updates of one key within the process, waiting with
// the caller's context. Entries live only while someone holds or awaits
// them.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // capacity 1: full while held
	refs int           // holders and waiters; guarded by keyLocks.mu
}

func (l *keyLocks) lock(ctx context.Context, k string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	kl := l.m[k]
	if kl == nil {
		kl = &keyLock{held: make(chan struct{}, 1)}
		l.m[k] = kl
	}
	kl.refs++
	l.mu.Unlock()
	select {
	case kl.held <- struct{}{}:
		return func() {
			<-kl.held
			l.release(k, kl)
		}, nil
	case <-ctx.Done():
		l.release(k, kl)
		return nil, ctx.Err()
	}
}

func (l *keyLocks) release(k string, kl *keyLock) {
	l.mu.Lock()
	if kl.refs--; kl.refs == 0 {
		delete(l.m, k)
	}
	l.mu.Unlock()
}

var _ Cache = (*RedisCache)(nil)
