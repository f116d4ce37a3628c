package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-phone/caddy-phone/store/storetest"
)

// Today's JSON, a single server's URL, still loads; cluster and sentinel
// are its siblings; a setting that cannot work is refused at provision.
func TestRedisCacheJSON(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"url":"redis://127.0.0.1:6379/0","key_prefix":"p:","timeout":1000000000}`, ""},
		{`{"cluster":["10.0.0.1:7000","10.0.0.2:7000"],"username":"phone","password":"{env.NOPE}","tls":true}`, ""},
		{`{"sentinel":{"master":"mymaster","addrs":["10.0.0.1:26379"]}}`, ""},
		{`{}`, "url is required"},
		{`{"url":"redis://127.0.0.1:6379/0","cluster":["10.0.0.1:7000"]}`, "one of"},
		{`{"url":"redis://127.0.0.1:6379/0","tls":true}`, "rediss://"},
		{`{"cluster":["10.0.0.1"]}`, "host:port"},
		{`{"sentinel":{"master":"m","addrs":[]}}`, "sentinel address"},
		{`{"cluster":["10.0.0.1:7000"],"key_prefix":"a{b:"}`, "hash tag"},
	} {
		var c RedisCache
		if err := json.Unmarshal([]byte(tc.json), &c); err != nil {
			t.Fatal(err)
		}
		err := c.Provision(caddy.Context{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.json, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error naming %q", tc.json, err, tc.want)
		}
	}
}

// Different servers or credentials are different pooled caches; the key
// never shows the password.
func TestRedisCachePoolKey(t *testing.T) {
	key := func(js string) string {
		var c RedisCache
		if err := json.Unmarshal([]byte(js), &c); err != nil {
			t.Fatal(err)
		}
		if err := c.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
		return c.PoolKey()
	}
	keys := map[string]bool{}
	for _, js := range []string{
		`{"url":"redis://127.0.0.1:6379/0"}`,
		`{"cluster":["127.0.0.1:6379"]}`,
		`{"cluster":["127.0.0.1:6379"],"password":"s3cret"}`,
		`{"sentinel":{"master":"m","addrs":["127.0.0.1:6379"]}}`,
	} {
		k := key(js)
		if strings.Contains(k, "s3cret") || keys[k] {
			t.Fatalf("%s: pool key %q repeats or shows the password", js, k)
		}
		keys[k] = true
	}
}

// SPEC §9: a Redis that may evict or forget is named at start.
func TestRedisCacheWarnsForgetful(t *testing.T) {
	addr := storetest.StartRedis(t, "--maxmemory-policy", "allkeys-lru", "--appendonly", "no")
	var c RedisCache
	if err := json.Unmarshal([]byte(`{"url":"redis://`+addr+`"}`), &c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	rc, err := c.OpenCache(ctx, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	all := strings.Join(msgs, "\n")
	if len(msgs) != 2 || !strings.Contains(all, "allkeys-lru") || !strings.Contains(all, "no persistence") {
		t.Fatalf("warnings: %q", msgs)
	}
}
