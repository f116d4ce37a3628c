package bearer

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	cacheShards = 64 // a power of two; spreads lock contention
	// cacheMaxBytes bounds the approximate memory of all cached entries, so a
	// flood of valid tokens with large claims cannot grow the cache past it.
	cacheMaxBytes = 128 << 20
	// entryOverhead approximates a map slot and an Identity beyond its
	// packed claims.
	entryOverhead = 128
	sweepEvery    = int64(time.Minute)
)

// tokenCache remembers what verified tokens proved. An entry is keyed by
// the first 64 bits of the token's SHA-256 and confirmed by the next 64
// (Identity.check), not by the token: keeping a million tokens (often a
// kilobyte each) would cost more than everything else the module holds
// for a million users. Finding another string with the same 128 bits,
// which would be served the entry's identity, is a second preimage of
// SHA-256: infeasible. Two tokens that share only the first 64 bits take
// turns in one slot: a miss, never a wrong identity.
type tokenCache struct {
	maxEntries int // per shard
	maxBytes   int // per shard
	shards     [cacheShards]cacheShard
	// seen admits a token on its second verification (put): a slot holds
	// the key of the last token first verified whose check chose it.
	seen [seenSlots]atomic.Uint64
}

// seenSlots is the size of the admission table: 512 KiB. A token's mark
// lasts until seenSlots other first sightings, on average, have passed.
const seenSlots = 1 << 16

type cacheShard struct {
	mu        sync.RWMutex
	m         map[uint64]cacheEntry
	bytes     int
	nextSweep int64
	_         [64]byte // keeps neighbouring shards' locks off one cache line
}

type cacheEntry struct {
	id    *Identity
	until int64 // UnixNano: min(exp+leeway, cached at+5m)
}

// entryCost approximates the memory an entry holds.
func entryCost(id *Identity) int { return entryOverhead + len(id.strs) }

func newTokenCache(maxEntries int) *tokenCache {
	c := &tokenCache{
		maxEntries: max(1, (maxEntries+cacheShards-1)/cacheShards),
		maxBytes:   cacheMaxBytes / cacheShards,
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry)
	}
	return c
}

// shard returns token's key, its check (Identity.check) and its shard.
func (c *tokenCache) shard(token string) (key, check uint64, s *cacheShard) {
	// Read-only view of the token's bytes: a copy would cost an
	// allocation of the token's size on every request.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	key, check = binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])
	return key, check, &c.shards[binary.LittleEndian.Uint64(sum[16:24])&(cacheShards-1)]
}

// get returns the identity token proved if it is cached and now (UnixNano)
// is before the entry's end, else nil.
func (c *tokenCache) get(token string, now int64) *Identity {
	k, check, s := c.shard(token)
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	if !ok || now >= e.until || e.id.check != check {
		return nil
	}
	return e.id
}

// put remembers what token proved, from the token's second verification
// on: the first only marks it in the admission table (seen). A token
// used once — the update call of a page that then waits for its code —
// costs no entry, where an identity costs about 130 bytes (issue 13: with
// a million open challenges, each with a token of its own, they were the
// heap's largest tenant after the challenge cache); a token that comes
// back, as one sent with every page of a session does, is verified twice
// and then served from here. A mark another token overwrote only delays
// the admission by one more verification.
func (c *tokenCache) put(token string, id *Identity, now, until int64) {
	cost := entryCost(id)
	if cost > c.maxBytes {
		return
	}
	k, check, s := c.shard(token)
	mark := &c.seen[check&(seenSlots-1)]
	id.check = check
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[k]
	// Marked, or its own entry, whose 5 minutes of trust ran out: it came back.
	if mark.Load() != k && !(ok && old.id.check == check) {
		mark.Store(k)
		return
	}
	if ok {
		delete(s.m, k)
		s.bytes -= entryCost(old.id)
	}
	if len(s.m) >= c.maxEntries || s.bytes+cost > c.maxBytes || now >= s.nextSweep {
		c.evict(s, now, cost)
	}
	s.m[k] = cacheEntry{id: id, until: until}
	s.bytes += cost
}

// evict drops expired entries and, if the shard is still too full for one
// more entry of cost, random ones (map order is random) down to 7/8 of the
// bounds, so a full shard is not swept on every insert.
func (c *tokenCache) evict(s *cacheShard, now int64, cost int) {
	for k, e := range s.m {
		if now >= e.until {
			delete(s.m, k)
			s.bytes -= entryCost(e.id)
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
		s.bytes -= entryCost(e.id)
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
