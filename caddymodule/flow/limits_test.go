package flow

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRetryAfterRounding(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		want   int
		wantOK bool
	}{
		{"nil", nil, 0, false},
		{"plain error", errors.New("x"), 0, false},
		{"bare sentinel", ErrRateLimited, 0, false},
		{"zero", &RetryError{After: 0, Err: ErrRateLimited}, 1, true},
		{"negative", &RetryError{After: -time.Second, Err: ErrRateLimited}, 1, true},
		{"1ns", &RetryError{After: 1, Err: ErrRateLimited}, 1, true},
		{"999ms", &RetryError{After: 999 * time.Millisecond, Err: ErrRateLimited}, 1, true},
		{"1s", &RetryError{After: time.Second, Err: ErrRateLimited}, 1, true},
		{"1s+1ns", &RetryError{After: time.Second + 1, Err: ErrRateLimited}, 2, true},
		{"59.5s", &RetryError{After: 59500 * time.Millisecond, Err: ErrRateLimited}, 60, true},
		{"1h", &RetryError{After: time.Hour, Err: ErrRateLimited}, 3600, true},
		{"wrapped", fmt.Errorf("outer: %w", &RetryError{After: 2500 * time.Millisecond, Err: ErrUnavailable}), 3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := RetryAfter(tc.err)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("RetryAfter = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestRetryErrorUnwrapsAndNamesLimit(t *testing.T) {
	err := error(&RetryError{After: 3 * time.Second, Err: ErrRateLimited, Limit: "per_ip"})
	if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrUnavailable) {
		t.Fatal("RetryError does not unwrap to its Err only")
	}
	if s := err.Error(); s == "" || !contains(s, "per_ip") {
		t.Fatalf("Error() = %q", s)
	}
	ce := error(&CodeError{AttemptsLeft: 2})
	if !errors.Is(ce, ErrInvalidCode) || !contains(ce.Error(), "2") {
		t.Fatalf("CodeError = %q", ce)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Each send budget refuses with ErrRateLimited once spent, reports the rest
// of its window, spends nothing when refusing, and reopens with the window.
func TestSendBudgets(t *testing.T) {
	const (
		window = time.Hour
		step   = 10 * time.Minute
	)
	type req struct{ user, number, ip string }
	cases := []struct {
		name  string
		limit string
		set   func(*Limits, Limit)
		// req(i) is the i-th request; the first two fit the budget of 2,
		// the third must be refused by this budget alone.
		req func(i int) req
		// other is a request the spent budget must not refuse.
		other req
	}{
		{"per_number", "per_number", func(l *Limits, x Limit) { l.PerNumber = x },
			func(i int) req { return req{fmt.Sprint("u", i), numFR, fmt.Sprint("198.51.100.", i)} },
			req{"z", numUS, "198.51.100.99"}},
		{"per_user", "per_user", func(l *Limits, x Limit) { l.PerUser = x },
			func(i int) req { return req{"u", frNumber(i), fmt.Sprint("198.51.100.", i)} },
			req{"z", frNumber(50), "198.51.100.99"}},
		{"per_ip", "per_ip", func(l *Limits, x Limit) { l.PerIP = x },
			func(i int) req { return req{fmt.Sprint("u", i), frNumber(i), "203.0.113.7"} },
			req{"z", frNumber(50), "203.0.113.8"}},
		{"global", "global", func(l *Limits, x Limit) { l.Global = x },
			func(i int) req { return req{fmt.Sprint("u", i), frNumber(i), fmt.Sprint("198.51.100.", i)} },
			req{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { tc.set(&c.Limits, Limit{Count: 2, Window: window}) })
			do := func(r req) error {
				_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: r.user, PhoneNumber: r.number, ClientIP: r.ip})
				return err
			}
			for i := 0; i < 2; i++ {
				if err := do(tc.req(i)); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				h.clock.Advance(step)
			}
			sends := h.sender.Count()
			third := tc.req(2)
			err := do(third)
			wantRetry(t, err, tc.limit, window-2*step)
			if h.sender.Count() != sends {
				t.Fatal("a refused update sent an SMS")
			}
			if third.user != "u" {
				h.wantUser(third.user, "", false) // refused before storing
			}
			// A refusal spends nothing: still exactly the rest of the window.
			h.clock.Advance(step)
			err = do(third)
			wantRetry(t, err, tc.limit, window-3*step)
			if tc.other.user != "" {
				if err := do(tc.other); err != nil {
					t.Fatalf("a request outside the spent %s budget: %v", tc.limit, err)
				}
			}
			// Just before the window ends: still refused, 1 s to wait.
			h.clock.Advance(window - 3*step - time.Millisecond)
			err = do(third)
			wantRetry(t, err, tc.limit, time.Millisecond)
			// At the window's end it reopens.
			h.clock.Advance(time.Millisecond)
			if err := do(third); err != nil {
				t.Fatalf("after the window: %v", err)
			}
		})
	}
}

// Resend spends the send budgets too.
func TestResendSpendsSendBudget(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.PerUser = Limit{Count: 2, Window: time.Hour}
	})
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(h.cfg.ResendAfter)
	_, err := h.resend("u")
	wantRetry(t, err, "per_user", time.Hour-2*h.cfg.ResendAfter)
	// The refused resend left the last code valid.
	h.mustVerify("u", h.sender.LastCode(t))
}

