package flow

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/internal/fake"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

func TestNewValidatesConfig(t *testing.T) {
	bc := newCache(t)
	deps := Deps{Users: store.NewMemoryUsers(), Cache: bc, Sender: &fake.Sender{}, Numbers: numbers.Policy{}}
	cases := []struct {
		name   string
		mutate func(*Config, *Deps)
		ok     bool
	}{
		{"base", func(*Config, *Deps) {}, true},
		{"length 4", func(c *Config, _ *Deps) { c.CodeLength = 4 }, true},
		{"length 10", func(c *Config, _ *Deps) { c.CodeLength = 10 }, true},
		{"length 3", func(c *Config, _ *Deps) { c.CodeLength = 3 }, false},
		{"length 11", func(c *Config, _ *Deps) { c.CodeLength = 11 }, false},
		{"ttl under 1s", func(c *Config, _ *Deps) { c.TTL = time.Second - 1 }, false},
		{"no attempts", func(c *Config, _ *Deps) { c.MaxAttempts = 0 }, false},
		{"negative resend", func(c *Config, _ *Deps) { c.ResendAfter = -1 }, false},
		{"zero resend", func(c *Config, _ *Deps) { c.ResendAfter = 0 }, true},
		{"short secret", func(c *Config, _ *Deps) { c.Secret = c.Secret[:15] }, false},
		{"no users", func(_ *Config, d *Deps) { d.Users = nil }, false},
		{"no cache", func(_ *Config, d *Deps) { d.Cache = nil }, false},
		{"no sender", func(_ *Config, d *Deps) { d.Sender = nil }, false},
		{"no numbers", func(_ *Config, d *Deps) { d.Numbers = nil }, false},
		{"template without code", func(c *Config, _ *Deps) { c.Templates = sms.Templates{Default: "hi"} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, d := baseConfig(), deps
			tc.mutate(&cfg, &d)
			_, err := New(cfg, d)
			if (err == nil) != tc.ok {
				t.Fatalf("New err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestRule3StatusHidesExpiredPending(t *testing.T) {
	h := newHarness(t)
	h.seedVerified("u", numFR)
	h.mustUpdate("u", numUS, StatusPending)
	h.clock.Advance(h.cfg.TTL)
	st, err := h.svc.Status(h.ctx, "u")
	if err != nil || st.PendingNumber != "" || !st.PendingExpiresAt.IsZero() {
		t.Fatalf("Status after ttl = %+v, %v; want no pending number", st, err)
	}
	h.wantUser("u", numFR, true)
}

func TestStatusStoreFailure(t *testing.T) {
	h := newHarness(t)
	h.users.failGet.Store(true)
	_, err := h.svc.Status(h.ctx, "u")
	wantErr(t, err, ErrUnavailable)
}

func TestStatusUnknownUser(t *testing.T) {
	h := newHarness(t)
	st, err := h.svc.Status(context.Background(), "nobody")
	if err != nil || st.User != (store.User{ID: "nobody"}) || st.PendingNumber != "" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestCacheFailure(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	sends := h.sender.Count()
	h.cache.fail.Store(true)
	_, err := h.verify("u", code)
	wantErr(t, err, ErrUnavailable)
	_, err = h.update("v", numUS)
	wantErr(t, err, ErrUnavailable)
	_, err = h.resend("u")
	wantErr(t, err, ErrUnavailable)
	wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrUnavailable)
	_, err = h.svc.Status(h.ctx, "u")
	wantErr(t, err, ErrUnavailable)
	if h.sender.Count() != sends {
		t.Fatal("SMS sent while the cache was down")
	}
	h.wantUser("v", "", false)
	h.cache.fail.Store(false)
	h.mustVerify("u", code)
}
