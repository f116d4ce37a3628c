package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// The tests below start their own Redis servers (storetest.StartRedis…):
// a 3-master Cluster and a Sentinel on loopback ports. They fail without
// redis-server when CI is set, and are skipped otherwise.

func TestRedisCluster(t *testing.T) {
	addrs := storetest.StartRedisCluster(t, 3)
	open := func(t *testing.T) *store.RedisCache {
		// One seed is enough: the client learns the other masters.
		return newRedisCache(t, store.RedisConfig{Cluster: addrs[:1], KeyPrefix: "phone:"})
	}
	t.Run("Cache", func(t *testing.T) {
		storetest.TestCache(t, func(t *testing.T) store.Cache { return open(t) })
	})
	t.Run("TwoInstances", func(t *testing.T) { testRedisTwoInstances(t, open(t), open(t)) })

	// The keys of one user share a slot (so a MULTI over them is
	// possible); other users spread over the masters.
	t.Run("OneUserOneSlot", func(t *testing.T) {
		c := open(t)
		ctx := t.Context()
		raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { raw.Close() })
		slots := map[int64]bool{}
		for _, user := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "odd:id{x}y", "2001:db8::1"} {
			var keys []string
			var userSlot int64 = -1
			for _, kind := range []string{"c:", "lu:", "vf:"} {
				k := "0123456789ab:" + kind + user
				if err := c.Update(ctx, k, func([]byte, bool) ([]byte, time.Duration, error) {
					return []byte(user), time.Minute, nil
				}); err != nil {
					t.Fatal(err)
				}
				// The user's earlier keys are gone (deleted below), so this
				// is the only key of its kind.
				found := storedKeys(ctx, t, raw, "phone:0123456789ab:"+kind)
				if len(found) != 1 {
					t.Fatalf("stored keys for %s%s: %q", kind, user, found)
				}
				slot, err := raw.ClusterKeySlot(ctx, found[0]).Result()
				if err != nil {
					t.Fatal(err)
				}
				if userSlot >= 0 && slot != userSlot {
					t.Fatalf("%s: key %q is in slot %d, the user's other keys in %d", user, found[0], slot, userSlot)
				}
				userSlot = slot
				keys = append(keys, found[0])
			}
			slots[userSlot] = true
			// A transaction over all of the user's keys runs on a Cluster.
			err := raw.Watch(ctx, func(tx *redis.Tx) error {
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						p.Del(ctx, k)
					}
					return nil
				})
				return err
			}, keys...)
			if err != nil {
				t.Fatalf("%s: MULTI over %q: %v", user, keys, err)
			}
		}
		if len(slots) < 4 {
			t.Fatalf("8 users in %d slots, want them spread", len(slots))
		}
	})

	t.Run("CheckDurability", func(t *testing.T) {
		if w := open(t).CheckDurability(t.Context()); len(w) != 0 {
			t.Fatalf("warnings on noeviction + AOF masters: %q", w)
		}
	})
}

// storedKeys lists the keys under prefix on every master.
func storedKeys(ctx context.Context, t *testing.T, c *redis.ClusterClient, prefix string) []string {
	t.Helper()
	var (
		keys = make(chan []string, 16)
		all  []string
	)
	err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		k, err := node.Keys(ctx, prefix+"*").Result()
		keys <- k
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	close(keys)
	for k := range keys {
		all = append(all, k...)
	}
	return all
}

