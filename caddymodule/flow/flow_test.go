package flow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

func TestNewValidatesConfig(t *testing.T) {
	bc := newCache(t)
	deps := Deps{Users: store.NewMemoryUsers(), Cache: bc, Sender: &fakeSender{}, Numbers: numbers.Policy{}}
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

// Rule 1: verification off stores at once, unverified, no SMS.
func TestRule1VerificationOff(t *testing.T) {
	cases := []struct {
		name       string
		before     *store.User // nil: no number
		number     string
		wantStatus string
		wantUser   store.User
	}{
		{"no number", nil, numFR, StatusUpdated, store.User{ID: "u", PhoneNumber: numFR}},
		{"formatted input is normalised", nil, "+33 6 12 34 56 78", StatusUpdated, store.User{ID: "u", PhoneNumber: numFR}},
		{"unverified number replaced", &store.User{ID: "u", PhoneNumber: numUS}, numFR, StatusUpdated, store.User{ID: "u", PhoneNumber: numFR}},
		{"verified number replaced, unverified", &store.User{ID: "u", PhoneNumber: numUS, Verified: true}, numFR, StatusUpdated, store.User{ID: "u", PhoneNumber: numFR}},
		{"same verified number unchanged (rule 4 first)", &store.User{ID: "u", PhoneNumber: numFR, Verified: true}, numFR, StatusUnchanged, store.User{ID: "u", PhoneNumber: numFR, Verified: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Verification = false })
			if tc.before != nil {
				if err := h.users.MemoryUsers.Set(h.ctx, *tc.before); err != nil {
					t.Fatal(err)
				}
			}
			res, err := h.update("u", tc.number)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if res.Status != tc.wantStatus || res.User != tc.wantUser {
				t.Fatalf("result = %+v, want status %q user %+v", res, tc.wantStatus, tc.wantUser)
			}
			if res.SentTo != "" || res.PendingNumber != "" {
				t.Fatalf("result names a code or pending number: %+v", res)
			}
			if n := h.sender.Count(); n != 0 {
				t.Fatalf("%d SMS sent, want none", n)
			}
			if got := h.user("u"); got != tc.wantUser {
				t.Fatalf("stored %+v, want %+v", got, tc.wantUser)
			}
			if h.challenge("u") != nil {
				t.Fatal("a challenge was opened with verification off")
			}
			st, err := h.svc.Status(h.ctx, "u")
			if err != nil || st.User != tc.wantUser || st.PendingNumber != "" || !st.PendingExpiresAt.IsZero() {
				t.Fatalf("Status = %+v, %v", st, err)
			}
			_, err = h.verify("u", "123456")
			wantErr(t, err, ErrNoPending)
		})
	}
}

// Rule 2: no number or an unverified one → stored unverified at once, a
// code goes to it, verify makes it verified.
func TestRule2StoredAtOnceThenVerified(t *testing.T) {
	cases := []struct {
		name   string
		before *store.User
		number string
	}{
		{"no number", nil, numFR},
		{"unverified other number", &store.User{ID: "u", PhoneNumber: numUS}, numFR},
		{"same unverified number", &store.User{ID: "u", PhoneNumber: numFR}, numFR},
		{"formatted input", nil, "+33 6 12 34 56 78"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.before != nil {
				if err := h.users.MemoryUsers.Set(h.ctx, *tc.before); err != nil {
					t.Fatal(err)
				}
			}
			res := h.mustUpdate("u", tc.number, StatusUpdated)
			want := store.User{ID: "u", PhoneNumber: numFR}
			if res.User != want || res.SentTo != numFR || res.PendingNumber != "" ||
				res.ExpiresIn != h.cfg.TTL || res.ResendAfter != h.cfg.ResendAfter {
				t.Fatalf("result = %+v", res)
			}
			h.wantUser("u", numFR, false)
			if h.sender.Count() != 1 || h.sender.Last(t).To != numFR {
				t.Fatalf("sent %+v, want one SMS to %s", h.sender.Attempts(), numFR)
			}
			st, err := h.svc.Status(h.ctx, "u")
			if err != nil || st.User != want || st.PendingNumber != "" || !st.PendingExpiresAt.IsZero() {
				t.Fatalf("Status = %+v, %v (rule 2 has no pending number)", st, err)
			}
			u := h.mustVerify("u", h.sender.LastCode(t))
			if u != (store.User{ID: "u", PhoneNumber: numFR, Verified: true}) {
				t.Fatalf("Verify returned %+v", u)
			}
			h.wantUser("u", numFR, true)
			if err := h.users.MemoryUsers.Set(h.ctx, store.User{ID: "probe", PhoneNumber: numFR, Verified: true}); !errors.Is(err, store.ErrPhoneInUse) {
				t.Fatalf("another user verified %s after u did: %v", numFR, err)
			}
			if h.challenge("u") != nil {
				t.Fatal("challenge left after verify")
			}
		})
	}
}

