package flow

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/store"
)

// The resend cooldown binds the user and the number (SPEC §4): whatever
// became of the challenge — canceled, replaced by an update to another
// number, dropped by an admin change — an update to the same number
// within resend_after is refused, and so is a first send for an
// unverified number (ReachFive's resend with OpenForUnverified). Another
// user asking for that number is not held, and the cooldown ends on time.
func TestCooldownBindsUserAndNumber(t *testing.T) {
	cases := []struct {
		name  string
		after func(h *harness) // run 10 s after the first code went out
	}{
		{"cancel", func(h *harness) {
			if err := h.svc.Cancel(h.ctx, "u"); err != nil {
				h.t.Fatal(err)
			}
		}},
		{"update to another number", func(h *harness) { h.mustUpdate("u", numUS, StatusPending) }},
		{"update to another number, then cancel", func(h *harness) {
			h.mustUpdate("u", numUS, StatusPending)
			if err := h.svc.Cancel(h.ctx, "u"); err != nil {
				h.t.Fatal(err)
			}
		}},
		{"admin change", func(h *harness) {
			if err := h.svc.AdminChange(h.ctx, "u", func(ctx context.Context) error {
				return h.users.Set(ctx, store.User{ID: "u", PhoneNumber: numES, Verified: true})
			}); err != nil {
				h.t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.seedVerified("u", numDE)
			h.clock.Advance(time.Hour)
			h.mustUpdate("u", numFR, StatusPending)
			n := h.sender.Count()
			h.clock.Advance(10 * time.Second)
			tc.after(h)
			n2 := h.sender.Count()
			_, err := h.update("u", numFR)
			wantRetry(t, err, "resend_after", 20*time.Second)
			if h.sender.Count() != n2 {
				t.Fatal("a refused update sent a code")
			}
			// Another user is not held by u's cooldown.
			h.mustUpdate("v", numFR, StatusUpdated)
			h.clock.Advance(20 * time.Second)
			h.mustUpdate("u", numFR, StatusPending)
			if h.sender.Count() < n+1 {
				t.Fatal("no code after the cooldown")
			}
			h.mustVerify("u", h.sender.LastCode(t))
			h.wantUser("u", numFR, true)
		})
	}
}

// A rule-2 number canceled, then sent a first code by ReachFive's
// send-phone-number-verification (a resend that opens a challenge for an
// unverified number): the cooldown holds that too.
func TestCooldownHoldsFirstSendAfterCancel(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	h.clock.Advance(5 * time.Second)
	if err := h.svc.Cancel(h.ctx, "u"); err != nil {
		t.Fatal(err)
	}
	_, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", OpenForUnverified: true})
	wantRetry(t, err, "resend_after", 25*time.Second)
	h.clock.Advance(25 * time.Second)
	if _, err := h.svc.Resend(h.ctx, ResendRequest{UserID: "u", OpenForUnverified: true}); err != nil {
		t.Fatal(err)
	}
	// The resend started a cooldown of its own.
	h.clock.Advance(time.Second)
	_, err = h.update("u", numFR)
	wantRetry(t, err, "resend_after", 29*time.Second)
	h.mustVerify("u", h.sender.LastCode(t))
}

// A code that did not go out holds nothing back: after a failed delivery
// (502), a cancel and the same update go through at once.
func TestCooldownLiftedWhenNothingWasSent(t *testing.T) {
	h := newHarness(t)
	h.sender.FailNext(1)
	_, err := h.update("u", numFR)
	wantErr(t, err, ErrDeliveryFailed)
	if err := h.svc.Cancel(h.ctx, "u"); err != nil {
		t.Fatal(err)
	}
	h.mustUpdate("u", numFR, StatusUpdated)
	h.mustVerify("u", h.sender.LastCode(t))
}

// TestCooldownRefusalTakesNoLock: an update refused by the cooldown is
// answered while another call holds the user's lock (a flood's refusals
// run side by side), and the verified number typed again is still
// "unchanged" during its cooldown, not refused.
func TestCooldownRefusalTakesNoLock(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u1", frNumber(1), StatusUpdated)
	unlock := h.svc.locks.lock("u1") // another call of u1 is running
	done := make(chan error, 1)
	go func() { _, err := h.update("u1", frNumber(1)); done <- err }()
	select {
	case err := <-done:
		var re *RetryError
		if !errors.As(err, &re) || re.Limit != "resend_after" {
			t.Fatalf("update in the cooldown: %v, want resend_after refused", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the refusal waited for the user's lock")
	}
	unlock()

	h.mustVerify("u1", h.sender.Last(t).Code)
	h.mustUpdate("u1", frNumber(1), StatusUnchanged) // rule 4 beats the cooldown
	h.wantUser("u1", frNumber(1), true)

	// A number the user holds verified among their others is made theirs
	// with no code, cooldown or not.
	held := heldNumbers{}
	svc, err := New(h.cfg, Deps{Users: h.users, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock, Held: held})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	h.mustUpdate("u2", frNumber(3), StatusUpdated) // a code goes out: the cooldown starts
	held["u2"] = frNumber(3)                       // then an admin verifies it among u2's numbers
	h.clock.Advance(time.Second)
	res := h.mustUpdate("u2", frNumber(3), StatusUpdated)
	if !res.User.Verified || res.SentTo != "" {
		t.Fatalf("update to a held number in its cooldown: %+v", res)
	}
}

// withReadCache makes h's service read users through a store read cache
// (as Caddy does) and returns it.
func withReadCache(t *testing.T, h *harness) *store.CachedUsers {
	t.Helper()
	cached, err := store.NewCachedUsers(h.users, time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cached.Close() })
	if h.svc, err = New(h.cfg, Deps{Users: cached, Cache: h.cache, Sender: h.sender,
		Numbers: numbers.Policy{}, Clock: h.clock}); err != nil {
		t.Fatal(err)
	}
	return cached
}

// TestEarlyRefusalReadsNoStore: a flood of updates refused by the
// cooldown or by a spent send budget (issue 13, the cost of saying no)
// is answered from the cache: the store is read at most once, to fill
// the read cache, however many refusals follow, and nothing is sent.
func TestEarlyRefusalReadsNoStore(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerUser = Limit{Count: 2, Window: time.Hour} })
	withReadCache(t, h)
	h.mustUpdate("u", frNumber(1), StatusUpdated)
	h.clock.Advance(time.Second)
	sent, gets := h.sender.Count(), h.users.gets.Load()
	for range 50 {
		_, err := h.update("u", frNumber(1))
		wantRetry(t, err, "resend_after", 29*time.Second)
	}
	if n := h.users.gets.Load() - gets; n > 1 {
		t.Errorf("50 refusals by the cooldown read the store %d times, want at most 1", n)
	}

	h.mustUpdate("u", frNumber(2), StatusUpdated) // the second and last send of the hour
	sent, gets = h.sender.Count(), h.users.gets.Load()
	for i := range 50 { // SMS pumping: a new number each time
		_, err := h.update("u", frNumber(10+i))
		wantRetry(t, err, "per_user", time.Hour-time.Second)
	}
	if n := h.users.gets.Load() - gets; n > 1 {
		t.Errorf("50 refusals by per_user read the store %d times, want at most 1", n)
	}
	if h.sender.Count() != sent {
		t.Fatal("a refused update sent a code")
	}
}

