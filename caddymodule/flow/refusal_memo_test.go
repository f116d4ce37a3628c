package flow

import (
	"testing"
	"time"
)

// memoConfig turns every send budget on, with room for the tests' sends
// (per_user: two), so that an update reads them all before the memo.
func memoConfig(c *Config) {
	c.Limits.Global = Limit{Count: 1000, Window: time.Minute}
	c.Limits.PerNumber = Limit{Count: 100, Window: time.Hour}
	c.Limits.PerUser = Limit{Count: 2, Window: time.Hour}
	c.Limits.PerIP = Limit{Count: 100, Window: time.Hour}
}

func (h *harness) updateFrom(ip, user, number string) (UpdateResult, error) {
	return h.svc.Update(h.ctx, UpdateRequest{UserID: user, PhoneNumber: number, ClientIP: ip})
}

// TestRememberedRefusalsReadOnce: a flood of the same refused update
// (issue 13) reads one cache entry a refusal after the first (the
// cooldown again), or none but the user's read cache (a spent budget
// before the parse), where each read four (global, per_user, per_ip,
// the cooldown) or two; the answer is the same, Retry-After counting
// down, and after memoLife the rules are asked in full again.
func TestRememberedRefusalsReadOnce(t *testing.T) {
	h := newHarness(t, memoConfig)
	withReadCache(t, h)
	const ip = "192.0.2.7"
	if _, err := h.updateFrom(ip, "u", frNumber(1)); err != nil {
		t.Fatal(err)
	}
	_, err := h.updateFrom(ip, "u", frNumber(1))
	wantRetry(t, err, "resend_after", 30*time.Second)
	gets := h.cache.gets.Load()
	for i := range 50 {
		h.clock.Advance(10 * time.Millisecond)
		_, err := h.updateFrom(ip, "u", frNumber(1))
		wantRetry(t, err, "resend_after", 30*time.Second-time.Duration(i+1)*10*time.Millisecond)
	}
	if n := h.cache.gets.Load() - gets; n != 50 {
		t.Errorf("50 remembered cooldown refusals read the cache %d times, want 50 (the cooldown alone)", n)
	}
	h.clock.Advance(memoLife)
	gets = h.cache.gets.Load()
	_, err = h.updateFrom(ip, "u", frNumber(1))
	wantRetry(t, err, "resend_after", 30*time.Second-500*time.Millisecond-memoLife)
	if n := h.cache.gets.Load() - gets; n != 4 {
		t.Errorf("after memoLife a refusal read the cache %d times, want 4 (the rules in full)", n)
	}

	// SMS pumping: per_user spent, a new number each time.
	if _, err := h.updateFrom(ip, "u", frNumber(2)); err != nil {
		t.Fatal(err)
	}
	_, err = h.updateFrom(ip, "u", frNumber(3))
	wantRetry(t, err, "per_user", time.Hour-1500*time.Millisecond)
	gets, sent := h.cache.gets.Load(), h.sender.Count()
	for i := range 50 {
		h.clock.Advance(10 * time.Millisecond)
		_, err := h.updateFrom(ip, "u", frNumber(10+i))
		wantRetry(t, err, "per_user", time.Hour-1500*time.Millisecond-time.Duration(i+1)*10*time.Millisecond)
	}
	if n := h.cache.gets.Load() - gets; n != 0 {
		t.Errorf("50 remembered per_user refusals read the shared cache %d times, want 0", n)
	}
	if h.sender.Count() != sent {
		t.Fatal("a refused update sent a code")
	}
	// Another address is another caller: its refusal is its own.
	gets = h.cache.gets.Load()
	_, err = h.updateFrom("198.51.100.1", "u", frNumber(70))
	wantRetry(t, err, "per_user", time.Hour-2*time.Second)
	if n := h.cache.gets.Load() - gets; n != 2 {
		t.Errorf("another address's first refusal read the cache %d times, want 2 (global, per_user)", n)
	}
}

// TestRememberedCooldownSeesALift: a verify on another instance ends the
// cooldown this instance remembers refusing (liftCooldown); the verified
// number typed again here is "unchanged" at once, not 429 from memory
// (the remembered refusal reads the cooldown again).
func TestRememberedCooldownSeesALift(t *testing.T) {
	h := newHarness(t, memoConfig)
	withReadCache(t, h)
	viaA := h.svc
	h.mustUpdate("u", frNumber(1), StatusUpdated)
	_, err := h.update("u", frNumber(1))
	wantRetry(t, err, "resend_after", 30*time.Second)
	if _, ok := viaA.memo.get(memoKey{cooldown: true, user: "u", input: frNumber(1)}, h.clock.Now()); !ok {
		t.Fatal("fixture: A should remember the refusal")
	}
	if _, err := h.sibling().Verify(h.ctx, VerifyRequest{UserID: "u", Code: h.sender.Last(t).Code}); err != nil {
		t.Fatal(err)
	}
	h.svc = viaA
	h.mustUpdate("u", frNumber(1), StatusUnchanged)
}