// Rule 3: a verified user's new number is pending; the old one stays in
// force until the code is verified.
func TestRule3PendingUntilVerified(t *testing.T) {
	h := newHarness(t)
	h.seedVerified("u", numFR)
	h.clock.Advance(time.Minute)
	start := h.clock.Now()

	res := h.mustUpdate("u", numUS, StatusPending)
	if res.User != (store.User{ID: "u", PhoneNumber: numFR, Verified: true}) ||
		res.PendingNumber != numUS || res.SentTo != numUS ||
		res.ExpiresIn != h.cfg.TTL || res.ResendAfter != h.cfg.ResendAfter {
		t.Fatalf("result = %+v", res)
	}
	h.wantUser("u", numFR, true)
	if m := h.sender.Last(t); m.To != numUS {
		t.Fatalf("code went to %s, want the new number %s", m.To, numUS)
	}

	st, err := h.svc.Status(h.ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if st.User != (store.User{ID: "u", PhoneNumber: numFR, Verified: true}) || st.PendingNumber != numUS {
		t.Fatalf("Status = %+v", st)
	}
	if !st.PendingExpiresAt.Equal(start.Add(h.cfg.TTL)) || st.PendingExpiresAt.Location() != time.UTC {
		t.Fatalf("PendingExpiresAt = %v, want %v in UTC", st.PendingExpiresAt, start.Add(h.cfg.TTL))
	}

	// Still in force a while later.
	h.clock.Advance(5 * time.Minute)
	h.wantUser("u", numFR, true)

	u := h.mustVerify("u", h.sender.LastCode(t))
	if u != (store.User{ID: "u", PhoneNumber: numUS, Verified: true}) {
		t.Fatalf("Verify = %+v", u)
	}
	h.wantUser("u", numUS, true)
	st, err = h.svc.Status(h.ctx, "u")
	if err != nil || st.PendingNumber != "" || !st.PendingExpiresAt.IsZero() || st.User.PhoneNumber != numUS {
		t.Fatalf("Status after verify = %+v, %v", st, err)
	}
	// The old number is gone: another user may now verify it.
	h.seedVerified("other", numFR)
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

// Rule 4: the current verified number again → unchanged, no SMS, and a
// pending change is canceled.
func TestRule4SameVerifiedNumber(t *testing.T) {
	cases := []struct {
		name        string
		withPending bool
		input       string
	}{
		{"no pending", false, numFR},
		{"formatted input", false, "+33 6 12 34 56 78"},
		{"cancels pending change", true, numFR},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Limits.PerUser = Limit{Count: 3, Window: time.Hour}
			})
			h.seedVerified("u", numFR) // spends 1 of the per_user budget
			var pendingCode string
			if tc.withPending {
				h.mustUpdate("u", numUS, StatusPending)
				pendingCode = h.sender.LastCode(t)
			}
			before := h.sender.Count()
			res := h.mustUpdate("u", tc.input, StatusUnchanged)
			if res.User != (store.User{ID: "u", PhoneNumber: numFR, Verified: true}) ||
				res.SentTo != "" || res.PendingNumber != "" {
				t.Fatalf("result = %+v", res)
			}
			if h.sender.Count() != before {
				t.Fatal("rule 4 sent an SMS")
			}
			h.wantUser("u", numFR, true)
			st, err := h.svc.Status(h.ctx, "u")
			if err != nil || st.PendingNumber != "" {
				t.Fatalf("Status = %+v, %v; want no pending", st, err)
			}
			if tc.withPending {
				_, err := h.verify("u", pendingCode)
				wantErr(t, err, ErrNoPending)
				h.wantUser("u", numFR, true)
			}
			// No budget spent: two more sends fit the per_user budget of 3
			// only if rule 4 spent nothing (withPending spent one).
			if !tc.withPending {
				h.mustUpdate("u", numUS, StatusPending)
				h.mustUpdate("u", numDE, StatusPending)
			}
		})
	}
}

func TestUpdateInvalidNumber(t *testing.T) {
	cases := []struct {
		input string
		want  error
	}{
		{"", numbers.ErrInvalid},
		{"0612345678", numbers.ErrInvalid},
		{"+33712345678", numbers.ErrInvalid},
		{"+33123456789", numbers.ErrNotAllowed}, // fixed line
		{"not a number", numbers.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.input, func(t *testing.T) {
			h := newHarness(t)
			_, err := h.update("u", tc.input)
			wantErr(t, err, tc.want)
			if h.sender.Count() != 0 || h.users.sets.Load() != 0 {
				t.Fatal("an invalid number sent an SMS or wrote the store")
			}
		})
	}
}

// One open challenge per user: a new update voids the old code.
func TestNewUpdateVoidsOldChallenge(t *testing.T) {
	cases := []struct {
		name     string
		verified bool
	}{{"rule 2", false}, {"rule 3", true}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			want := StatusUpdated
			if tc.verified {
				h.seedVerified("u", numDE)
				want = StatusPending
			}
			h.mustUpdate("u", numFR, want)
			oldCode := h.sender.LastCode(t)
			h.mustUpdate("u", numUS, want)
			newCode := h.sender.LastCode(t)

			// The old code names the old number: refused as such.
			_, err := h.svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: oldCode, PhoneNumber: numFR})
			wantErr(t, err, ErrNoPending)
			if oldCode != newCode {
				_, err = h.verify("u", oldCode)
				wantCodeError(t, err, h.cfg.MaxAttempts-1)
			}
			h.mustVerify("u", newCode)
			h.wantUser("u", numUS, true)
		})
	}
}

