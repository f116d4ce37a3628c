package flow

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// ttlCache records the lifetime each Update gives a key.
type ttlCache struct {
	Cache
	mu   sync.Mutex
	ttls map[string]time.Duration
}

func (c *ttlCache) Update(ctx context.Context, key string, fn store.UpdateFunc) error {
	return c.Cache.Update(ctx, key, func(old []byte, found bool) ([]byte, time.Duration, error) {
		v, ttl, err := fn(old, found)
		if err == nil {
			c.mu.Lock()
			c.ttls[key] = ttl
			c.mu.Unlock()
		}
		return v, ttl, err
	})
}

// A login ID names the user of the latest update that noted it, for as
// long as a challenge lives; the key holds no part of the login ID.
func TestLoginIDIndex(t *testing.T) {
	h := newHarness(t)
	tc := &ttlCache{Cache: h.bc, ttls: map[string]time.Duration{}}
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: tc, Sender: h.sender, Numbers: h.svc.numbers, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const login = "ann@example.com"
	if err := svc.NoteLoginID(ctx, login, "u1"); err != nil {
		t.Fatal(err)
	}
	if got, err := svc.LoginUser(ctx, login, "192.0.2.1"); err != nil || got != "u1" {
		t.Fatalf("LoginUser = %q, %v", got, err)
	}
	key := loginIDKey(login)
	if ttl := tc.ttls[key]; ttl != svc.entryTTL() {
		t.Fatalf("entry lives %v, a challenge %v", ttl, svc.entryTTL())
	}
	if strings.Contains(key, "ann") || strings.ContainsAny(key[3:], "{}:") || len(key) != 3+32 {
		t.Fatalf("key %q", key)
	}
	// The latest update wins the login ID.
	if err := svc.NoteLoginID(ctx, login, "u2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.LoginUser(ctx, login, ""); got != "u2" {
		t.Fatalf("LoginUser = %q after another update", got)
	}
}

// A login ID no update named is ErrNoPending, and costs the caller a unit
// of verify_per_ip as a token-less verify that finds nothing does; once
// that budget is spent, the answer is rate_limited.
func TestLoginIDUnknownCostsTheCaller(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.VerifyPerIP = Limit{Count: 2, Window: time.Hour} })
	for range 2 {
		if _, err := h.svc.LoginUser(h.ctx, "nobody@example.com", "198.51.100.9"); err != ErrNoPending {
			t.Fatalf("err = %v, want ErrNoPending", err)
		}
	}
	_, err := h.svc.LoginUser(h.ctx, "nobody@example.com", "198.51.100.9")
	wantErr(t, err, ErrRateLimited)
	// A known login ID is still found for another client.
	if err := h.svc.NoteLoginID(h.ctx, "ann@example.com", "u1"); err != nil {
		t.Fatal(err)
	}
	if got, err := h.svc.LoginUser(h.ctx, "ann@example.com", "198.51.100.10"); err != nil || got != "u1" {
		t.Fatalf("LoginUser = %q, %v", got, err)
	}
}

// A cache failure is ErrUnavailable, never a silent miss.
func TestLoginIDCacheDown(t *testing.T) {
	h := newHarness(t)
	h.cache.fail.Store(true)
	wantErr(t, h.svc.NoteLoginID(h.ctx, "ann@example.com", "u1"), ErrUnavailable)
	_, err := h.svc.LoginUser(h.ctx, "ann@example.com", "")
	wantErr(t, err, ErrUnavailable)
}

// On a Redis Cluster (keys hash-tagged), the index works from two
// services sharing it, login IDs with { } and : included; the update then
// verify by login ID runs end to end.
func TestLoginIDOnRedisCluster(t *testing.T) {
	addrs := storetest.StartRedisCluster(t, 3)
	rc, err := store.NewRedisCache(context.Background(), store.RedisConfig{Cluster: addrs, KeyPrefix: "loginid-test:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	h := newHarness(t)
	h.cache = &spyCache{Cache: rc}
	if h.svc, err = New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender, Numbers: h.svc.numbers, Clock: h.clock}); err != nil {
		t.Fatal(err)
	}
	other := h.sibling()
	for i, login := range []string{"ann@example.com", "a{b}c:d", "urn:x:{y}"} {
		user := "user-" + string(rune('a'+i))
		if err := h.svc.NoteLoginID(h.ctx, login, user); err != nil {
			t.Fatal(err)
		}
		h.mustUpdate(user, frNumber(i), StatusUpdated)
		got, err := other.LoginUser(h.ctx, login, "")
		if err != nil || got != user {
			t.Fatalf("%s: LoginUser = %q, %v", login, got, err)
		}
		if _, err := other.Verify(h.ctx, VerifyRequest{UserID: got, Code: h.sender.LastCode(t), Tokenless: true}); err != nil {
			t.Fatalf("%s: verify: %v", login, err)
		}
		h.wantUser(user, frNumber(i), true)
	}
}
