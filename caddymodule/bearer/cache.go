package bearer

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

const (
	cacheShards = 64 // a power of two; spreads lock contention
	// cacheMaxBytes bounds the approximate memory of all cached entries, so a
	// flood of large valid tokens cannot grow the cache past it either.
	cacheMaxBytes = 128 << 20
	// entryOverhead approximates an Identity, its claims map and map slot
	// beyond the token bytes.
	entryOverhead = 512
	sweepEvery    = int64(time.Minute)
)

// tokenCache remembers what verified tokens proved, keyed by the exact token
// string. Entries are looked up by a 64-bit seeded hash and confirmed by
// comparing the whole token, so a hash collision can only cause a miss.
type tokenCache struct {
	seed       maphash.Seed
	maxEntries int // per shard
	maxBytes   int // per shard
	shards     [cacheShards]cacheShard
}

type cacheShard struct {
	mu        sync.RWMutex
	m         map[uint64]cacheEntry
	bytes     int
	nextSweep int64
	_         [64]byte // keeps neighbouring shards' locks off one cache line
}

type cacheEntry struct {
	token string
	id    *Identity
	until int64 // UnixNano: min(exp+leeway, cached at+5m)
}

func entryCost(token string) int { return 2*len(token) + entryOverhead }

func newTokenCache(maxEntries int) *tokenCache {
	c := &tokenCache{
		seed:       maphash.MakeSeed(),
		maxEntries: max(1, (maxEntries+cacheShards-1)/cacheShards),
		maxBytes:   cacheMaxBytes / cacheShards,
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(token string) (uint64, *cacheShard) {
	h := maphash.String(c.seed, token)
	return h, &c.shards[h&(cacheShards-1)]
}

// get returns the identity token proved if it is cached and now (UnixNano)
// is before the entry's end, else nil.
func (c *tokenCache) get(token string, now int64) *Identity {
	h, s := c.shard(token)
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || now >= e.until || e.token != token {
		return nil
	}
	return e.id
}

func (c *tokenCache) put(token string, id *Identity, now, until int64) {
	// Our own copy: the caller's string may share memory with a larger buffer.
	token = strings.Clone(token)
	cost := entryCost(token)
	if cost > c.maxBytes {
		return
	}
	h, s := c.shard(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[h]; ok {
		delete(s.m, h)
		s.bytes -= entryCost(old.token)
	}
	if len(s.m) >= c.maxEntries || s.bytes+cost > c.maxBytes || now >= s.nextSweep {
		c.evict(s, now, cost)
	}
	s.m[h] = cacheEntry{token: token, id: id, until: until}
	s.bytes += cost
}

// evict drops expired entries and, if the shard is still too full for one
// more entry of cost, random ones (map order is random) down to 7/8 of the
// bounds, so a full shard is not swept on every insert.
func (c *tokenCache) evict(s *cacheShard, now int64, cost int) {
	for k, e := range s.m {
		if now >= e.until {
			delete(s.m, k)
			s.bytes -= entryCost(e.token)
		}
	}
	s.nextSweep = now + sweepEvery
	if len(s.m) < c.maxEntries && s.bytes+cost <= c.maxBytes {
		return
	}
	lowEntries, lowBytes := c.maxEntries*7/8, c.maxBytes*7/8
	for k, e := range s.m {
		if len(s.m) < lowEntries && s.bytes+cost <= lowBytes {
			break
		}
		delete(s.m, k)
		s.bytes -= entryCost(e.token)
	}
}

// len counts entries (tests).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