// TestVerifyLiftsCooldownAcrossInstances: the early refusal asks rule 4
// of the read cache, which on another instance may be behind; a verify
// lifts the cooldown of the number it verifies (in the shared cache), so
// the verified number typed again on that instance is still "unchanged",
// not 429. Without the lift this instance's stale read cache (unverified
// for a minute here) would refuse it.
func TestVerifyLiftsCooldownAcrossInstances(t *testing.T) {
	h := newHarness(t)
	cachedA := withReadCache(t, h)
	viaA := h.svc
	h.mustUpdate("u", frNumber(1), StatusUpdated) // on A: a code, the cooldown starts
	if u, _ := cachedA.Peek(h.ctx, "u"); u.Verified {
		t.Fatal("fixture: A's read cache should hold u unverified")
	}
	// B, another instance with the same users and cache, verifies.
	b := h.sibling()
	if _, err := b.Verify(h.ctx, VerifyRequest{UserID: "u", Code: h.sender.Last(t).Code}); err != nil {
		t.Fatal(err)
	}
	if u, _ := cachedA.Peek(h.ctx, "u"); u.Verified {
		t.Fatal("fixture: A's read cache should still be behind")
	}
	h.svc = viaA
	h.clock.Advance(time.Second)
	h.mustUpdate("u", frNumber(1), StatusUnchanged)

	// So does an admin change that verifies a number, and a held number
	// made the user's.
	h.mustUpdate("v", frNumber(2), StatusUpdated)
	if err := b.AdminChange(h.ctx, "v", func(ctx context.Context) error {
		return h.users.Set(ctx, store.User{ID: "v", PhoneNumber: frNumber(2), Verified: true})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.bc.Get(h.ctx, cooldownKey("v", frNumber(2))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cooldown after an admin verified the number: %v, want none", err)
	}
}

// TestSpendBudgetsAllOrNone: when a budget refuses at spend time (another
// request spent its last unit after checkBudgets passed), the units the
// update took of the budgets before it are given back.
func TestSpendBudgetsAllOrNone(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.Global = Limit{Count: 100, Window: time.Minute}
		c.Limits.PerNumber = Limit{Count: 1, Window: time.Hour}
	})
	budgets := h.svc.sendBudgets("u", frNumber(1), "192.0.2.1")
	if err := h.svc.take(h.ctx, "per_number", "ln:"+frNumber(1), h.cfg.Limits.PerNumber); err != nil {
		t.Fatal(err) // another request spends the number's last unit
	}
	err := h.svc.spendBudgets(h.ctx, budgets)
	wantRetry(t, err, "per_number", time.Hour)
	b, err := h.cache.Get(h.ctx, "lg")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := decodeCounter(b); c.count != 0 {
		t.Fatalf("global budget after a refused spend: %d units spent, want 0", c.count)
	}
}

