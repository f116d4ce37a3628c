package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// spill holds the rewrites of live entries that a shard's admission
// budget refused. A key rewritten by every request — the `global`
// counter, `per_ip` behind one NAT, a challenge guessed at — writes its
// whole entry to one bigcache shard each time, and bigcache frees those
// bytes only a life window later: at the default max_size one such key
// exhausted its shard within about ten thousand writes an hour, after
// which every write to that shard (every update, for `global`) was
// refused until the window passed. A rewrite that does not fit now goes
// here instead, a plain map whose entries are replaced in place, bounded
// by bytes; the entry's bigcache copy is deleted so reads find this one.
// Only rewrites spill: a flood of new keys is still refused by admission
// (bigcache_admit.go), so it cannot fill the spill and crowd out the
// owners of live entries. The spill never evicts a live entry either:
// full, it sweeps what has expired and, still full, refuses.
type spill struct {
	// held counts the entries, so that every cache read and write of a
	// process that never spilled skips the lock: this is the hot path.
	held    atomic.Int64
	mu      sync.RWMutex
	max     int // bytes
	used    int
	entries map[string]spillEntry // by key digest
}

type spillEntry struct {
	v   []byte
	exp int64 // unix nanoseconds
}

// spillOverhead is what a map entry costs beside its key and value bytes.
const spillOverhead = 64

func newSpill(maxBytes int) *spill {
	return &spill{max: maxBytes, entries: map[string]spillEntry{}}
}

func spillSize(key string, v []byte) int { return len(key) + len(v) + spillOverhead }

// get returns the live value under key; held tells whether the spill has
// it live (a spilled key's bigcache copy is gone). An expired entry is
// left for put, remove or a sweep to drop: reads share the lock.
func (s *spill) get(key string, now time.Time) (v []byte, held bool) {
	if s.held.Load() == 0 {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[key]
	if !ok || now.UnixNano() >= e.exp {
		return nil, false
	}
	return append([]byte(nil), e.v...), true
}

// put stores v under key until exp, or refuses with ErrCacheFull.
func (s *spill) put(key string, v []byte, exp time.Time, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.entries[key]
	n := spillSize(key, v)
	grow := n
	if had {
		grow -= spillSize(key, old.v)
	}
	if s.used+grow > s.max {
		s.sweepLocked(now)
		if s.used+grow > s.max {
			return ErrCacheFull
		}
	}
	s.entries[key] = spillEntry{v: append(old.v[:0:0], v...), exp: exp.UnixNano()}
	s.used += grow
	if !had {
		s.held.Add(1)
	}
	return nil
}

// remove drops key; a missing key is no error.
func (s *spill) remove(key string) {
	if s.held.Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		s.removeLocked(key, e)
	}
}

func (s *spill) removeLocked(key string, e spillEntry) {
	delete(s.entries, key)
	s.used -= spillSize(key, e.v)
	s.held.Add(-1)
}

func (s *spill) sweepLocked(now time.Time) {
	t := now.UnixNano()
	for k, e := range s.entries {
		if t >= e.exp {
			s.removeLocked(k, e)
		}
	}
}
