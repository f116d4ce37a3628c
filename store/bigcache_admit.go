package store

import (
	"fmt"
	"sync"
	"time"
)

// ErrCacheFull is a write a BigCache refuses because storing it could
// make bigcache evict a live entry for room. It is an ErrUnavailable: the
// write changed nothing, and it fits again once older writes age out.
var ErrCacheFull = fmt.Errorf("%w: cache full", ErrUnavailable)

// How a BigCache keeps bigcache from ever evicting for room.
//
// A bigcache shard stores entries in one ring buffer (a BytesQueue) that
// frees bytes only from its head: its cleaner pops entries whose write
// is older than the life window, once per clean window; when a push does
// not fit, it pops the oldest entry, live or not (reason NoSpace). A
// rewritten or deleted entry keeps its bytes until the head passes them.
// So every byte written to a shard is freed at most
//
//	LifeWindow + 1s (whole seconds) + 1s (two writers' clocks) + CleanWindow
//
// after the write, as long as the queue stays in write order. It does,
// but for one thing: when a full queue grows (doubling, up to the
// shard's size) while wrapped, its newer entries move ahead of its older
// ones, and the older ones then wait for the newer to expire. So the
// bytes present when the queue grows to full size (at most its previous
// size) may stay one window more.
//
// admission therefore counts, per shard, the queue bytes written in the
// last window (that bound plus slack), in coarse time buckets, and
// refuses a write that would take the count over the shard's budget:
//
//	shard size − size before the last growth − 2 × largest entry − 64
//
// A full-size ring fails a push only when neither the space after its
// tail nor that before its head fits it, which needs more than shard
// size − 2 × largest entry − 18 bytes occupied; the occupied bytes are at
// most those written in the window plus those present at the last
// growth. The queue's sizes are chosen (bigcacheQueue) so that the size
// before the last growth is about half the shard. Writes of keys not
// already present get 7/8 of the budget, so a flood of new keys leaves
// the owners of live entries room to update them.
type admission struct {
	window, bucket time.Duration
	budget         int // queue bytes a shard may take in a window
	newBudget      int // of which new keys may take
	// rewriteBudget is what rewrites of live entries may take before they
	// go to the spill (bigcache_spill.go): a hot key cannot starve the
	// new keys of its shard.
	rewriteBudget int
	maxEntry      int // largest queue bytes of one entry
	shards        []shardAdmission
}

// admitBuckets is the ring size.
const admitBuckets = 32

// admitSlack covers a late cleaner tick beyond the bound above.
const admitSlack = 3 * time.Second

type shardAdmission struct {
	mu    sync.Mutex
	start [admitBuckets]int64 // bucket number (unix time / bucket) of each slot
	bytes [admitBuckets]int
	_     [40]byte
}

// maxEntryBytes caps an entry's queue bytes (ours are under 1 KiB); under
// 2560, the least first queue, so that no entry makes a queue grow by more
// than doubling.
const maxEntryBytes = 2 << 10

// bigcacheQueue picks bigcache's MaxEntrySize for a shard of shardBytes
// (MaxEntriesInWindow 0: a queue starts at 10 entries of it, then
// doubles up to the shard's size) and returns the queue's size before
// its last growth (0 when it starts at full size). The first queue is a
// power-of-two fraction of the shard, at least 4 KiB, so that the queue
// takes the shard's size in whole doublings: the size before the last
// growth is then half the shard (admission's budget is the other half),
// and at any fill a queue holds at least half of what it allocated. (A
// start at 2,560 bytes, 10 × 256, left a queue of 1 MiB shards 5/8 full
// before its last growth, so admission had 3/8 of it, and at 100,000
// open challenges the queues were 1/3 empty: 140 bytes of heap each.)
func bigcacheQueue(shardBytes int) (maxEntrySize, beforeLast int) {
	parts := 1 // the first queue is about shardBytes/parts
	for shardBytes/(parts*2) >= 4<<10 {
		parts *= 2
	}
	maxEntrySize = (shardBytes + 10*parts - 1) / (10 * parts)
	return maxEntrySize, queueBeforeLast(shardBytes, maxEntrySize)
}

// queueBeforeLast replays bigcache's growth of a shard's queue.
func queueBeforeLast(shardBytes, maxEntrySize int) (beforeLast int) {
	for size := min(10*maxEntrySize, shardBytes); size < shardBytes; size = min(2*size, shardBytes) {
		beforeLast = size
	}
	return beforeLast
}

func newAdmission(shards, shardBytes, beforeLast int, lifeWindow, cleanWindow time.Duration) *admission {
	window := lifeWindow + cleanWindow + 2*time.Second + admitSlack
	// At most 28 buckets per window, so that a slot is reused only
	// after its bucket has left the sum (which may look 3 further back).
	bucket := (window + 27) / 28
	a := &admission{window: window, bucket: bucket, maxEntry: min(shardBytes/16, maxEntryBytes), shards: make([]shardAdmission, shards)}
	a.budget = max(shardBytes-beforeLast-2*a.maxEntry-64, 0)
	a.newBudget = a.budget - a.budget/8
	a.rewriteBudget = a.budget / 2
	return a
}

// queueBytes is what bigcache's queue takes for an entry: its 18-byte
// header (timestamp, hash, key length), the key, the value, and the
// queue's uvarint length prefix (bigcache's getNeededSize).
func queueBytes(key string, valueLen int) int {
	n := 18 + len(key) + valueLen
	switch {
	case n < 127:
		return n + 1
	case n < 16382:
		return n + 2
	case n < 2097149:
		return n + 3
	default:
		return n + 5
	}
}

// write runs set if shard has room for an entry of n queue bytes, and
// counts it when set succeeds. The shard's lock is held across set, so
// two writers cannot both take the last room; the write is counted at
// the time set returns, which is no earlier than bigcache's own stamp.
func (a *admission) write(shard uint64, n int, present, live bool, set func() error) error {
	if n > a.maxEntry {
		return fmt.Errorf("%w: an entry of %d bytes is over the %d a shard takes (raise max_size)", ErrCacheFull, n, a.maxEntry)
	}
	s := &a.shards[shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := a.newBudget
	switch {
	case live:
		limit = a.rewriteBudget
	case present:
		limit = a.budget
	}
	if s.used(a, time.Now())+n > limit {
		return ErrCacheFull
	}
	if err := set(); err != nil {
		return err
	}
	b := time.Now().UnixNano() / int64(a.bucket)
	i := b % admitBuckets
	if s.start[i] != b {
		s.start[i], s.bytes[i] = b, 0
	}
	s.bytes[i] += n
	return nil
}

// used sums the buckets that may still hold unfreed bytes at now: a
// bucket's bytes are all freed a window after the bucket ends.
func (s *shardAdmission) used(a *admission, now time.Time) int {
	oldest := (now.Add(-a.window).UnixNano())/int64(a.bucket) - 1
	sum := 0
	for i := range s.bytes {
		if s.start[i] >= oldest {
			sum += s.bytes[i]
		}
	}
	return sum
}