// countingNumbers counts the numbers it is asked to parse.
type countingNumbers struct {
	numbers.Policy
	calls atomic.Int64
}

func (c *countingNumbers) Normalize(input string) (string, error) {
	c.calls.Add(1)
	return c.Policy.Normalize(input)
}

// TestRefusalBeforeTheNumberIsParsed: SMS pumping sends a new number each
// time; once the caller's per_user budget is spent, its updates are
// refused without parsing the number or reading the store, even a number
// that does not parse (429 before 400). A user who holds a verified
// number still gets rule 4 for it ("unchanged"), and 429 for any other.
func TestRefusalBeforeTheNumberIsParsed(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.PerUser = Limit{Count: 2, Window: time.Hour} })
	cached := withReadCache(t, h)
	nums := &countingNumbers{}
	var err error
	if h.svc, err = New(h.cfg, Deps{Users: cached, Cache: h.cache, Sender: h.sender, Numbers: nums, Clock: h.clock}); err != nil {
		t.Fatal(err)
	}
	h.mustUpdate("u", frNumber(1), StatusUpdated)
	h.mustUpdate("u", frNumber(2), StatusUpdated) // per_user spent
	parsed, gets, sent := nums.calls.Load(), h.users.gets.Load(), h.sender.Count()
	for i := range 50 {
		_, err := h.update("u", frNumber(10+i))
		wantRetry(t, err, "per_user", time.Hour)
	}
	_, err = h.update("u", "not a number")
	wantRetry(t, err, "per_user", time.Hour)
	if n := nums.calls.Load() - parsed; n != 0 {
		t.Errorf("51 refusals parsed %d numbers, want 0", n)
	}
	if n := h.users.gets.Load() - gets; n > 1 {
		t.Errorf("51 refusals read the store %d times, want at most 1", n)
	}
	if h.sender.Count() != sent {
		t.Fatal("a refused update sent a code")
	}

	// v holds a verified number: rule 4 still answers for it.
	h.seedVerified("v", frNumber(50))              // one send
	h.mustUpdate("v", frNumber(51), StatusPending) // the second: per_user spent
	h.mustUpdate("v", frNumber(50), StatusUnchanged)
	_, err = h.update("v", frNumber(53))
	wantRetry(t, err, "per_user", time.Hour)
}
