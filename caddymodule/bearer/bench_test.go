package bearer

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// benchHeader is a realistic HS256 header (an IdP-like claim set).
func benchHeader(b *testing.B, now time.Time) string {
	claims := claimsAt(now, jwt.MapClaims{
		"iss": "https://idp.example.com", "aud": "legacy-app", "email": "someone@example.com",
		"auth_time": now.Add(-time.Hour).Unix(), "sid": "3f1c2a9e-5b7d-4e8a-9c0f-1a2b3c4d5e6f",
	})
	return "Bearer " + mint(b, jwt.SigningMethodHS256, []byte(testSecret), claims, nil)
}

func benchVerifier(b *testing.B, cacheEntries int) *Verifier {
	v, err := New(b.Context(), Config{
		Secret: testSecret, Issuer: "https://idp.example.com", Audience: []string{"legacy-app"},
		Leeway: 30 * time.Second, CacheEntries: cacheEntries,
	})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkVerifyHS256Cached is the hot path: the same token on every request.
func BenchmarkVerifyHS256Cached(b *testing.B) {
	v := benchVerifier(b, 0)
	h := benchHeader(b, time.Now())
	if _, err := v.Verify(b.Context(), h); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyHS256CachedParallel measures lock contention on one token.
func BenchmarkVerifyHS256CachedParallel(b *testing.B) {
	v := benchVerifier(b, 0)
	h := benchHeader(b, time.Now())
	if _, err := v.Verify(b.Context(), h); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, h); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyHS256Cold is a full parse and signature check every time.
func BenchmarkVerifyHS256Cold(b *testing.B) {
	v := benchVerifier(b, -1)
	h := benchHeader(b, time.Now())
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyProjectFormCached is the Descope "<project_id>:<jwt>" hot path.
func BenchmarkVerifyProjectFormCached(b *testing.B) {
	v, err := New(b.Context(), Config{Secret: testSecret, ProjectID: "P2abcdefghijklmnopqrstuvwxyz12"})
	if err != nil {
		b.Fatal(err)
	}
	h := "Bearer P2abcdefghijklmnopqrstuvwxyz12:" + benchHeader(b, time.Now())[len("Bearer "):]
	if _, err := v.Verify(b.Context(), h); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
}