// TestRememberedBudgetLastsMemoLifeAtMost: a budget given back by another
// instance (a failed send) is not read by a remembered refusal; it is
// seen once memoLife has passed, not later.
func TestRememberedBudgetLastsMemoLifeAtMost(t *testing.T) {
	h := newHarness(t, memoConfig)
	h.mustUpdate("u", frNumber(1), StatusUpdated)
	h.mustUpdate("u", frNumber(2), StatusUpdated)
	_, err := h.update("u", frNumber(3))
	wantRetry(t, err, "per_user", time.Hour)
	h.sibling().refundBudgets(h.ctx, []budget{{"per_user", "lu:u", h.cfg.Limits.PerUser}})
	h.clock.Advance(memoLife - time.Millisecond)
	_, err = h.update("u", frNumber(3))
	wantRetry(t, err, "per_user", time.Hour-memoLife+time.Millisecond)
	h.clock.Advance(time.Millisecond)
	h.mustUpdate("u", frNumber(3), StatusUpdated)
}

// TestRefusalMemoIsBounded: a shard full of refusals drops the stale
// ones, and when none is stale, all of them: the memo never grows past
// memoShards × memoShardSize.
func TestRefusalMemoIsBounded(t *testing.T) {
	m := newRefusalMemo()
	now := t0
	refused := &RetryError{After: time.Minute, Err: ErrRateLimited, Limit: "per_user"}
	for i := range 4 * memoShards * memoShardSize {
		m.put(memoKey{user: "u", input: frNumber(i), ip: string(rune(i))}, "", refused, now)
	}
	total := 0
	for i := range m.shards {
		if n := len(m.shards[i].m); n > memoShardSize {
			t.Fatalf("shard %d holds %d refusals, want at most %d", i, n, memoShardSize)
		} else {
			total += n
		}
	}
	if total == 0 || total > memoShards*memoShardSize {
		t.Fatalf("the memo holds %d refusals", total)
	}
	k := memoKey{user: "v", ip: "x"}
	m.put(k, "", refused, now)
	if _, ok := m.get(k, now.Add(memoLife)); ok {
		t.Fatal("a refusal is remembered past memoLife")
	}
	if _, ok := m.get(k, now.Add(memoLife-time.Nanosecond)); !ok {
		t.Fatal("a refusal is forgotten before memoLife")
	}
	m.put(memoKey{user: "w"}, "", &RetryError{After: time.Millisecond, Err: ErrRateLimited}, now)
	if _, ok := m.get(memoKey{user: "w"}, now.Add(time.Millisecond)); ok {
		t.Fatal("a refusal is remembered past its own end")
	}
	m.put(memoKey{user: "x"}, "", ErrRateLimited, now) // no RetryError: nothing to count down to
	if _, ok := m.get(memoKey{user: "x"}, now); ok {
		t.Fatal("a refusal without a RetryError was remembered")
	}
}

// TestRememberedBudgetSeesAVerifiedNumber: a refusal by a spent budget
// before the parse is remembered only while the user holds no verified
// number; once they verify one, typing it again is "unchanged" (rule 4
// comes before the limits) at once, not 429 from memory.
func TestRememberedBudgetSeesAVerifiedNumber(t *testing.T) {
	h := newHarness(t, memoConfig)
	withReadCache(t, h)
	h.mustUpdate("u", frNumber(1), StatusUpdated)
	h.mustUpdate("u", frNumber(2), StatusUpdated)
	_, err := h.update("u", frNumber(3))
	wantRetry(t, err, "per_user", time.Hour)
	if _, ok := h.svc.memo.get(memoKey{user: "u"}, h.clock.Now()); !ok {
		t.Fatal("fixture: the refusal should be remembered")
	}
	if _, err := h.svc.Verify(h.ctx, VerifyRequest{UserID: "u", Code: h.sender.Last(t).Code}); err != nil {
		t.Fatal(err)
	}
	h.mustUpdate("u", frNumber(2), StatusUnchanged)
}
