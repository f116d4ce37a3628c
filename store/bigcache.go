package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allegro/bigcache/v3"
)

// BigCache defaults.
const (
	DefaultBigCacheMaxSizeMB  = 256
	DefaultBigCacheShards     = 256
	DefaultBigCacheLifeWindow = 24 * time.Hour

	// bigcacheCleanWindow is how often bigcache drops entries older than
	// the life window. Our own per-entry expiry is checked on read; this
	// bounds how long written bytes linger past the life window, and so
	// how long a full cache refuses writes (bigcache_admit.go).
	bigcacheCleanWindow = time.Second
	// minShardBytes keeps the default shard count from slicing a small
	// cache so thin that one shard cannot hold a handful of entries.
	minShardBytes = 64 << 10
	// updateStripes is the number of locks that make Update atomic per key;
	// 256 keeps unrelated keys from waiting on each other.
	updateStripes = 256
	// expirySize is the only per-entry overhead we add: the entry's own
	// deadline, in unix nanoseconds.
	expirySize = 8
	// maxScratch caps the per-stripe encode buffer kept between calls.
	maxScratch = 4 << 10
)

// BigCacheConfig sizes a BigCache. Zero fields take the defaults.
type BigCacheConfig struct {
	// MaxSizeMB is the entry storage, in MiB (default 256), allocated up
	// front. Every write adds a copy (old copies are reclaimed after
	// LifeWindow); a write that could make bigcache evict a live entry
	// for room is refused with ErrCacheFull instead. The per-key index
	// comes on top of it.
	MaxSizeMB int
	// Shards is the number of independently locked shards, a power of
	// two (default 256, fewer when MaxSizeMB is small).
	Shards int
	// LifeWindow is the longest ttl an entry may have (default 24h),
	// and how long a rewritten or deleted entry's old bytes may stay
	// before bigcache reclaims them: after a flood, a full cache refuses
	// writes for up to this long. Set it to the longest ttl in use.
	LifeWindow time.Duration
}

// BigCache is a Cache held in process memory by allegro/bigcache, whose
// entries live outside the Go heap's pointer graph (no GC scanning cost).
//
// bigcache only knows one global life window, so each value carries its
// own deadline in an 8-byte prefix and Get treats a passed deadline as a
// miss. Update holds a striped lock across read-modify-write, which
// bigcache alone does not offer.
type BigCache struct {
	c          *bigcache.BigCache
	lifeWindow time.Duration
	digest     keyDigest
	stripes    [updateStripes]stripe
	closed     atomic.Bool
	closeOnce  sync.Once
	admit      *admission
	spill      *spill // rewrites admission refused (bigcache_spill.go)
	shardMask  uint64
	// noSpace counts entries bigcache evicted for room: admission makes
	// it impossible, so it stays 0.
	noSpace atomic.Int64
}

type stripe struct {
	mu      sync.Mutex
	scratch []byte   // encode buffer; bigcache copies it, so it is reused
	_       [32]byte // one stripe per cache line
}

// Keys are stored as a 16-byte digest, not as given: the flow's keys are
// namespaces, user IDs and numbers (often 50 to 70 bytes), written with
// every entry and every rewrite, and at a million open challenges their
// bytes were a quarter of the cache. The digest is two 64-bit maphashes
// of the key under two random per-process seeds; the first is also
// bigcache's index hash (digestHash), and bigcache compares the whole
// digest on every read. Anyone who picks keys (a phone number, a user ID)
// would have to make both seeded hashes agree, without seeing either, to
// make one key read or overwrite another: with FNV, bigcache's default,
// one crafted 64-bit collision would do. The digest lives only in this
// process (bigcache is not shared), so nothing else has to agree on it.
type keyDigest struct{ a, b maphash.Seed }

// of returns key's digest.
func (d keyDigest) of(key string) string {
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], maphash.String(d.a, key))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(d.b, key))
	return string(k[:])
}

// digestHash is bigcache's Hasher: the first half of a key's digest,
// which every key bigcache is given is.
type digestHash struct{}

func (digestHash) Sum64(digest string) uint64 { return binary.LittleEndian.Uint64([]byte(digest[:8])) }

