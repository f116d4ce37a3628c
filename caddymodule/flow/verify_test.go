package flow

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

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
