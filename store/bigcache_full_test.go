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
