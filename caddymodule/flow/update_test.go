package flow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
	"github.com/caddy-phone/caddy-phone/store"
)

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

// After expiry an update to the same number is not held by the cooldown.
func TestUpdateAfterExpiry(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ResendAfter = time.Hour; c.TTL = time.Minute })
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(time.Minute)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.mustVerify("u", h.sender.LastCode(t))
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
			// But the cooldown binds the user and the number, not the
			// challenge (SPEC §4): numFR still waits it out.
			_, err = h.update("u", numFR)
			wantRetry(t, err, "resend_after", 18*time.Second)
			h.clock.Advance(18 * time.Second)
			h.mustUpdate("u", numFR, want)
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

// Issue 9, item 4: an update whose later step fails leaves the old state,
// and says so: the number is not changed, and the challenge it was to
// replace is back, its code still good (a challenge for a number never
// stored cannot switch it later).
func TestFailedUpdateLeavesTheOldState(t *testing.T) {
	for _, step := range []string{"budget", "store"} {
		t.Run(step, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Limits.PerUser = Limit{Count: 10, Window: time.Hour} })
			first, second := frNumber(11), frNumber(12)
			h.mustUpdate("u", first, StatusUpdated) // rule 2: stored unverified, a code sent
			code := h.sender.LastCode(t)
			switch step {
			case "budget":
				h.cache.failOn = func(k string) bool { return strings.HasPrefix(k, "lu:") }
			case "store":
				h.users.failSet.Store(true)
			}
			_, err := h.update("u", second)
			wantErr(t, err, ErrUnavailable)
			h.cache.failOn = nil
			h.users.failSet.Store(false)
			h.wantUser("u", first, false)
			if c := h.challenge("u"); c == nil || c.Number != first {
				t.Fatalf("challenge after the failed update: %+v, want the one for %s back", c, first)
			}
			h.mustVerify("u", code)
			h.wantUser("u", first, true)
		})
	}
}

// heldNumbers is a HeldNumbers: the numbers each user holds verified
// among their others.
type heldNumbers map[string]string // user → number

func (h heldNumbers) HoldsVerified(_ context.Context, userID, number string) (bool, error) {
	return h[userID] == number, nil
}

// An update to a number the user holds verified (an admin verified it)
// makes it theirs at once, with no code; when the cache or the store
// fails on the way, the old state stands (the number, and the open
// challenge with its code), as for any update: a 503 never leaves the
// change half made.
func TestUpdateToHeldNumber(t *testing.T) {
	first, held := frNumber(21), frNumber(22)
	setup := func(t *testing.T) (*harness, string) {
		h := newHarness(t)
		svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
			Numbers: numbers.Policy{}, Clock: h.clock, Held: heldNumbers{"u": held}})
		if err != nil {
			t.Fatal(err)
		}
		h.svc = svc
		h.mustUpdate("u", first, StatusUpdated) // rule 2: a challenge open for first
		return h, h.sender.LastCode(t)
	}
	for _, step := range []string{"cache", "store"} {
		t.Run(step+" fails", func(t *testing.T) {
			h, code := setup(t)
			switch step {
			case "cache":
				h.cache.failOn = func(k string) bool { return strings.HasPrefix(k, "c:") }
			case "store":
				h.users.failSet.Store(true)
			}
			_, err := h.update("u", held)
			wantErr(t, err, ErrUnavailable)
			h.cache.failOn = nil
			h.users.failSet.Store(false)
			h.wantUser("u", first, false)
			h.mustVerify("u", code)
			h.wantUser("u", first, true)
		})
	}
	t.Run("ok", func(t *testing.T) {
		h, code := setup(t)
		sent := h.sender.Count()
		res := h.mustUpdate("u", held, StatusUpdated)
		if !res.User.Verified || res.User.PhoneNumber != held || res.SentTo != "" {
			t.Fatalf("update to a held number: %+v", res)
		}
		h.wantUser("u", held, true)
		if h.sender.Count() != sent {
			t.Fatal("a code was sent to a number the user holds verified")
		}
		if _, err := h.svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: code}); !errors.Is(err, ErrNoPending) {
			t.Fatalf("the old challenge outlived the change: %v", err)
		}
	})
}