// NewBigCache builds an in-memory cache. The caller must Close it.
func NewBigCache(cfg BigCacheConfig) (*BigCache, error) {
	switch {
	case cfg.MaxSizeMB < 0:
		return nil, fmt.Errorf("store: bigcache: max size must be positive, got %d MB", cfg.MaxSizeMB)
	case cfg.Shards < 0 || cfg.Shards&(cfg.Shards-1) != 0:
		return nil, fmt.Errorf("store: bigcache: shards must be a power of two, got %d", cfg.Shards)
	case cfg.LifeWindow < 0 || (cfg.LifeWindow > 0 && cfg.LifeWindow < time.Second):
		// bigcache counts its life window in whole seconds.
		return nil, fmt.Errorf("store: bigcache: life window must be at least 1s, got %s", cfg.LifeWindow)
	}
	if cfg.MaxSizeMB == 0 {
		cfg.MaxSizeMB = DefaultBigCacheMaxSizeMB
	}
	if cfg.LifeWindow == 0 {
		cfg.LifeWindow = DefaultBigCacheLifeWindow
	}
	total := cfg.MaxSizeMB << 20
	if cfg.Shards == 0 {
		cfg.Shards = DefaultBigCacheShards
		for cfg.Shards > 1 && total/cfg.Shards < minShardBytes {
			cfg.Shards /= 2
		}
	} else if total/cfg.Shards < 1<<10 {
		return nil, fmt.Errorf("store: bigcache: %d MB over %d shards leaves under 1 KiB per shard", cfg.MaxSizeMB, cfg.Shards)
	}
	// bigcache truncates the window to whole seconds; check ttls against
	// what it will really keep.
	b := &BigCache{lifeWindow: cfg.LifeWindow.Truncate(time.Second), digest: keyDigest{maphash.MakeSeed(), maphash.MakeSeed()},
		shardMask: uint64(cfg.Shards - 1)}
	// bigcache's own arithmetic for a shard's queue size.
	shardBytes := cfg.MaxSizeMB * 1024 * 1024 / cfg.Shards
	maxEntrySize, beforeLast := bigcacheQueue(shardBytes)
	b.admit = newAdmission(cfg.Shards, shardBytes, beforeLast, b.lifeWindow, bigcacheCleanWindow)
	// An eighth of max_size beside it: room for every hot key many times.
	b.spill = newSpill(cfg.MaxSizeMB << 20 / 8)
	c, err := bigcache.New(context.Background(), bigcache.Config{
		Shards:      cfg.Shards,
		LifeWindow:  cfg.LifeWindow,
		CleanWindow: bigcacheCleanWindow,
		// Only sizes each shard's first queue (10 entries of it; the queue
		// doubles as needed): chosen so that admission knows the size of
		// the queue before its last growth (bigcache_admit.go).
		MaxEntrySize:     maxEntrySize,
		HardMaxCacheSize: cfg.MaxSizeMB,
		Hasher:           digestHash{},
		OnRemoveWithReason: func(_ string, _ []byte, reason bigcache.RemoveReason) {
			if reason == bigcache.NoSpace {
				b.noSpace.Add(1)
			}
		},
		// Verbose would log keys, which hold phone numbers.
		Verbose: false,
	})
	if err != nil {
		return nil, fmt.Errorf("store: bigcache: %w", err)
	}
	b.c = c
	return b, nil
}

// Get returns the entry, or ErrNotFound (unwrapped) when it is missing or
// past its own expiry.
func (b *BigCache) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	key = b.digest.of(key)
	now := time.Now()
	if v, held := b.spill.get(key, now); held {
		return v, nil
	}
	v, ok, _, err := b.get(key, now)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}

