package storetest

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
)

// TestCache runs the Cache conformance suite. open returns a ready cache
// and arranges its release with t.Cleanup.
func TestCache(t *testing.T, open func(t *testing.T) store.Cache) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, c store.Cache)
	}{
		{"GetMissing", cacheGetMissing},
		{"UpdateCreate", cacheCreate},
		{"UpdateModify", cacheModify},
		{"UpdateDelete", cacheUpdateDelete},
		{"UpdateError", cacheUpdateError},
		{"EmptyValue", cacheEmptyValue},
		{"NoAliasing", cacheNoAliasing},
		{"NonPositiveTTLDeletes", cacheNonPositiveTTL},
		{"TTL", cacheTTL},
		{"ConcurrentUpdates", cacheConcurrent},
		{"Delete", cacheDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t)
			if c == nil {
				t.Fatal("open returned a nil cache")
			}
			tc.fn(t, c)
		})
	}
}

func key(name string) string { return "storetest:" + rnd() + ":" + name }

func set(t *testing.T, c store.Cache, k, v string, ttl time.Duration) {
	t.Helper()
	err := c.Update(ctxT(t), k, func([]byte, bool) ([]byte, time.Duration, error) {
		return []byte(v), ttl, nil
	})
	if err != nil {
		t.Fatalf("Update(%q): %v", k, err)
	}
}

func wantValue(t *testing.T, c store.Cache, k, want string) {
	t.Helper()
	got, err := c.Get(ctxT(t), k)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %q", k, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", k, got, want)
	}
}

func wantMissing(t *testing.T, c store.Cache, k string) {
	t.Helper()
	got, err := c.Get(ctxT(t), k)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", k, got, err)
	}
}

func cacheGetMissing(t *testing.T, c store.Cache) {
	wantMissing(t, c, key("missing"))
}

func cacheCreate(t *testing.T, c store.Cache) {
	k := key("create")
	called := false
	err := c.Update(ctxT(t), k, func(old []byte, found bool) ([]byte, time.Duration, error) {
		called = true
		if found || old != nil {
			t.Errorf("new key: old = %q, found = %v; want nil, false", old, found)
		}
		return []byte("v1"), time.Minute, nil
	})
	if err != nil || !called {
		t.Fatalf("Update: err = %v, called = %v", err, called)
	}
	wantValue(t, c, k, "v1")
}

func cacheModify(t *testing.T, c store.Cache) {
	k := key("modify")
	set(t, c, k, "v1", time.Minute)
	err := c.Update(ctxT(t), k, func(old []byte, found bool) ([]byte, time.Duration, error) {
		if !found || string(old) != "v1" {
			t.Errorf("old = %q, found = %v; want v1, true", old, found)
		}
		return append(old, "+v2"...), time.Minute, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, c, k, "v1+v2")
}

func cacheUpdateDelete(t *testing.T, c store.Cache) {
	k := key("del")
	set(t, c, k, "v1", time.Minute)
	del := func([]byte, bool) ([]byte, time.Duration, error) { return nil, time.Minute, nil }
	if err := c.Update(ctxT(t), k, del); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, c, k)
	// Deleting a missing entry through Update is fine too.
	if err := c.Update(ctxT(t), k, del); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, c, k)
}

func cacheUpdateError(t *testing.T, c store.Cache) {
	boom := errors.New("boom")
	fail := func([]byte, bool) ([]byte, time.Duration, error) { return []byte("changed"), time.Minute, boom }
	k := key("err")
	set(t, c, k, "v1", time.Minute)
	if err := c.Update(ctxT(t), k, fail); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the fn's error", err)
	}
	wantValue(t, c, k, "v1")
	k2 := key("err-missing")
	if err := c.Update(ctxT(t), k2, fail); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the fn's error", err)
	}
	wantMissing(t, c, k2)
}

func cacheEmptyValue(t *testing.T, c store.Cache) {
	// An empty, non-nil value is a value, not a deletion.
	k := key("empty")
	set(t, c, k, "", time.Minute)
	wantValue(t, c, k, "")
}

func cacheNoAliasing(t *testing.T, c store.Cache) {
	k := key("alias")
	in := []byte("abc")
	err := c.Update(ctxT(t), k, func([]byte, bool) ([]byte, time.Duration, error) { return in, time.Minute, nil })
	if err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	got, err := c.Get(ctxT(t), k)
	if err != nil {
		t.Fatal(err)
	}
	got[1] = 'Y'
	wantValue(t, c, k, "abc")
}

func cacheNonPositiveTTL(t *testing.T, c store.Cache) {
	// A ttl with no time left means the entry is already expired.
	for _, ttl := range []time.Duration{0, -time.Second} {
		k := key("ttl0")
		set(t, c, k, "v1", time.Minute)
		set(t, c, k, "v2", ttl)
		wantMissing(t, c, k)
	}
}

func cacheTTL(t *testing.T, c store.Cache) {
	// 1.1s and a whole-second margin: some backends count in seconds.
	const short = 1100 * time.Millisecond
	expiring, lasting, refreshed := key("expiring"), key("lasting"), key("refreshed")
	set(t, c, expiring, "e", short)
	set(t, c, lasting, "l", time.Minute)
	set(t, c, refreshed, "r1", short)
	set(t, c, refreshed, "r2", time.Minute) // a rewrite sets a new ttl
	wantValue(t, c, expiring, "e")
	time.Sleep(short + time.Second)
	wantMissing(t, c, expiring)
	wantValue(t, c, lasting, "l")
	wantValue(t, c, refreshed, "r2")
	err := c.Update(ctxT(t), expiring, func(old []byte, found bool) ([]byte, time.Duration, error) {
		if found || old != nil {
			t.Errorf("expired entry: old = %q, found = %v; want nil, false", old, found)
		}
		return nil, 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func cacheConcurrent(t *testing.T, c store.Cache) {
	const n = 50
	k := key("counter")
	ctx := ctxT(t)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		seen  = map[int]bool{}
	)
	for range n {
		wg.Go(func() {
			<-start
			err := c.Update(ctx, k, func(old []byte, found bool) ([]byte, time.Duration, error) {
				v := 0
				if found {
					var err error
					if v, err = strconv.Atoi(string(old)); err != nil {
						return nil, 0, err
					}
				}
				mu.Lock()
				dup := seen[v]
				seen[v] = true
				mu.Unlock()
				if dup {
					t.Errorf("two Updates saw the same old value %d", v)
				}
				return []byte(strconv.Itoa(v + 1)), time.Minute, nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	wantValue(t, c, k, strconv.Itoa(n))
}

func cacheDelete(t *testing.T, c store.Cache) {
	k := key("delete")
	if err := c.Delete(ctxT(t), k); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	set(t, c, k, "v", time.Minute)
	if err := c.Delete(ctxT(t), k); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, c, k)
	if err := c.Delete(ctxT(t), k); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}
}
