package caddymodule

import (
	"context"

	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/bearer"
)

// The dev token from `caddy phone-token` is accepted by the module with the
// same secret, carries a fresh sign-in time, and is refused with another.
func TestPhoneTokenMintsAcceptedTokens(t *testing.T) {
	now := time.Now()
	tok, err := mintToken("a-dev-secret-0123456789", "alice", "HS384", "https://idp", "app", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := bearer.New(ctx, bearer.Config{Secret: "a-dev-secret-0123456789", Issuer: "https://idp", Audience: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(ctx, "Bearer "+tok)
	if err != nil || id.UserID != "alice" || id.SignInTime().Unix() != now.Unix() {
		t.Fatalf("identity %+v, err %v", id, err)
	}
	other, _ := bearer.New(ctx, bearer.Config{Secret: "another-secret-0123456789"})
	if _, err := other.Verify(ctx, "Bearer "+tok); err == nil {
		t.Fatal("token accepted with another secret")
	}
}

func TestPhoneTokenRefusesBadInput(t *testing.T) {
	t.Setenv("PHONE_JWT_SECRET", "")
	for _, c := range []struct{ secret, sub, alg string }{
		{"", "alice", "HS256"},
		{"s", "", "HS256"},
		{"s", "alice", "RS256"},
		{"s", "alice", "none"},
	} {
		if _, err := mintToken(c.secret, c.sub, c.alg, "", "", time.Hour, time.Now()); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
}