func TestNewUpdateResetsAttempts(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	for i := 0; i < h.cfg.MaxAttempts; i++ {
		_, _ = h.verify("u", wrongCodeFor(code))
	}
	h.mustUpdate("u", numUS, StatusUpdated)
	_, err := h.verify("u", wrongCodeFor(h.sender.LastCode(t)))
	wantCodeError(t, err, h.cfg.MaxAttempts-1)
	h.mustVerify("u", h.sender.LastCode(t))
}

func TestCodeIsSingleUse(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	h.mustVerify("u", code)
	_, err := h.verify("u", code)
	wantErr(t, err, ErrNoPending)
	h.wantUser("u", numFR, true)
}

// Wrong codes count down to 0 on the last allowed try; the next try,
// right or wrong, is ErrTooManyAttempts.
func TestWrongCodeAttemptsCountDown(t *testing.T) {
	for _, max := range []int{1, 3, 5} {
		for _, lastRight := range []bool{false, true} {
			name := fmt.Sprintf("max %d/last try right=%v", max, lastRight)
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, func(c *Config) { c.MaxAttempts = max })
				h.mustUpdate("u", numFR, StatusUpdated)
				code := h.sender.LastCode(t)
				for i := 1; i <= max; i++ {
					_, err := h.verify("u", wrongCodeFor(code))
					wantCodeError(t, err, max-i)
					if c := h.challenge("u"); c == nil || c.Attempts != i {
						t.Fatalf("after %d wrong codes the stored challenge is %+v, want Attempts=%d", i, c, i)
					}
				}
				try := wrongCodeFor(code)
				if lastRight {
					try = code
				}
				_, err := h.verify("u", try)
				wantErr(t, err, ErrTooManyAttempts)
				_, err = h.verify("u", code)
				wantErr(t, err, ErrTooManyAttempts)
				h.wantUser("u", numFR, false)
				// Resend cannot reopen a locked challenge.
				h.clock.Advance(h.cfg.ResendAfter)
				_, err = h.resend("u")
				wantErr(t, err, ErrTooManyAttempts)
				// Only a new update opens another.
				h.mustUpdate("u", numFR, StatusUpdated)
				h.mustVerify("u", h.sender.LastCode(t))
			})
		}
	}
}

func TestVerifyRequestValidation(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	for _, bad := range []string{"", strings.Repeat("1", 33)} {
		_, err := h.verify("u", bad)
		wantErr(t, err, ErrInvalidRequest)
	}
	// A code of a wrong length is just a wrong code.
	_, err := h.verify("u", strings.Repeat("1", 32))
	wantCodeError(t, err, h.cfg.MaxAttempts-1)
	// A phone_number that is not the challenged one: no attempt spent.
	_, err = h.svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: code, PhoneNumber: numUS})
	wantErr(t, err, ErrNoPending)
	_, err = h.svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: code, PhoneNumber: "garbage"})
	wantErr(t, err, numbers.ErrInvalid)
	// The challenged number in another format is fine.
	if _, err := h.svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: code, PhoneNumber: "+33 6 12 34 56 78"}); err != nil {
		t.Fatalf("Verify with matching phone_number: %v", err)
	}
	h.wantUser("u", numFR, true)
}

func TestVerifyWithNothingPending(t *testing.T) {
	h := newHarness(t)
	_, err := h.verify("u", "123456")
	wantErr(t, err, ErrNoPending)
	h.seedVerified("u", numFR)
	_, err = h.verify("u", "123456")
	wantErr(t, err, ErrNoPending)
}

// Verify binds the code to its user: user B cannot use A's code.
func TestCodeBoundToUser(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ResendAfter = 0 })
	h.mustUpdate("a", numFR, StatusUpdated)
	codeA := h.sender.LastCode(t)
	h.mustUpdate("b", numUS, StatusUpdated)
	codeB := h.sender.LastCode(t)
	if codeA != codeB {
		_, err := h.verify("b", codeA)
		wantCodeError(t, err, h.cfg.MaxAttempts-1)
	}
	h.mustVerify("a", codeA)
	h.mustVerify("b", codeB)
}

func TestExpiry(t *testing.T) {
	cases := []struct {
		name    string
		advance time.Duration
		want    error
	}{
		{"just before ttl", 10*time.Minute - time.Nanosecond, nil},
		{"at ttl", 10 * time.Minute, ErrExpired},
		{"past ttl", 11 * time.Minute, ErrExpired},
		{"long past ttl", 19 * time.Minute, ErrExpired},
	}
	for _, tc := range cases {
		for _, verified := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "/rule 2", true: "/rule 3"}[verified], func(t *testing.T) {
				h := newHarness(t)
				if verified {
					h.seedVerified("u", numDE)
				}
				h.mustUpdate("u", numFR, map[bool]string{false: StatusUpdated, true: StatusPending}[verified])
				code := h.sender.LastCode(t)
				h.clock.Advance(tc.advance)
				_, err := h.verify("u", code)
				if tc.want == nil {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					h.wantUser("u", numFR, true)
					return
				}
				wantErr(t, err, tc.want)
				if verified {
					h.wantUser("u", numDE, true)
				} else {
					h.wantUser("u", numFR, false)
				}
				// A wrong code past ttl is also just expired.
				_, err = h.verify("u", wrongCodeFor(code))
				wantErr(t, err, ErrExpired)
			})
		}
	}
}

