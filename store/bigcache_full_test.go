package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// flood writes n distinct other users' entries (challenge-sized, ttl) and
// returns how many were refused; any refusal must be ErrCacheFull.
func flood(t *testing.T, c store.Cache, prefix string, n int, ttl time.Duration) (refused int) {
	t.Helper()
	value := make([]byte, 120)
	for i := range n {
		err := put(c, fmt.Sprintf("%s:%08x-0000-4000-8000-%012x", prefix, i, i), value, ttl)
		switch {
		case err == nil:
		case errors.Is(err, store.ErrCacheFull) && errors.Is(err, store.ErrUnavailable):
			refused++
		default:
			t.Errorf("flood write %d: %v, want nil or ErrCacheFull", i, err)
			return refused
		}
	}
	return refused
}

func wantEntry(t *testing.T, c store.Cache, key, want string) {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q (a live entry was forgotten)", key, v, err, want)
	}
}

func noNoSpace(t *testing.T, c *store.BigCache) {
	t.Helper()
	if n := c.NoSpaceEvictions(); n != 0 {
		t.Fatalf("bigcache evicted %d entries for room (reason NoSpace)", n)
	}
}

// TestBigCacheFullNeverEvictsLive is SPEC §9: a spent per_number counter
// and an open challenge with its attempt count survive a flood of other
// users' writes several times the cache, and bigcache never evicts an
// entry for room; the writes that do not fit are refused with
// ErrCacheFull; once the window has passed, writes succeed again.
func TestBigCacheFullNeverEvictsLive(t *testing.T) {
	c := newBigCache(t, store.BigCacheConfig{MaxSizeMB: 1, LifeWindow: 2 * time.Second})
	const (
		counter   = "ln:+33612345678"
		challenge = "ch:victim-0000-4000-8000-000000000000"
		attempts  = "lf:victim-0000-4000-8000-000000000000"
	)
	if err := put(c, counter, []byte("1"), 2*time.Second); err != nil { // spent
		t.Fatal(err)
	}
	if err := put(c, challenge, make([]byte, 120), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := put(c, attempts, []byte("2"), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// ~20,000 × ~185 B is over three times 1 MB.
	refused := flood(t, c, "flood", 20_000, 2*time.Second)
	if refused == 0 {
		t.Fatal("a flood three times the cache was all accepted")
	}
	t.Logf("flood: %d of 20000 writes refused with ErrCacheFull", refused)
	wantEntry(t, c, counter, "1")
	wantEntry(t, c, challenge, string(make([]byte, 120)))
	wantEntry(t, c, attempts, "2")
	// The owner of a live entry still has room to rewrite it: a wrong
	// code still counts.
	if err := put(c, attempts, []byte("3"), 2*time.Second); err != nil {
		t.Fatalf("rewriting a live entry of a flooded cache: %v", err)
	}
	wantEntry(t, c, attempts, "3")
	noNoSpace(t, c)

	// Once the written bytes have aged out (life window + clean window +
	// slack), new work fits again.
	time.Sleep(9 * time.Second)
	if refused := flood(t, c, "later", 1_000, 2*time.Second); refused != 0 {
		t.Fatalf("after the window, %d of 1000 writes were refused", refused)
	}
	noNoSpace(t, c)
}

// TestBigCacheFullNoSpaceNever keeps a small cache flooded for several
// life windows from many goroutines while owners rewrite their entries:
// bigcache never evicts for room, and no live entry is lost (run with
// -race).
func TestBigCacheFullNoSpaceNever(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	c := newBigCache(t, store.BigCacheConfig{MaxSizeMB: 1, LifeWindow: time.Second})
	const owners = 20
	deadline := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				flood(t, c, fmt.Sprintf("g%d-%d", g, i), 2_000, time.Second)
			}
		})
	}
	for i := range owners {
		wg.Go(func() {
			key := fmt.Sprintf("owner:%d", i)
			for j := 0; time.Now().Before(deadline); j++ {
				err := put(c, key, []byte(fmt.Sprint(j)), time.Second)
				if errors.Is(err, store.ErrCacheFull) {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Errorf("owner %d: %v", i, err)
					return
				}
				wantEntry(t, c, key, fmt.Sprint(j))
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	noNoSpace(t, c)
}

// A key rewritten by every request (the `global` counter, `per_ip`
// behind one NAT) used to exhaust its shard's admission budget, and then
// every write to that shard was refused for a whole life window. Its
// rewrites now go to the spill: thousands of them at the smallest cache
// all succeed, reads see the latest, its neighbours in the shard keep
// being written, the entry still expires and Delete still removes it.
func TestBigCacheHotKeyRewrites(t *testing.T) {
	c := newBigCache(t, store.BigCacheConfig{MaxSizeMB: 1, Shards: 2, LifeWindow: time.Hour})
	ctx := context.Background()
	for i := range 20_000 {
		if err := c.Update(ctx, "global", func([]byte, bool) ([]byte, time.Duration, error) {
			return []byte(fmt.Sprintf("count %06d and some bytes like a counter's", i)), time.Hour, nil
		}); err != nil {
			t.Fatalf("rewrite %d of a hot key: %v", i, err)
		}
	}
	wantEntry(t, c, "global", "count 019999 and some bytes like a counter's")
	for i := range 50 { // its shard still takes other users' entries
		if err := put(c, fmt.Sprintf("neighbour-%d", i), []byte("v"), time.Hour); err != nil {
			t.Fatalf("a new entry after the hot key's rewrites: %v", err)
		}
	}
	if err := put(c, "global", []byte("short"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if _, err := c.Get(ctx, "global"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a spilled entry outlived its ttl: %v", err)
	}
	if err := put(c, "global", []byte("again"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "global"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "global"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete left a spilled entry: %v", err)
	}
	noNoSpace(t, c)
}

// The spill is bounded and never evicts: many hot keys at once fill it,
// and then their rewrites are refused with ErrCacheFull, every entry
// kept as last written.
func TestBigCacheSpillFullRefuses(t *testing.T) {
	c := newBigCache(t, store.BigCacheConfig{MaxSizeMB: 1, Shards: 2, LifeWindow: time.Hour})
	value := make([]byte, 200)
	last := map[string]int{}
	refused := 0
	for round := range 60 {
		for k := range 1500 {
			key := fmt.Sprintf("hot-%d", k)
			copy(value, fmt.Sprintf("%06d", round))
			err := put(c, key, value, time.Hour)
			switch {
			case err == nil:
				last[key] = round
			case errors.Is(err, store.ErrCacheFull):
				refused++
			default:
				t.Fatalf("%s: %v", key, err)
			}
		}
	}
	if refused == 0 {
		t.Fatal("a full spill took every rewrite: it is unbounded")
	}
	for key, round := range last {
		v, err := c.Get(context.Background(), key)
		if err != nil || string(v[:6]) != fmt.Sprintf("%06d", round) {
			t.Fatalf("%s = %q, %v; want round %d (a live entry was lost)", key, v, err, round)
		}
	}
	noNoSpace(t, c)
}
