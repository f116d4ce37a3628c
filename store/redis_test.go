package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// The tests that need a server read it from PHONE_TEST_REDIS_URL, e.g.
//
//	PHONE_TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test -race ./store/ -run Redis
//
// Each test writes under a random key prefix and deletes it afterwards.

func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PHONE_TEST_REDIS_URL")
	if u == "" {
		t.Skip("PHONE_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0): skipping the tests that need a Redis server")
	}
	return u
}

// redisRaw is a plain client on the test server, closed at cleanup.
func redisRaw(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	return rc
}

// redisPrefix returns a key prefix unique to this test and deletes every
// key under it when the test ends.
func redisPrefix(t testing.TB, url string) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "phonetest:" + hex.EncodeToString(b) + ":"
	rc := redisRaw(t, url)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup: SCAN %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := rc.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleanup: DEL: %v", err)
			}
		}
	})
	return prefix
}

func newRedisCache(t testing.TB, cfg store.RedisConfig) *store.RedisCache {
	t.Helper()
	c, err := store.NewRedisCache(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewRedisCache: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisCache(t *testing.T) {
	url := redisURL(t)
	storetest.TestCache(t, func(t *testing.T) store.Cache {
		return newRedisCache(t, store.RedisConfig{URL: url, KeyPrefix: redisPrefix(t, url)})
	})
}

// TestRedisTwoInstances plays two Caddy instances sharing one Redis.
func TestRedisTwoInstances(t *testing.T) {
	url := redisURL(t)
	prefix := redisPrefix(t, url)
	a := newRedisCache(t, store.RedisConfig{URL: url, KeyPrefix: prefix})
	b := newRedisCache(t, store.RedisConfig{URL: url, KeyPrefix: prefix})
	testRedisTwoInstances(t, a, b)
}

// testRedisTwoInstances plays two Caddy instances, a and b, sharing one
// Redis (a server, a Cluster or a Sentinel master).
func testRedisTwoInstances(t *testing.T, a, b *store.RedisCache) {
	ctx := t.Context()

	t.Run("ReadOther", func(t *testing.T) {
		if err := a.Update(ctx, "shared", func([]byte, bool) ([]byte, time.Duration, error) {
			return []byte("from-a"), time.Minute, nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := b.Get(ctx, "shared")
		if err != nil || string(got) != "from-a" {
			t.Fatalf("b.Get = %q, %v; want from-a", got, err)
		}
		if err := b.Delete(ctx, "shared"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Get(ctx, "shared"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a.Get after b.Delete: %v, want ErrNotFound", err)
		}
	})

	t.Run("SharedCounter", func(t *testing.T) {
		const n = 50
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			calls atomic.Int64
		)
		for i := range n {
			c := a
			if i%2 == 1 {
				c = b
			}
			wg.Go(func() {
				<-start
				err := c.Update(ctx, "counter", func(old []byte, found bool) ([]byte, time.Duration, error) {
					calls.Add(1)
					v := 0
					if found {
						var err error
						if v, err = strconv.Atoi(string(old)); err != nil {
							return nil, 0, err
						}
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
		for _, c := range []*store.RedisCache{a, b} {
			got, err := c.Get(ctx, "counter")
			if err != nil || string(got) != strconv.Itoa(n) {
				t.Fatalf("counter = %q, %v; want %d", got, err, n)
			}
		}
		t.Logf("%d Updates across two instances ran fn %d times", n, calls.Load())
	})
}

func TestRedisTTL(t *testing.T) {
	url := redisURL(t)
	prefix := redisPrefix(t, url)
	c := newRedisCache(t, store.RedisConfig{URL: url, KeyPrefix: prefix})
	rc := redisRaw(t, url)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		min  time.Duration // PTTL must be in (min, ttl rounded up]
		max  time.Duration
	}{
		{"Seconds", time.Minute, 50 * time.Second, time.Minute},
		{"Milliseconds", 1500 * time.Millisecond, time.Second, 1500 * time.Millisecond},
		{"RoundsUp", 2*time.Second + 100*time.Microsecond, time.Second, 2*time.Second + time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Update(ctx, tc.name, func([]byte, bool) ([]byte, time.Duration, error) {
				return []byte("v"), tc.ttl, nil
			}); err != nil {
				t.Fatal(err)
			}
			pttl, err := rc.PTTL(ctx, prefix+tc.name).Result()
			if err != nil {
				t.Fatal(err)
			}
			if pttl <= tc.min || pttl > tc.max {
				t.Fatalf("PTTL = %s, want in (%s, %s]", pttl, tc.min, tc.max)
			}
		})
	}
	// A sub-millisecond ttl is still a ttl: stored for 1ms, not refused.
	if err := c.Update(ctx, "tiny", func([]byte, bool) ([]byte, time.Duration, error) {
		return []byte("v"), time.Microsecond, nil
	}); err != nil {
		t.Fatalf("Update with a 1µs ttl: %v", err)
	}
}

func TestRedisKeyPrefix(t *testing.T) {
	url := redisURL(t)
	rc := redisRaw(t, url)
	ctx := t.Context()
	b := make([]byte, 8)
	rand.Read(b)
	key := "test-" + hex.EncodeToString(b)
	t.Cleanup(func() { rc.Del(context.Background(), store.DefaultRedisKeyPrefix+key) })

	c := newRedisCache(t, store.RedisConfig{URL: url}) // default prefix
	if err := c.Update(ctx, key, func([]byte, bool) ([]byte, time.Duration, error) {
		return []byte("v"), time.Minute, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := rc.Get(ctx, store.DefaultRedisKeyPrefix+key).Result(); err != nil || got != "v" {
		t.Fatalf("GET %s%s = %q, %v; want v", store.DefaultRedisKeyPrefix, key, got, err)
	}
	other := newRedisCache(t, store.RedisConfig{URL: url, KeyPrefix: redisPrefix(t, url)})
	if _, err := other.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another prefix sees the key: %v", err)
	}
}

// TestRedisUpdateGivesUp has another client write the key while every fn
// runs, so that every transaction fails: Update must stop after 50 tries.
func TestRedisUpdateGivesUp(t *testing.T) {
	url := redisURL(t)
	prefix := redisPrefix(t, url)
	c := newRedisCache(t, store.RedisConfig{URL: url, KeyPrefix: prefix})
	rc := redisRaw(t, url)
	ctx := t.Context()
	calls := 0
	start := time.Now()
	err := c.Update(ctx, "hot", func(old []byte, found bool) ([]byte, time.Duration, error) {
		calls++
		// Another process writes between this Update's WATCH and EXEC.
		if err := rc.Set(ctx, prefix+"hot", calls, time.Minute).Err(); err != nil {
			t.Errorf("SET: %v", err)
		}
		return []byte("mine"), time.Minute, nil
	})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, redis.TxFailedErr) {
		t.Fatalf("Update under constant contention = %v, want ErrUnavailable wrapping TxFailedErr", err)
	}
	if calls != 50 {
		t.Fatalf("fn ran %d times, want 50", calls)
	}
	if got, err := c.Get(ctx, "hot"); err != nil || string(got) != "50" {
		t.Fatalf("Get = %q, %v; want the other writer's 50", got, err)
	}
	t.Logf("gave up after %d tries in %s: %v", calls, time.Since(start).Round(time.Millisecond), err)
}

func TestRedisCancelled(t *testing.T) {
	url := redisURL(t)
	c := newRedisCache(t, store.RedisConfig{URL: url, KeyPrefix: redisPrefix(t, url)})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := c.Update(ctx, "k", func([]byte, bool) ([]byte, time.Duration, error) {
		called = true
		return []byte("v"), time.Minute, nil
	})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) || called {
		t.Fatalf("Update(cancelled) = %v, called = %v; want ErrUnavailable wrapping context.Canceled, fn not run", err, called)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get(cancelled) = %v, want ErrUnavailable", err)
	}
	if err := c.Delete(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Delete(cancelled) = %v, want ErrUnavailable", err)
	}
}

func TestRedisClose(t *testing.T) {
	url := redisURL(t)
	c, err := store.NewRedisCache(t.Context(), store.RedisConfig{URL: url, KeyPrefix: redisPrefix(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get after Close = %v, want ErrUnavailable", err)
	}
	err = c.Update(t.Context(), "k", func([]byte, bool) ([]byte, time.Duration, error) { return []byte("v"), time.Minute, nil })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Update after Close = %v, want ErrUnavailable", err)
	}
}

// TestRedisStalled freezes the connection to a live server: every call
// must fail with ErrUnavailable within about the Timeout.
func TestRedisStalled(t *testing.T) {
	url := redisURL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := newStallProxy(t, opt.Addr)
	const timeout = 300 * time.Millisecond
	c := newRedisCache(t, store.RedisConfig{
		URL:       strings.Replace(url, opt.Addr, p.addr(), 1),
		KeyPrefix: redisPrefix(t, url),
		Timeout:   timeout,
	})
	ctx := t.Context()
	set := func([]byte, bool) ([]byte, time.Duration, error) { return []byte("v"), time.Minute, nil }
	if err := c.Update(ctx, "k", set); err != nil {
		t.Fatalf("Update before the stall: %v", err)
	}
	p.stall.Store(true)
	for name, call := range map[string]func() error{
		"Get":    func() error { _, err := c.Get(ctx, "k"); return err },
		"Update": func() error { return c.Update(ctx, "k", set) },
		"Delete": func() error { return c.Delete(ctx, "k") },
	} {
		start := time.Now()
		err := call()
		took := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on a stalled server = %v, want ErrUnavailable", name, err)
		}
		if took > 2*timeout {
			t.Errorf("%s took %s, want about the %s timeout", name, took, timeout)
		}
		t.Logf("%s failed in %s: %v", name, took.Round(time.Millisecond), err)
	}
}

// stallProxy forwards TCP to a server until stall is set, then holds
// every byte.
type stallProxy struct {
	ln    net.Listener
	stall atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			wg.Go(func() { p.pump(out, in) })
			wg.Go(func() { p.pump(in, out) })
		}
	})
	return p
}

func (p *stallProxy) addr() string { return p.ln.Addr().String() }

func (p *stallProxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.stall.Load() {
			continue // swallowed: the peers hear nothing until cleanup
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// The tests below need no server.

func TestRedisUnreachable(t *testing.T) {
	const timeout = 500 * time.Millisecond
	start := time.Now()
	c, err := store.NewRedisCache(t.Context(), store.RedisConfig{URL: "redis://127.0.0.1:1", Timeout: timeout})
	took := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("NewRedisCache on a closed port succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if took > timeout+500*time.Millisecond {
		t.Fatalf("took %s, want about the %s timeout at most", took, timeout)
	}
	t.Logf("failed in %s: %v", took.Round(time.Millisecond), err)
}

func TestRedisConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  store.RedisConfig
		want string
	}{
		{store.RedisConfig{}, "url is required"},
		{store.RedisConfig{URL: "redis://127.0.0.1:6379", Timeout: -time.Second}, "timeout"},
		{store.RedisConfig{URL: "http://127.0.0.1:6379"}, "scheme"},
		{store.RedisConfig{URL: "redis://u:s3cret@127.0.0.1:x/0"}, "port"},
		{store.RedisConfig{URL: "redis://127.0.0.1:6379/notadb"}, "url"},
	} {
		c, err := store.NewRedisCache(t.Context(), tc.cfg)
		if err == nil {
			c.Close()
			t.Errorf("NewRedisCache(%+v) accepted", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRedisCache(%+v) = %v, want it to mention %q", tc.cfg, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewRedisCache error leaks the password: %v", err)
		}
		if errors.Is(err, store.ErrUnavailable) {
			t.Errorf("config error %v wraps ErrUnavailable", err)
		}
	}
}

// BenchmarkRedisUpdate measures one read-modify-write: WATCH, GET, MULTI,
// SET, EXEC over loopback.
func BenchmarkRedisUpdate(b *testing.B) {
	url := redisURL(b)
	c := newRedisCache(b, store.RedisConfig{URL: url, KeyPrefix: redisPrefix(b, url)})
	ctx := context.Background()
	incr := func(old []byte, found bool) ([]byte, time.Duration, error) {
		n, _ := strconv.Atoi(string(old))
		return strconv.AppendInt(nil, int64(n+1), 10), time.Minute, nil
	}
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Update(ctx, "serial", incr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParallelDistinctKeys", func(b *testing.B) {
		b.ReportAllocs()
		var id atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			k := "par-" + strconv.FormatInt(id.Add(1), 10)
			for pb.Next() {
				if err := c.Update(ctx, k, incr); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("ParallelOneKey", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.Update(ctx, "one", incr); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