// After expiry an update to the same number is not held by the cooldown.
func TestUpdateAfterExpiry(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ResendAfter = time.Hour; c.TTL = time.Minute })
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(time.Minute)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.mustVerify("u", h.sender.LastCode(t))
}

func TestCancel(t *testing.T) {
	t.Run("nothing open", func(t *testing.T) {
		h := newHarness(t)
		wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrNoPending)
		h.seedVerified("u", numFR)
		wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrNoPending)
	})
	t.Run("pending change", func(t *testing.T) {
		h := newHarness(t)
		h.seedVerified("u", numFR)
		h.mustUpdate("u", numUS, StatusPending)
		code := h.sender.LastCode(t)
		if err := h.svc.Cancel(h.ctx, "u"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		_, err := h.verify("u", code)
		wantErr(t, err, ErrNoPending)
		h.wantUser("u", numFR, true)
		if st, _ := h.svc.Status(h.ctx, "u"); st.PendingNumber != "" {
			t.Fatalf("Status after cancel = %+v", st)
		}
		wantErr(t, h.svc.Cancel(h.ctx, "u"), ErrNoPending)
		// Verified user, nothing pending: resend has nothing to do.
		_, err = h.resend("u")
		wantErr(t, err, ErrNoPending)
	})
	t.Run("rule 2 challenge", func(t *testing.T) {
		h := newHarness(t)
		h.mustUpdate("u", numFR, StatusUpdated)
		code := h.sender.LastCode(t)
		if err := h.svc.Cancel(h.ctx, "u"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		_, err := h.verify("u", code)
		wantErr(t, err, ErrNoPending)
		h.wantUser("u", numFR, false) // the number stays stored, unverified
	})
}

// phone_number_in_use is told only after the right code; the challenge is
// consumed and the loser's record left as it was.
func TestPhoneInUse(t *testing.T) {
	cases := []struct {
		name     string
		bBefore  *store.User
		bStatus  string
		wantUser store.User
	}{
		{"rule 2", nil, StatusUpdated, store.User{ID: "b", PhoneNumber: numFR}},
		{"rule 3", &store.User{ID: "b", PhoneNumber: numUS, Verified: true}, StatusPending,
			store.User{ID: "b", PhoneNumber: numUS, Verified: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.seedVerified("a", numFR)
			if tc.bBefore != nil {
				if err := h.users.MemoryUsers.Set(h.ctx, *tc.bBefore); err != nil {
					t.Fatal(err)
				}
			}
			// The update does not reveal that a holds the number.
			h.mustUpdate("b", numFR, tc.bStatus)
			code := h.sender.LastCode(t)
			// Neither does a wrong code.
			_, err := h.verify("b", wrongCodeFor(code))
			wantCodeError(t, err, h.cfg.MaxAttempts-1)
			before := h.user("b")
			if before != tc.wantUser {
				t.Fatalf("b before verify = %+v, want %+v", before, tc.wantUser)
			}
			_, err = h.verify("b", code)
			wantErr(t, err, ErrPhoneInUse)
			if got := h.user("b"); got != before {
				t.Fatalf("b after in-use = %+v, want unchanged %+v", got, before)
			}
			h.wantUser("a", numFR, true)
			_, err = h.verify("b", code)
			wantErr(t, err, ErrNoPending) // consumed
			if h.challenge("b") != nil {
				t.Fatal("challenge not consumed")
			}
		})
	}
}

// Resend: a new code, the old one void, the attempt count kept.
func TestResendKeepsAttemptsAndVoidsOldCode(t *testing.T) {
	h := newHarness(t) // max 3 attempts
	h.seedVerified("u", numDE)
	h.mustUpdate("u", numFR, StatusPending)
	oldCode := h.sender.LastCode(t)
	_, err := h.verify("u", wrongCodeFor(oldCode))
	wantCodeError(t, err, 2)

	h.clock.Advance(h.cfg.ResendAfter)
	res, err := h.resend("u")
	if err != nil {
		t.Fatalf("Resend: %v", err)
	}
	if res.SentTo != numFR || res.ExpiresIn != h.cfg.TTL || res.ResendAfter != h.cfg.ResendAfter {
		t.Fatalf("ResendResult = %+v", res)
	}
	m := h.sender.Last(t)
	if m.Purpose != "resend" || m.To != numFR {
		t.Fatalf("resend message = %+v", m)
	}
	newCode := h.sender.LastCode(t)
	if c := h.challenge("u"); c == nil || c.Attempts != 1 || !c.Pending || c.Number != numFR {
		t.Fatalf("challenge after resend = %+v, want the pending one with Attempts=1", c)
	}
	if oldCode != newCode {
		_, err = h.verify("u", oldCode)
		wantCodeError(t, err, 1) // the count went on from 1
		_, err = h.verify("u", wrongCodeFor(newCode))
		wantCodeError(t, err, 0)
		_, err = h.verify("u", newCode)
		wantErr(t, err, ErrTooManyAttempts)
		return
	}
	h.mustVerify("u", newCode)
}

func TestResendVoidsOldCodeThenNewVerifies(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	oldCode := h.sender.LastCode(t)
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	newCode := h.sender.LastCode(t)
	if oldCode != newCode {
		_, err := h.verify("u", oldCode)
		wantCodeError(t, err, h.cfg.MaxAttempts-1)
	}
	h.mustVerify("u", newCode)
	h.wantUser("u", numFR, true)
}

// A resend restarts the ttl.
func TestResendRestartsTTL(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(9 * time.Minute)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(9 * time.Minute)
	h.mustVerify("u", h.sender.LastCode(t))
}

func TestResendCooldown(t *testing.T) {
	cases := []struct {
		name    string
		advance time.Duration
		after   time.Duration // 0: allowed
	}{
		{"at once", 0, 30 * time.Second},
		{"after 10s", 10 * time.Second, 20 * time.Second},
		{"half a second left", 29500 * time.Millisecond, 500 * time.Millisecond},
		{"one ns left", 30*time.Second - 1, 1},
		{"at resend_after", 30 * time.Second, 0},
		{"later", time.Minute, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustUpdate("u", numFR, StatusUpdated)
			h.clock.Advance(tc.advance)
			before := h.sender.Count()
			_, err := h.resend("u")
			if tc.after == 0 {
				if err != nil {
					t.Fatalf("Resend: %v", err)
				}
				if h.sender.Count() != before+1 {
					t.Fatal("no SMS")
				}
				// The cooldown restarts from the resend.
				_, err = h.resend("u")
				wantRetry(t, err, "resend_after", h.cfg.ResendAfter)
				return
			}
			wantRetry(t, err, "resend_after", tc.after)
			if h.sender.Count() != before {
				t.Fatal("a refused resend sent an SMS")
			}
		})
	}
}

