package flow

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddy-phone/caddy-phone/caddymodule/internal/fake"
	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// 50 concurrent verifies of the right code: exactly one succeeds, the
// others find nothing pending. Run with -race.
func TestConcurrentVerifyExactlyOnce(t *testing.T) {
	cases := []struct {
		name      string
		instances int // Services sharing users and cache (Caddy instances)
		verified  bool
	}{
		{"one instance rule 2", 1, false},
		{"one instance rule 3", 1, true},
		{"three instances rule 2", 3, false},
		{"three instances rule 3", 3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.verified {
				h.seedVerified("u", numDE)
			}
			h.mustUpdate("u", numFR, map[bool]string{false: StatusUpdated, true: StatusPending}[tc.verified])
			code := h.sender.LastCode(t)
			svcs := []*Service{h.svc}
			for len(svcs) < tc.instances {
				svcs = append(svcs, h.sibling())
			}
			const n = 50
			var (
				wins  atomic.Int32
				wg    sync.WaitGroup
				start = make(chan struct{})
				errs  = make(chan error, n)
			)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(svc *Service) {
					defer wg.Done()
					<-start
					u, err := svc.Verify(context.Background(), VerifyRequest{UserID: "u", Code: code})
					if err == nil {
						if u != (store.User{ID: "u", PhoneNumber: numFR, Verified: true}) {
							errs <- errors.New("winner got a wrong user")
						}
						wins.Add(1)
						return
					}
					if !errors.Is(err, ErrNoPending) {
						errs <- err
					}
				}(svcs[i%len(svcs)])
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("loser: %v", err)
			}
			if got := wins.Load(); got != 1 {
				t.Fatalf("%d verifies succeeded, want exactly 1", got)
			}
			h.wantUser("u", numFR, true)
			_, err := h.verify("u", code)
			wantErr(t, err, ErrNoPending)
		})
	}
}

// Concurrent wrong guesses cannot get past max_attempts.
func TestConcurrentWrongGuessesBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxAttempts = 5 })
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	const n = 40
	var (
		wg      sync.WaitGroup
		invalid atomic.Int32
		locked  atomic.Int32
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.svc.Verify(context.Background(), VerifyRequest{UserID: "u", Code: wrongCodeFor(code)})
			switch {
			case errors.Is(err, ErrInvalidCode):
				invalid.Add(1)
			case errors.Is(err, ErrTooManyAttempts):
				locked.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	wg.Wait()
	if invalid.Load() != 5 || locked.Load() != n-5 {
		t.Fatalf("%d invalid_code and %d too_many_attempts, want 5 and %d", invalid.Load(), locked.Load(), n-5)
	}
	_, err := h.verify("u", code)
	wantErr(t, err, ErrTooManyAttempts)
}

// Concurrent updates of one user to different numbers end in one
// consistent state: the number stored (rule 2) or pending (rule 3) is the
// one the last code went to, and that code verifies it.
func TestConcurrentUpdatesConsistent(t *testing.T) {
	for _, verified := range []bool{false, true} {
		t.Run(map[bool]string{false: "rule 2", true: "rule 3"}[verified], func(t *testing.T) {
			h := newHarness(t)
			if verified {
				h.seedVerified("u", numDE)
			}
			sendsBefore := h.sender.Count()
			const n = 30
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					<-start
					if _, err := h.svc.Update(context.Background(), UpdateRequest{UserID: "u", PhoneNumber: frNumber(i)}); err != nil {
						t.Errorf("Update %d: %v", i, err)
					}
				}(i)
			}
			close(start)
			wg.Wait()
			if got := h.sender.Count() - sendsBefore; got != n {
				t.Fatalf("%d SMS sent, want %d", got, n)
			}
			last := h.sender.Last(t)
			c := h.challenge("u")
			if c == nil || c.Number != last.To || c.MAC != codeMAC(testSecret, "u", last.To, last.Code) {
				t.Fatalf("open challenge %+v is not the one of the last code sent (to %s)", c, last.To)
			}
			st, err := h.svc.Status(h.ctx, "u")
			if err != nil {
				t.Fatal(err)
			}
			if verified {
				if st.PendingNumber != last.To || st.User != (store.User{ID: "u", PhoneNumber: numDE, Verified: true}) {
					t.Fatalf("Status = %+v, want pending %s over verified %s", st, last.To, numDE)
				}
			} else if st.User != (store.User{ID: "u", PhoneNumber: last.To}) || st.PendingNumber != "" {
				t.Fatalf("Status = %+v, want %s stored unverified", st, last.To)
			}
			h.mustVerify("u", last.Code)
			h.wantUser("u", last.To, true)
		})
	}
}

// Many users at once through one Service: no cross-talk.
func TestConcurrentManyUsers(t *testing.T) {
	h := newHarness(t)
	codes := &fake.Sender{}
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: codes,
		Numbers: numbers.Policy{}, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			user := "user-" + frNumber(i)
			ctx := context.Background()
			if _, err := svc.Update(ctx, UpdateRequest{UserID: user, PhoneNumber: frNumber(i)}); err != nil {
				t.Errorf("Update: %v", err)
				return
			}
			u, err := svc.Verify(ctx, VerifyRequest{UserID: user, Code: codes.LastFor(user).Code})
			if err != nil || u.PhoneNumber != frNumber(i) || !u.Verified {
				t.Errorf("Verify %s: %+v, %v", user, u, err)
			}
		}(i)
	}
	wg.Wait()
}
