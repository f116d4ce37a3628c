package flow_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/internal/fake"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// interleavedCache runs `between` once, right after the first Get: what
// another instance does between this one's read and its write.
type interleavedCache struct {
	store.Cache
	once    sync.Once
	between func()
}

func (c *interleavedCache) Get(ctx context.Context, k string) ([]byte, error) {
	b, err := c.Cache.Get(ctx, k)
	if strings.HasPrefix(k, "c:") {
		c.once.Do(c.between)
	}
	return b, err
}

// A resend on one instance must not undo what another instance did to the
// challenge between the resend's read and its write: wrong codes counted
// there stay counted.
func TestResendKeepsAnotherInstancesAttempts(t *testing.T) {
	ctx := context.Background()
	shared, err := store.NewBigCache(store.BigCacheConfig{MaxSizeMB: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	users := store.NewMemoryUsers()
	sink := &fake.Sender{}
	cfg := flow.Config{Verification: true, CodeLength: 6, TTL: 10 * time.Minute, MaxAttempts: 5,
		Secret: []byte("0123456789abcdef0123")}
	other, err := flow.New(cfg, flow.Deps{Users: users, Cache: shared, Sender: sink, Numbers: numbers.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	wrongs := 0
	racing := &interleavedCache{Cache: shared, between: func() {
		for range 3 {
			if _, err := other.Verify(ctx, flow.VerifyRequest{UserID: "u", Code: "000000x"}); err != nil {
				wrongs++
			}
		}
	}}
	one, err := flow.New(cfg, flow.Deps{Users: users, Cache: racing, Sender: sink, Numbers: numbers.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Update(ctx, flow.UpdateRequest{UserID: "u", PhoneNumber: "+33612345678"}); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Resend(ctx, flow.ResendRequest{UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	if wrongs != 3 {
		t.Fatalf("the other instance made %d wrong guesses, want 3", wrongs)
	}
	_, err = other.Verify(ctx, flow.VerifyRequest{UserID: "u", Code: "000000y"})
	var ce *flow.CodeError
	if !errors.As(err, &ce) || ce.AttemptsLeft != 1 {
		t.Fatalf("after 3 wrong codes on the other instance and a resend, a 4th: %v; want 1 attempt left", err)
	}
	if _, err := other.Verify(ctx, flow.VerifyRequest{UserID: "u", Code: sink.LastTo("+33612345678").Code}); err != nil {
		t.Fatalf("the resent code: %v", err)
	}
}

// One client guessing codes against many users is stopped by
// verify_per_ip before it can lock their challenges.
func TestVerifyPerIPStopsGuessingAcrossUsers(t *testing.T) {
	ctx := context.Background()
	cache, err := store.NewBigCache(store.BigCacheConfig{MaxSizeMB: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	sink := &fake.Sender{}
	cfg := flow.Config{Verification: true, CodeLength: 6, TTL: 10 * time.Minute, MaxAttempts: 5,
		Limits: flow.Limits{VerifyPerIP: flow.Limit{Count: 3, Window: time.Hour}}, Secret: []byte("0123456789abcdef0123")}
	svc, err := flow.New(cfg, flow.Deps{Users: store.NewMemoryUsers(), Cache: cache, Sender: sink, Numbers: numbers.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	victims := []string{"v1", "v2", "v3", "v4"}
	for i, v := range victims {
		if _, err := svc.Update(ctx, flow.UpdateRequest{UserID: v, PhoneNumber: "+3361234567" + string(rune('0'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range victims {
		_, err := svc.Verify(ctx, flow.VerifyRequest{UserID: v, Code: "000000x", ClientIP: "203.0.113.9"})
		var ce *flow.CodeError
		switch {
		case i < 3 && !errors.As(err, &ce):
			t.Fatalf("guess %d: %v, want a wrong code", i, err)
		case i == 3 && !errors.Is(err, flow.ErrRateLimited):
			t.Fatalf("guess %d: %v, want rate limited", i, err)
		}
	}
	// The fourth victim's challenge was not touched: all 5 attempts remain
	// for its owner, from another address.
	_, err = svc.Verify(ctx, flow.VerifyRequest{UserID: "v4", Code: "000000x", ClientIP: "198.51.100.1"})
	var ce *flow.CodeError
	if !errors.As(err, &ce) || ce.AttemptsLeft != 4 {
		t.Fatalf("the owner's first wrong code: %v, want 4 attempts left", err)
	}
	if _, err := svc.Verify(ctx, flow.VerifyRequest{UserID: "v4", Code: sink.LastTo("+33612345673").Code, ClientIP: "198.51.100.1"}); err != nil {
		t.Fatalf("the owner's right code: %v", err)
	}
}