// An update to the number of the open challenge within resend_after is
// the resend cooldown in disguise.
func TestUpdateSameNumberWithinCooldown(t *testing.T) {
	cases := []struct {
		name     string
		verified bool
	}{{"rule 2", false}, {"rule 3", true}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			want := StatusUpdated
			if tc.verified {
				h.seedVerified("u", numDE)
				want = StatusPending
			}
			h.mustUpdate("u", numFR, want)
			first := h.sender.LastCode(t)
			h.clock.Advance(12 * time.Second)
			_, err := h.update("u", numFR)
			wantRetry(t, err, "resend_after", 18*time.Second)
			// Another number is a new challenge, not a resend.
			h.mustUpdate("u", numUS, want)
			h.mustUpdate("u", numFR, want) // numFR is no longer the open challenge
			h.clock.Advance(h.cfg.ResendAfter)
			h.mustUpdate("u", numFR, want)
			latest := h.sender.LastCode(t)
			if first != latest {
				_, err = h.verify("u", first)
				wantCodeError(t, err, h.cfg.MaxAttempts-1)
			}
			h.mustVerify("u", latest)
			h.wantUser("u", numFR, true)
		})
	}
}

func TestResendWithNothingOpen(t *testing.T) {
	h := newHarness(t)
	_, err := h.resend("nobody")
	wantErr(t, err, ErrNoPending)
	if h.sender.Count() != 0 {
		t.Fatal("SMS sent")
	}
}

// Delivery failure under rule 2: the number stays stored unverified, the
// challenge stays open, resend is allowed at once and its code verifies.
func TestDeliveryFailureRule2(t *testing.T) {
	h := newHarness(t)
	h.sender.FailNext(1)
	res, err := h.update("u", numFR)
	wantErr(t, err, ErrDeliveryFailed)
	wantErr(t, err, sms.ErrDeliveryFailed)
	if res.Status != StatusUpdated || res.SentTo != numFR || res.ResendAfter != 0 ||
		res.User != (store.User{ID: "u", PhoneNumber: numFR}) {
		t.Fatalf("result with failed delivery = %+v", res)
	}
	h.wantUser("u", numFR, false)
	c := h.challenge("u")
	if c == nil || c.Number != numFR || c.Pending {
		t.Fatalf("challenge = %+v, want open for %s", c, numFR)
	}
	failedCode := h.sender.Last(t).Code

	// No cooldown: resend at once.
	rr, err := h.resend("u")
	if err != nil {
		t.Fatalf("Resend right after a failed delivery: %v", err)
	}
	if rr.SentTo != numFR {
		t.Fatalf("ResendResult = %+v", rr)
	}
	code := h.sender.LastCode(t)
	if failedCode != code {
		_, err = h.verify("u", failedCode)
		wantCodeError(t, err, h.cfg.MaxAttempts-1)
	}
	h.mustVerify("u", code)
	h.wantUser("u", numFR, true)
}

