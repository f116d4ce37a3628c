package flow_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/flow"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

// codeSink keeps the last code sent to each number.
type codeSink struct {
	mu    sync.Mutex
	codes map[string]string
}

func (s *codeSink) Send(_ context.Context, m sms.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[m.To] = m.Code
	return nil
}

func (s *codeSink) code(n string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codes[n]
}

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
	sink := &codeSink{codes: map[string]string{}}
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
	if _, err := other.Verify(ctx, flow.VerifyRequest{UserID: "u", Code: sink.code("+33612345678")}); err != nil {
		t.Fatalf("the resent code: %v", err)
	}
}