func TestRedisSentinel(t *testing.T) {
	master := storetest.StartRedis(t)
	sentinel := storetest.StartRedisSentinel(t, "phonemaster", master)
	open := func(t *testing.T) *store.RedisCache {
		return newRedisCache(t, store.RedisConfig{SentinelMaster: "phonemaster", Sentinels: []string{sentinel}})
	}
	t.Run("Cache", func(t *testing.T) {
		storetest.TestCache(t, func(t *testing.T) store.Cache { return open(t) })
	})
	t.Run("TwoInstances", func(t *testing.T) { testRedisTwoInstances(t, open(t), open(t)) })
	t.Run("WritesTheMaster", func(t *testing.T) {
		c := open(t)
		if err := c.Update(t.Context(), "where", func([]byte, bool) ([]byte, time.Duration, error) {
			return []byte("here"), time.Minute, nil
		}); err != nil {
			t.Fatal(err)
		}
		raw := redis.NewClient(&redis.Options{Addr: master})
		t.Cleanup(func() { raw.Close() })
		if got, err := raw.Get(t.Context(), "phone:where").Result(); err != nil || got != "here" {
			t.Fatalf("GET on the master = %q, %v", got, err)
		}
	})
	t.Run("UnknownMaster", func(t *testing.T) {
		c, err := store.NewRedisCache(t.Context(), store.RedisConfig{SentinelMaster: "nosuch",
			Sentinels: []string{sentinel}, Timeout: time.Second})
		if err == nil {
			c.Close()
			t.Fatal("NewRedisCache with an unknown master succeeded")
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
}

func TestRedisCheckDurability(t *testing.T) {
	good := newRedisCache(t, store.RedisConfig{URL: "redis://" + storetest.StartRedis(t)})
	if w := good.CheckDurability(t.Context()); len(w) != 0 {
		t.Fatalf("warnings on a noeviction + AOF server: %q", w)
	}
	rdb := newRedisCache(t, store.RedisConfig{URL: "redis://" + storetest.StartRedis(t, "--appendonly", "no", "--save", "3600 1")})
	if w := rdb.CheckDurability(t.Context()); len(w) != 0 {
		t.Fatalf("warnings on a noeviction + RDB server: %q", w)
	}
	bad := newRedisCache(t, store.RedisConfig{URL: "redis://" + storetest.StartRedis(t,
		"--appendonly", "no", "--save", "", "--maxmemory-policy", "volatile-lru")})
	w := bad.CheckDurability(t.Context())
	if len(w) != 2 || !strings.Contains(w[0], "volatile-lru") || !strings.Contains(w[1], "no persistence") {
		t.Fatalf("warnings = %q, want the eviction policy and the missing persistence", w)
	}
	t.Logf("%q", w)
}

func TestRedisConfigModes(t *testing.T) {
	for _, tc := range []struct {
		cfg  store.RedisConfig
		want string // "" for valid
	}{
		{store.RedisConfig{Cluster: []string{"127.0.0.1:7000", "10.0.0.2:7000"}}, ""},
		{store.RedisConfig{SentinelMaster: "m", Sentinels: []string{"[::1]:26379"}, Username: "u", Password: "s3cret", TLS: true}, ""},
		{store.RedisConfig{URL: "redis://127.0.0.1:6379/0", Password: "s3cret"}, ""},
		{store.RedisConfig{Cluster: []string{"127.0.0.1:7000"}, KeyPrefix: "{phone}:"}, ""},
		{store.RedisConfig{URL: "redis://127.0.0.1:6379/0", Cluster: []string{"127.0.0.1:7000"}}, "one of"},
		{store.RedisConfig{Cluster: []string{"a:1"}, SentinelMaster: "m", Sentinels: []string{"b:2"}}, "one of"},
		{store.RedisConfig{URL: "redis://127.0.0.1:6379/0", TLS: true}, "rediss://"},
		{store.RedisConfig{Cluster: []string{"127.0.0.1"}}, "host:port"},
		{store.RedisConfig{Cluster: []string{"127.0.0.1:0"}}, "port"},
		{store.RedisConfig{Sentinels: []string{"127.0.0.1:26379"}}, "master"},
		{store.RedisConfig{SentinelMaster: "m"}, "sentinel address"},
		{store.RedisConfig{Cluster: []string{"127.0.0.1:7000"}, KeyPrefix: "ph{one:"}, "hash tag"},
		{store.RedisConfig{Cluster: []string{"127.0.0.1:7000"}, KeyPrefix: "ph{}one:"}, "hash tag"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v, want it to mention %q", tc.cfg, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("Validate error leaks the password: %v", err)
		}
	}
}