// Update runs fn on the current value under the key's stripe lock and
// stores what it returns. fn must not call the same cache: its stripe is
// held. A ttl <= 0 with a non-nil value deletes the entry (no time left);
// a ttl over the life window is refused, since bigcache would drop the
// entry early.
func (b *BigCache) Update(ctx context.Context, key string, fn UpdateFunc) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	key = b.digest.of(key)
	s := b.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	old, spilled := b.spill.get(key, now)
	found, present := spilled, spilled
	if !spilled {
		var err error
		if old, found, present, err = b.get(key, now); err != nil {
			return err
		}
	}
	v, ttl, err := fn(old, found)
	if err != nil {
		return err
	}
	if ttl > b.lifeWindow {
		return fmt.Errorf("store: bigcache: ttl %s exceeds the life window %s", ttl, b.lifeWindow)
	}
	if v == nil || ttl <= 0 {
		if spilled {
			b.spill.remove(key)
			return nil
		}
		if present { // an expired entry goes too: frees its index slot now
			return b.del(key)
		}
		return nil
	}
	if spilled { // once spilled, a key stays in the spill until it expires
		return b.spill.put(key, v, now.Add(ttl), now)
	}
	n := expirySize + len(v)
	if cap(s.scratch) < n {
		s.scratch = make([]byte, n)
	}
	buf := s.scratch[:n]
	binary.LittleEndian.PutUint64(buf, uint64(now.Add(ttl).UnixNano()))
	copy(buf[expirySize:], v)
	err = b.admit.write(digestHash{}.Sum64(key)&b.shardMask, queueBytes(key, n), present, found, func() error { return b.c.Set(key, buf) })
	if cap(s.scratch) > maxScratch {
		s.scratch = nil // one huge value should not stay pinned
	}
	if errors.Is(err, ErrCacheFull) && found {
		// A live entry's rewrite: to the spill, and the bigcache copy
		// goes, so that reads find the spilled one.
		if err := b.spill.put(key, v, now.Add(ttl), now); err != nil {
			return err
		}
		return b.del(key)
	}
	if errors.Is(err, ErrCacheFull) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: bigcache set: %w", ErrUnavailable, err)
	}
	return nil
}

// NoSpaceEvictions is how many entries bigcache has dropped for room
// (reason NoSpace): admission keeps it at 0. Any other count is a bug.
func (b *BigCache) NoSpaceEvictions() int64 { return b.noSpace.Load() }

// Delete removes the entry; a missing one is not an error.
func (b *BigCache) Delete(ctx context.Context, key string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	// Under the stripe lock so a Delete cannot land between an Update's
	// read and write and be silently undone.
	key = b.digest.of(key)
	s := b.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	b.spill.remove(key)
	return b.del(key)
}

// Close stops bigcache's cleaner; later calls fail with ErrUnavailable.
// It is safe to call more than once.
func (b *BigCache) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		err = b.c.Close()
	})
	return err
}

// get returns the live value under a key's digest: ok is false when it is missing
// or expired at now; present is true when bigcache still holds it.
func (b *BigCache) get(key string, now time.Time) (v []byte, ok, present bool, err error) {
	raw, err := b.c.Get(key)
	switch {
	case errors.Is(err, bigcache.ErrEntryNotFound):
		return nil, false, false, nil
	case err != nil:
		return nil, false, false, fmt.Errorf("%w: bigcache get: %w", ErrUnavailable, err)
	case len(raw) < expirySize || now.UnixNano() >= int64(binary.LittleEndian.Uint64(raw)):
		return nil, false, true, nil
	}
	// bigcache returned a fresh copy: handing out a sub-slice is safe.
	return raw[expirySize:], true, true, nil
}

// stripe picks a digest's lock by the hash's high bits: bigcache picks
// shards by the low ones, so the two spread independently.
func (b *BigCache) stripe(digest string) *stripe {
	return &b.stripes[digestHash{}.Sum64(digest)>>56%updateStripes]
}

func (b *BigCache) del(key string) error {
	err := b.c.Delete(key)
	if err != nil && !errors.Is(err, bigcache.ErrEntryNotFound) {
		return fmt.Errorf("%w: bigcache delete: %w", ErrUnavailable, err)
	}
	return nil
}

var errCacheClosed = errors.New("cache closed")

func (b *BigCache) usable(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("%w: bigcache: %w", ErrUnavailable, errCacheClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: bigcache: %w", ErrUnavailable, err)
	}
	return nil
}

var _ Cache = (*BigCache)(nil)