// A failed delivery also leaves an update to the same number open at once.
func TestDeliveryFailureAllowsSameUpdateAtOnce(t *testing.T) {
	h := newHarness(t)
	h.sender.FailNext(1)
	_, err := h.update("u", numFR)
	wantErr(t, err, ErrDeliveryFailed)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.mustVerify("u", h.sender.LastCode(t))
}

func TestDeliveryFailureRule3(t *testing.T) {
	h := newHarness(t)
	h.seedVerified("u", numDE)
	h.sender.FailNext(1)
	res, err := h.update("u", numFR)
	wantErr(t, err, ErrDeliveryFailed)
	if res.Status != StatusPending || res.PendingNumber != numFR || res.ResendAfter != 0 {
		t.Fatalf("result = %+v", res)
	}
	h.wantUser("u", numDE, true)
	if st, _ := h.svc.Status(h.ctx, "u"); st.PendingNumber != numFR {
		t.Fatalf("Status = %+v, want the pending number kept", st)
	}
	if _, err := h.resend("u"); err != nil {
		t.Fatalf("Resend: %v", err)
	}
	h.mustVerify("u", h.sender.LastCode(t))
	h.wantUser("u", numFR, true)
}

func TestDeliveryFailureOnResend(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(h.cfg.ResendAfter)
	h.sender.FailNext(1)
	_, err := h.resend("u")
	wantErr(t, err, ErrDeliveryFailed)
	// At once again, no cooldown.
	if _, err := h.resend("u"); err != nil {
		t.Fatalf("Resend after failed resend: %v", err)
	}
	h.mustVerify("u", h.sender.LastCode(t))
}

// A store outage during verify: an error, the challenge not consumed,
// and the same code verifies once the store is back.
func TestStoreFailureDuringVerify(t *testing.T) {
	cases := []struct {
		name     string
		verified bool
	}{{"rule 2", false}, {"rule 3", true}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			want := StatusUpdated
			if tc.verified {
				h.seedVerified("u", numDE)
				want = StatusPending
			}
			h.mustUpdate("u", numFR, want)
			code := h.sender.LastCode(t)
			before := h.user("u")

			h.users.failSet.Store(true)
			_, err := h.verify("u", code)
			wantErr(t, err, ErrUnavailable)
			if got := h.user("u"); got != before {
				t.Fatalf("user changed by a failed verify: %+v", got)
			}
			if c := h.challenge("u"); c == nil || !c.ClaimedUntil.IsZero() || c.Attempts != 0 {
				t.Fatalf("challenge after store failure = %+v, want open, unclaimed, no attempt spent", c)
			}
			if st, _ := h.svc.Status(h.ctx, "u"); tc.verified && st.PendingNumber != numFR {
				t.Fatalf("Status lost the pending number: %+v", st)
			}
			// Still failing: still not consumed.
			_, err = h.verify("u", code)
			wantErr(t, err, ErrUnavailable)

			h.users.failSet.Store(false)
			h.mustVerify("u", code) // no clock advance: the claim was released
			h.wantUser("u", numFR, true)
		})
	}
}

// A store outage during a rule-2 update sends nothing and opens nothing.
func TestStoreFailureDuringUpdate(t *testing.T) {
	cases := []struct {
		name    string
		failGet bool
		failSet bool
	}{
		{"get fails", true, false},
		{"set fails", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.users.failGet.Store(tc.failGet)
			h.users.failSet.Store(tc.failSet)
			_, err := h.update("u", numFR)
			wantErr(t, err, ErrUnavailable)
			if h.sender.Count() != 0 {
				t.Fatal("an SMS went out though the number was not stored")
			}
			h.wantUser("u", "", false)
			if h.challenge("u") != nil {
				t.Fatal("a challenge was opened")
			}
			h.users.failGet.Store(false)
			h.users.failSet.Store(false)
			// The client retries as told (503 + Retry-After): no cooldown.
			h.mustUpdate("u", numFR, StatusUpdated)
			h.mustVerify("u", h.sender.LastCode(t))
		})
	}
}

// SPEC §5 store_unavailable: "nothing half-written". A store outage that
// sent no SMS must not spend the SMS budgets (limits.go: "SMS sends to one
// number", "SMS sends for one user"); otherwise the retry the 503 asks for
// is refused with 429 for a whole window.
func TestStoreFailureDuringUpdateSpendsNoSendBudget(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.PerNumber = Limit{Count: 1, Window: time.Hour}
		c.Limits.PerUser = Limit{Count: 1, Window: time.Hour}
	})
	h.users.failSet.Store(true)
	_, err := h.update("u", numFR)
	wantErr(t, err, ErrUnavailable)
	h.users.failSet.Store(false)
	if _, err := h.update("u", numFR); err != nil {
		t.Fatalf("retry after the store came back: %v (the failed update spent the send budget though no SMS went out)", err)
	}
}

