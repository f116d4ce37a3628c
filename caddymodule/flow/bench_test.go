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

// sink accepts every message at once and keeps the last code.
type sink struct{ code string }

func (s *sink) Send(_ context.Context, m sms.Message) error {
	s.code = m.Code
	return nil
}

// BenchmarkUpdateVerify runs a full update + verify (rule 3 after the
// first round: a verified user moves between two numbers) with an instant
// sink, memory users and a real bigcache. Target: ≤ 100 µs/op.
func BenchmarkUpdateVerify(b *testing.B) {
	for _, bc := range []struct {
		name string
		nums Numbers
	}{
		{"policy", numbers.Policy{}},
		{"compiled", mustCompile(b)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := baseConfig()
			// Every budget on, so the counters are exercised, but never spent.
			big := Limit{Count: 1 << 30, Window: time.Hour}
			cfg.Limits = Limits{PerNumber: big, PerUser: big, PerIP: big, Global: big, VerifyPerUser: big}
			snk := &sink{}
			svc, err := New(cfg, Deps{Users: store.NewMemoryUsers(), Cache: newCache(b), Sender: snk,
				Numbers: bc.nums, Clock: fake.NewClock(t0)})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			pair := [2]string{numFR, numUS}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := svc.Update(ctx, UpdateRequest{UserID: "bench", PhoneNumber: pair[i%2], ClientIP: "192.0.2.1"}); err != nil {
					b.Fatal(err)
				}
				if _, err := svc.Verify(ctx, VerifyRequest{UserID: "bench", Code: snk.code}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mustCompile(b *testing.B) Numbers {
	c, err := numbers.Policy{}.Compile()
	if err != nil {
		b.Fatal(err)
	}
	return c
}