// A refusal by one budget does not eat into the others.
func TestRefusedBudgetSpendsNoOther(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.PerNumber = Limit{Count: 1, Window: time.Hour}
		c.Limits.PerUser = Limit{Count: 1, Window: time.Hour}
		c.Limits.Global = Limit{Count: 2, Window: time.Hour}
	})
	h.mustUpdate("a", numFR, StatusUpdated) // global 1/2
	_, err := h.update("a", numUS)          // per_user refuses
	wantRetry(t, err, "per_user", time.Hour)
	_, err = h.update("a", numUS)
	wantRetry(t, err, "per_user", time.Hour)
	// Neither refusal spent per_number(numUS) nor global.
	h.mustUpdate("b", numUS, StatusUpdated) // global 2/2
	_, err = h.update("c", numDE)
	wantRetry(t, err, "global", time.Hour)
}

// verify_per_user caps failed verifies across challenges: cycling update →
// wrong guesses → update cannot exceed the budget.
func TestVerifyPerUserBudget(t *testing.T) {
	for _, budget := range []int{1, 5, 7} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.MaxAttempts = 3
				c.Limits.VerifyPerUser = Limit{Count: budget, Window: time.Hour}
			})
			failures, cycles := 0, 0
			var limited error
		cycle:
			for cycles < 20 {
				cycles++
				h.mustUpdate("u", frNumber(cycles), StatusUpdated)
				code := h.sender.LastCode(t)
				for {
					_, err := h.verify("u", wrongCodeFor(code))
					var ce *CodeError
					switch {
					case errors.As(err, &ce):
						failures++
					case errors.Is(err, ErrTooManyAttempts):
						h.clock.Advance(time.Second)
						continue cycle
					case errors.Is(err, ErrRateLimited):
						limited = err
						break cycle
					default:
						t.Fatalf("unexpected %v", err)
					}
				}
			}
			if failures != budget {
				t.Fatalf("%d wrong codes answered as such over %d cycles, want exactly the budget %d", failures, cycles, budget)
			}
			elapsed := time.Duration(cycles-1) * time.Second
			wantRetry(t, limited, "verify_per_user", time.Hour-elapsed)
			// The right code is refused as well while the budget is spent.
			_, err := h.verify("u", h.sender.LastCode(t))
			wantErr(t, err, ErrRateLimited)
			h.wantUser("u", frNumber(cycles), false)
			// A resend does not refill it either.
			h.clock.Advance(h.cfg.ResendAfter)
			if _, err := h.resend("u"); err != nil {
				t.Fatal(err)
			}
			_, err = h.verify("u", h.sender.LastCode(t))
			wantErr(t, err, ErrRateLimited)
			// Once the window has passed the right code works.
			h.clock.Advance(time.Hour)
			h.mustUpdate("u", numFR, StatusUpdated)
			h.mustVerify("u", h.sender.LastCode(t))
		})
	}
}

// Right codes and refusals other than a wrong code do not spend it.
func TestVerifyPerUserBudgetCountsOnlyWrongCodes(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.VerifyPerUser = Limit{Count: 1, Window: time.Hour}
	})
	_, err := h.verify("u", "123456") // nothing open
	wantErr(t, err, ErrNoPending)
	h.mustUpdate("u", numFR, StatusUpdated)
	_, err = h.svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: "123456", PhoneNumber: numUS})
	wantErr(t, err, ErrNoPending)
	h.mustVerify("u", h.sender.LastCode(t))
	h.mustUpdate("u", numUS, StatusPending)
	h.mustVerify("u", h.sender.LastCode(t))
	h.wantUser("u", numUS, true)
}

func TestCounterEncoding(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	c := counter{start: start, count: 42}
	got, ok := decodeCounter(c.encode())
	if !ok || !got.start.Equal(start) || got.count != 42 {
		t.Fatalf("roundtrip = %+v, %v", got, ok)
	}
	for _, b := range [][]byte{nil, {}, make([]byte, 11), make([]byte, 13)} {
		if _, ok := decodeCounter(b); ok {
			t.Fatalf("decodeCounter(%d bytes) accepted", len(b))
		}
	}
}

// A corrupt counter entry is treated as a fresh window, not a failure.
func TestCorruptCounterStartsFresh(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerUser = Limit{Count: 1, Window: time.Hour} })
	if err := h.bc.Update(h.ctx, "lu:u", func([]byte, bool) ([]byte, time.Duration, error) {
		return []byte("garbage"), time.Hour, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.mustUpdate("u", numFR, StatusUpdated)
	_, err := h.update("u", numUS)
	wantRetry(t, err, "per_user", time.Hour)
}

// per_ip counts IPv6 clients by /64 and IPv4 clients by address.
func TestIPKey(t *testing.T) {
	for _, c := range []struct{ ip, want string }{
		{"", ""},
		{"203.0.113.7", "li:203.0.113.7"},
		{"::ffff:203.0.113.7", "li:203.0.113.7"},
		{"2001:db8:1:2:aaaa::1", "li:2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "li:2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "li:2001:db8:1:3::/64"},
	} {
		if got := ipKey(c.ip); got != c.want {
			t.Errorf("ipKey(%q) = %q, want %q", c.ip, got, c.want)
		}
	}
}

// TestLongestEntryLife: every ttl the rules write is within it.
func TestLongestEntryLife(t *testing.T) {
	cfg := Config{TTL: 10 * time.Minute, ResendAfter: 30 * time.Second, Limits: Limits{PerNumber: Limit{Count: 1, Window: 90 * time.Minute}}}
	if got := cfg.LongestEntryLife(); got != 90*time.Minute {
		t.Fatalf("per_number 90m: %s", got)
	}
	cfg.Limits.PerNumber.Window = time.Minute
	if got := cfg.LongestEntryLife(); got != 20*time.Minute {
		t.Fatalf("2 × ttl: %s", got)
	}
	cfg.TTL = 30 * time.Second
	if got := cfg.LongestEntryLife(); got != 2*time.Minute {
		t.Fatalf("the user lease: %s", got)
	}
}