func TestStatusStoreFailure(t *testing.T) {
	h := newHarness(t)
	h.users.failGet.Store(true)
	_, err := h.svc.Status(h.ctx, "u")
	wantErr(t, err, ErrUnavailable)
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

// Message fields: purpose, locale actually used, template options, user,
// recipient, body carrying the code.
func TestMessageFields(t *testing.T) {
	tpl := sms.Templates{
		Default: "{app}: {code} ({minutes} min){brand}",
		ByLocale: map[string]string{
			"fr":    "Code {app} : {code}{brand}",
			"pt_BR": "Codigo {code}",
		},
	}
	cases := []struct {
		name       string
		locale     string
		opts       map[string]string
		provider   string
		wantLocale string
		wantBody   string // with CODE for the code
	}{
		{"default", "", nil, "", "en", "Acme: CODE (10 min){brand}"},
		{"unknown locale", "de-DE", nil, "", "en", "Acme: CODE (10 min){brand}"},
		{"exact", "fr", nil, "", "fr", "Code Acme : CODE{brand}"},
		{"base language", "fr-CA", nil, "", "fr", "Code Acme : CODE{brand}"},
		{"case and underscore", "PT-br", nil, "", "pt-BR", "Codigo CODE"},
		{"options", "", map[string]string{"brand": " by X", "code": "nope"}, "p2", "en", "Acme: CODE (10 min) by X"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Templates = tpl })
			_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "user-42", PhoneNumber: "+33 6 12 34 56 78",
				Locale: tc.locale, TemplateOptions: tc.opts, ProviderID: tc.provider, ClientIP: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			m := h.sender.Last(t)
			code := h.sender.LastCode(t)
			if m.Purpose != "update" || m.To != numFR || m.UserID != "user-42" || m.Locale != tc.wantLocale ||
				m.ProviderID != tc.provider {
				t.Fatalf("message = %+v", m)
			}
			if want := strings.ReplaceAll(tc.wantBody, "CODE", code); m.Body != want {
				t.Fatalf("body = %q, want %q", m.Body, want)
			}
			if m.TemplateOptions == nil {
				t.Fatal("TemplateOptions is nil, want {}")
			}
			if len(m.TemplateOptions) != len(tc.opts) {
				t.Fatalf("TemplateOptions = %v, want %v", m.TemplateOptions, tc.opts)
			}
			for k, v := range tc.opts {
				if m.TemplateOptions[k] != v {
					t.Fatalf("TemplateOptions = %v, want %v", m.TemplateOptions, tc.opts)
				}
			}
			if id, err := hex.DecodeString(m.ID); err != nil || len(id) != 16 {
				t.Fatalf("message ID %q is not 16 random bytes in hex", m.ID)
			}

			// Resend: purpose resend, the update's locale reused when none
			// is given, options {} not nil, no provider pinning.
			h.clock.Advance(h.cfg.ResendAfter)
			if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "user-42"}); err != nil {
				t.Fatal(err)
			}
			r := h.sender.Last(t)
			if r.Purpose != "resend" || r.To != numFR || r.UserID != "user-42" || r.Locale != tc.wantLocale ||
				r.TemplateOptions == nil || len(r.TemplateOptions) != 0 || r.ID == m.ID {
				t.Fatalf("resend message = %+v", r)
			}
			if !strings.Contains(r.Body, h.sender.LastCode(t)) {
				t.Fatalf("resend body %q lacks the code", r.Body)
			}
			// Resend with its own locale.
			h.clock.Advance(h.cfg.ResendAfter)
			if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "user-42", Locale: "fr-FR"}); err != nil {
				t.Fatal(err)
			}
			if r := h.sender.Last(t); r.Locale != "fr" {
				t.Fatalf("resend with locale fr-FR used %q", r.Locale)
			}
			h.mustVerify("user-42", h.sender.LastCode(t))
		})
	}
}

func TestMessageMinutesRoundUp(t *testing.T) {
	cases := []struct {
		ttl  time.Duration
		want string
	}{
		{time.Second, "1 min"},
		{90 * time.Second, "2 min"},
		{5 * time.Minute, "5 min"},
		{5*time.Minute + time.Second, "6 min"},
	}
	for _, tc := range cases {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.TTL = tc.ttl })
			h.mustUpdate("u", numFR, StatusUpdated)
			if b := h.sender.Last(t).Body; !strings.Contains(b, tc.want) {
				t.Fatalf("body %q, want %q", b, tc.want)
			}
		})
	}
}

// A very long locale (the HTTP layer does not bound it) must not break
// the challenge: the code that went out must verify.
func TestLongLocaleKeepsChallengeUsable(t *testing.T) {
	for _, n := range []int{35, 36, 255, 256, 300} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			h := newHarness(t)
			loc := strings.Repeat("a", n)
			_, err := h.svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR, Locale: loc})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if _, err := h.verify("u", h.sender.LastCode(t)); err != nil {
				t.Fatalf("locale of %d bytes: Verify with the right code: %v", n, err)
			}
		})
		t.Run(fmt.Sprintf("resend %d bytes", n), func(t *testing.T) {
			h := newHarness(t)
			h.mustUpdate("u", numFR, StatusUpdated)
			h.clock.Advance(h.cfg.ResendAfter)
			if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", Locale: strings.Repeat("a", n)}); err != nil {
				t.Fatalf("Resend: %v", err)
			}
			if _, err := h.verify("u", h.sender.LastCode(t)); err != nil {
				t.Fatalf("resend locale of %d bytes: Verify with the right code: %v", n, err)
			}
		})
	}
}

