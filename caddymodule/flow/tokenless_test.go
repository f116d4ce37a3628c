package flow

import (
	"testing"
	"time"
)

// tokenless is Descope's project-ID-only verify: the caller proved no user.
func (h *harness) tokenless(user, code, ip string) error {
	_, err := h.svc.Verify(h.ctx, VerifyRequest{UserID: user, Code: code, ClientIP: ip, Tokenless: true})
	return err
}

// Anyone who knows a user ID can send token-less verifies (SPEC §6):
// their wrong codes lock only the token-less budget of the challenge
// (max_attempts of its own) and never spend verify_per_user, over as many
// rounds as the owner opens; the owner's verify with a token still has
// all its attempts, and its right code works.
func TestTokenlessGuessesNeverLockTheOwner(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.VerifyPerUser = Limit{Count: 4, Window: time.Hour}
		c.Limits.VerifyPerIP = Limit{Count: 100, Window: time.Hour}
	})
	h.seedVerified("u", numDE)
	for round := range 3 { // 9 token-less wrong codes: over verify_per_user (4) twice
		h.clock.Advance(time.Minute)
		h.mustUpdate("u", numFR, StatusPending)
		code := h.sender.LastCode(t)
		for i := range h.cfg.MaxAttempts {
			wantCodeError(t, h.tokenless("u", wrongCodeFor(code), "198.51.100.7"), h.cfg.MaxAttempts-1-i)
		}
		// The token-less budget is spent, the right code included …
		wantErr(t, h.tokenless("u", code, "198.51.100.7"), ErrTooManyAttempts)
		if c := h.challenge("u"); c.Attempts != 0 || c.OpenAttempts != h.cfg.MaxAttempts {
			t.Fatalf("round %d: attempts %d, token-less %d", round, c.Attempts, c.OpenAttempts)
		}
		if round < 2 {
			continue
		}
		// … but not the owner's: a wrong code has all its attempts left,
		// verify_per_user is untouched, and the right code verifies.
		_, err := h.verify("u", wrongCodeFor(code))
		wantCodeError(t, err, h.cfg.MaxAttempts-1)
		h.mustVerify("u", code)
		h.wantUser("u", numFR, true)
	}
}

// A challenge takes at most 2 × max_attempts guesses in all: max_attempts
// token-less and max_attempts with the user's token; then even the right
// code is refused on both routes. A resend keeps both counts.
func TestTokenlessAndOwnerBudgetsTogether(t *testing.T) {
	h := newHarness(t)
	h.mustUpdate("u", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	for i := range h.cfg.MaxAttempts {
		wantCodeError(t, h.tokenless("u", wrongCodeFor(code), ""), h.cfg.MaxAttempts-1-i)
	}
	h.clock.Advance(h.cfg.ResendAfter)
	if _, err := h.resend("u"); err != nil { // the owner may still resend
		t.Fatalf("resend after token-less lockout: %v", err)
	}
	code = h.sender.LastCode(t)
	wantErr(t, h.tokenless("u", code, ""), ErrTooManyAttempts) // kept by the resend
	for i := range h.cfg.MaxAttempts {
		_, err := h.verify("u", wrongCodeFor(code))
		wantCodeError(t, err, h.cfg.MaxAttempts-1-i)
	}
	_, err := h.verify("u", code)
	wantErr(t, err, ErrTooManyAttempts)
	wantErr(t, h.tokenless("u", code, ""), ErrTooManyAttempts)
	h.wantUser("u", numFR, false)
}

// Token-less polls count against verify_per_ip whatever they find: users
// with no open challenge (or none at all), and wrong codes, alike. Once
// spent, that client is refused before any challenge is touched; another
// client, and the owner's verify with a token, are not.
func TestTokenlessPollsSpendVerifyPerIP(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.VerifyPerIP = Limit{Count: 4, Window: time.Hour} })
	const ip = "203.0.113.9"
	h.mustUpdate("victim", numFR, StatusUpdated)
	code := h.sender.LastCode(t)
	wantErr(t, h.tokenless("nobody-1", "123456", ip), ErrNoPending)
	wantErr(t, h.tokenless("nobody-2", "123456", ip), ErrNoPending)
	wantErr(t, h.tokenless("nobody-3", "123456", ip), ErrNoPending)
	wantCodeError(t, h.tokenless("victim", wrongCodeFor(code), ip), h.cfg.MaxAttempts-1)
	err := h.tokenless("nobody-4", "123456", ip)
	wantErr(t, err, ErrRateLimited)
	err = h.tokenless("victim", code, ip)
	wantErr(t, err, ErrRateLimited)
	if c := h.challenge("victim"); c.OpenAttempts != 1 {
		t.Fatalf("token-less attempts %d after the refusal, want 1", c.OpenAttempts)
	}
	wantErr(t, h.tokenless("nobody-5", "123456", "203.0.113.10"), ErrNoPending)
	if _, err := h.svc.Verify(h.ctx, VerifyRequest{UserID: "victim", Code: code, ClientIP: "203.0.113.11"}); err != nil {
		t.Fatalf("owner's verify: %v", err)
	}
	h.wantUser("victim", numFR, true)
}