// A verify's claim on a challenge (another instance writing the store)
// hides it until the claim lapses; a crashed claimant does not lock the
// user out for longer than that.
func TestClaimLapses(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	c := h.challenge("u")
	c.ClaimedUntil = h.clock.Now().Add(claimFor)
	if err := h.bc.Update(h.ctx, challengeKey("u"), func([]byte, bool) ([]byte, time.Duration, error) {
		return c.encode(), time.Hour, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := h.verify("u", code)
	wantErr(t, err, ErrNoPending)
	_, err = h.verify("u", wrongCodeFor(code))
	wantErr(t, err, ErrNoPending)
	h.clock.Advance(claimFor - time.Nanosecond)
	_, err = h.verify("u", code)
	wantErr(t, err, ErrNoPending)
	h.clock.Advance(time.Nanosecond)
	h.mustVerify("u", code)
}

func TestCodesAreCodeLengthDigits(t *testing.T) {
	for _, length := range []int{4, 5, 6, 8, 10} {
		t.Run(fmt.Sprintf("length %d", length), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.CodeLength = length; c.ResendAfter = 0 })
			seen := map[string]bool{}
			for i := 0; i < 40; i++ {
				h.mustUpdate("u", frNumber(i), StatusUpdated)
				code := h.sender.LastCode(t)
				if len(code) != length || strings.Trim(code, "0123456789") != "" {
					t.Fatalf("code %q is not %d digits", code, length)
				}
				seen[code] = true
			}
			if length >= 6 && len(seen) < 35 {
				t.Fatalf("only %d distinct codes in 40", len(seen))
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Leading zeros are kept, and codes compare as strings.
func TestCodeZeroPadded(t *testing.T) {
	h := newHarness(t)
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Rand: zeroReader{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR}); err != nil {
		t.Fatal(err)
	}
	if code := h.sender.LastCode(t); code != "000000" {
		t.Fatalf("code = %q, want 000000", code)
	}
	_, err = svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: "0"})
	wantCodeError(t, err, h.cfg.MaxAttempts-1)
	if _, err := svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: "000000"}); err != nil {
		t.Fatal(err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy gone") }

func TestRandFailure(t *testing.T) {
	h := newHarness(t)
	h.seedVerified("u", numDE)
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Rand: errReader{}})
	if err != nil {
		t.Fatal(err)
	}
	sends := h.sender.Count()
	if _, err := svc.Update(h.ctx, UpdateRequest{UserID: "u", PhoneNumber: numFR}); err == nil {
		t.Fatal("Update succeeded without randomness")
	}
	if h.sender.Count() != sends {
		t.Fatal("an SMS went out without a random code")
	}
	h.wantUser("u", numDE, true)
}

// The cache never holds the plain code: scan every value ever written.
func TestCacheNeverHoldsPlainCode(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.CodeLength = 10
		c.Limits = DefaultLimits
	})
	var codes []string
	h.seedVerified("u", numDE)
	codes = append(codes, h.sender.LastCode(t))
	h.mustUpdate("u", numFR, StatusPending)
	codes = append(codes, h.sender.LastCode(t))
	_, _ = h.verify("u", wrongCodeFor(h.sender.LastCode(t)))
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("u"); err != nil {
		t.Fatal(err)
	}
	codes = append(codes, h.sender.LastCode(t))
	h.users.failSet.Store(true)
	_, _ = h.verify("u", h.sender.LastCode(t)) // claim + release rewrite
	h.users.failSet.Store(false)
	h.mustUpdate("v", numUS, StatusUpdated)
	codes = append(codes, h.sender.LastCode(t))

	keys, values := h.cache.Written()
	if len(values) < 8 {
		t.Fatalf("only %d cache writes seen", len(values))
	}
	live := [][]byte{}
	for _, k := range append(keys, challengeKey("u"), challengeKey("v")) {
		if b, err := h.bc.Get(h.ctx, k); err == nil {
			live = append(live, b)
		}
	}
	for _, code := range codes {
		for i, v := range append(values, live...) {
			if strings.Contains(string(v), code) {
				t.Fatalf("cache value %d holds the plain code", i)
			}
		}
		for _, k := range keys {
			if strings.Contains(k, code) {
				t.Fatalf("cache key %q holds the plain code", k)
			}
		}
	}
}

// Errors never carry a code or a number.
func TestErrorTextsCarryNoSecrets(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	_, err := h.verify("u", wrongCodeFor(code))
	_, err2 := h.update("u", numFR)
	for _, e := range []error{err, err2} {
		if e == nil {
			t.Fatal("want an error")
		}
		if s := e.Error(); strings.Contains(s, code) || strings.Contains(s, wrongCodeFor(code)) || strings.Contains(s, "612345678") {
			t.Fatalf("error text %q carries a secret", s)
		}
	}
}

func TestStatusUnknownUser(t *testing.T) {
	h := newHarness(t)
	st, err := h.svc.Status(context.Background(), "nobody")
	if err != nil || st.User != (store.User{ID: "nobody"}) || st.PendingNumber != "" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}
